"""Per-role schemas and the Strawberry domain fields merged into them."""

from __future__ import annotations

import dataclasses

import graphql
import strawberry
from starlette.applications import Starlette

from nchat_live.auth import Claims
from nchat_live.graphql.context import Context
from nchat_live.graphql.schema import DOMAIN, DomainRoots, RoleSchemas
from nchat_live.resolvers.streams import StreamInput
from tests.support import World


@strawberry.type
class DomainQuery:
    @strawberry.field
    async def who_am_i(self, info: strawberry.Info) -> str:
        ctx: Context = info.context
        async with ctx.session() as session:
            return f"{ctx.claims.role}:{await session.fetchval('SELECT nchat.user_id()')}"


@strawberry.type
class DomainMutation:
    @strawberry.mutation
    def echo(self, text: str) -> str:
        return text


async def test_strawberry_fields_merge_and_resolve_with_the_context(app: Starlette, cast: World) -> None:
    runtime = app.state.runtime
    registry = RoleSchemas(runtime.graphql.catalog, DomainRoots(query=DomainQuery, mutation=DomainMutation))
    schema = registry.for_role("user")
    assert {"whoAmI", "nchat_streams", "nchat_streams_by_pk"} <= set(schema.query_type.fields)
    assert {"echo", "insert_nchat_stream_chat_messages"} <= set(schema.mutation_type.fields)
    ctx = Context(runtime, Claims.user(cast.bob))
    document = graphql.parse("query($id: uuid!) { whoAmI nchat_streams_by_pk(id: $id) { title } }")
    result = await graphql.execute(schema, document, context_value=ctx, variable_values={"id": cast.public_stream})
    assert result.errors is None, result.errors
    assert result.data == {"whoAmI": f"user:{cast.bob}", "nchat_streams_by_pk": {"title": "public stream"}}


def test_each_role_sees_its_own_schema(app: Starlette) -> None:
    registry: RoleSchemas = app.state.runtime.graphql
    anonymous, user, admin = (registry.for_role(r) for r in ("anonymous", "user", "admin"))
    streams = {r: s.type_map["nchat_streams"].fields for r, s in
               (("anonymous", anonymous), ("user", user), ("admin", admin))}  # type: ignore[attr-defined]
    assert "stream_key" not in streams["anonymous"]
    assert "stream_key" in streams["user"] and "stream_key" in streams["admin"]
    assert {"channel", "broadcaster", "chat_messages", "reactions", "viewers", "recordings", "questions",
            "chat_messages_aggregate"} <= set(streams["admin"])
    assert "quality_metrics" in streams["user"] and "quality_metrics" not in streams["anonymous"]
    assert "email" not in anonymous.type_map["nchat_users"].fields  # type: ignore[attr-defined]
    assert "insert_nchat_streams" not in (anonymous.mutation_type.fields if anonymous.mutation_type else {})
    assert "delete_nchat_users" not in user.mutation_type.fields  # type: ignore[union-attr]
    assert "nchat_streams_stream" in user.subscription_type.fields  # type: ignore[union-attr]
    members = admin.type_map["nchat_channels"].fields  # type: ignore[attr-defined]
    assert {"members", "streams", "owner"} <= set(members)
    for schema in (anonymous, user, admin):
        assert schema.query_type.name == "query_root"
        assert graphql.validate_schema(schema) == []


def test_the_product_domain_fields_are_in_every_role_schema(app: Starlette) -> None:
    """The domain modules are imported plainly: their fields are there, with no stand-in schema."""
    schemas: RoleSchemas = app.state.runtime.graphql
    assert schemas.domain is DOMAIN
    for role in ("anonymous", "user", "admin"):
        schema = schemas.for_role(role)
        assert "nchatVersion" not in schema.query_type.fields  # type: ignore[union-attr]
        assert {"createStream", "updateStream"} <= set(schema.mutation_type.fields)  # type: ignore[union-attr]
        assert "streamStatus" in schema.subscription_type.fields  # type: ignore[union-attr]


def test_stream_inputs_are_generated_from_the_one_stream_input_declaration(app: Starlette) -> None:
    """createStream/updateStream take StreamInput's fields in its order (REST reads the same dataclass)."""
    names = [f.name for f in dataclasses.fields(StreamInput) if f.name != "extra"]
    camel = [n.split("_")[0] + "".join(p.title() for p in n.split("_")[1:]) for n in names]
    schema = app.state.runtime.graphql.for_role("user")
    create = schema.type_map["CreateStreamInput"].fields  # type: ignore[attr-defined]
    update = schema.type_map["UpdateStreamInput"].fields  # type: ignore[attr-defined]
    assert list(create) == camel
    assert list(update) == camel[1:]  # no channelId: a stream stays in its channel
    assert str(create["channelId"].type) == "ID!" and str(create["title"].type) == "String!"
    assert str(update["title"].type) == "String"
    assert all(str(create[n].type) == str(update[n].type) for n in camel[2:])
