"""One GraphQL schema per request role: the generated Hasura fields plus the Strawberry domain fields.

Built at start-up from the Postgres catalog (`RoleSchemas.build`), held on `runtime.graphql`.
The domain operations (`graphql/operations`: `Query`, `Mutation`) and event subscriptions
(`graphql/events`: `Subscription`) are Strawberry types; their root fields are merged into every
role's `query_root`/`mutation_root`/`subscription_root` and run by graphql-core with the same
`Context`. A generated field wins over a domain field of the same name.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import strawberry
from graphql import (
    GraphQLField,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    assert_valid_schema,
    is_introspection_type,
    is_specified_scalar_type,
)
from strawberry.tools import merge_types

from ..auth import ROLES, Claims
from ..errors import AccessDenied
from . import events, operations
from .hasura.catalog import Catalog, load_catalog
from .hasura.resolvers import resolve_root, subscribe_root
from .hasura.schema import RoleTypes
from .operations import guests, highlights, media, polls, simulcast

if TYPE_CHECKING:
    from ..runtime import Runtime

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DomainRoots:
    """The Strawberry root types whose fields are merged into every role's generated roots."""

    query: type
    mutation: type | None = None
    subscription: type | None = None

    def strawberry_schema(self) -> strawberry.Schema:
        return strawberry.Schema(query=self.query, mutation=self.mutation, subscription=self.subscription)


# The product's domain fields: the streaming operations, the media operations, the event subscriptions.
DOMAIN = DomainRoots(
    query=merge_types("Query", (operations.Query, media.Query, polls.Query, highlights.Query,
                                    simulcast.Query, guests.Query)),
    mutation=merge_types("Mutation", (operations.Mutation, media.Mutation, polls.Mutation, highlights.Mutation,
                                       simulcast.Mutation, guests.Mutation)),
    subscription=events.Subscription,
)


class RoleSchemas:
    """The GraphQL schema of each request role, generated from one catalog (`runtime.graphql`)."""

    def __init__(self, catalog: Catalog, domain: DomainRoots = DOMAIN) -> None:
        self.catalog = catalog
        self.domain = domain
        self.strawberry = self.domain.strawberry_schema()
        self.schemas = {role: self._build(role) for role in ROLES}

    @classmethod
    async def build(cls, runtime: Runtime, domain: DomainRoots = DOMAIN) -> RoleSchemas:
        async with runtime.database.session(Claims.service()) as session:
            catalog = await load_catalog(session)
        return cls(catalog, domain)

    def for_role(self, role: str) -> GraphQLSchema:
        try:
            return self.schemas[role]
        except KeyError:
            raise AccessDenied(f"role '{role}' has no schema") from None

    def _build(self, role: str) -> GraphQLSchema:
        types = RoleTypes(self.catalog, role, resolve_root, subscribe_root)
        domain = self.strawberry._schema
        query = _merge("query_root", types.query_fields(), domain.query_type)
        mutation_fields = types.mutation_fields()
        mutation = _merge("mutation_root", mutation_fields, domain.mutation_type) if (
            mutation_fields or domain.mutation_type) else None
        subscription = _merge("subscription_root", types.query_fields(subscription=True), domain.subscription_type)
        roots = {domain.query_type, domain.mutation_type, domain.subscription_type}
        # Domain types reachable only through interfaces/unions are not found from the root
        # fields, so all of them are listed.
        extra: list[GraphQLNamedType] = [
            t for name, t in domain.type_map.items()
            if t not in roots and not name.startswith("__") and not is_introspection_type(t)
            and not is_specified_scalar_type(t)
        ]
        schema = GraphQLSchema(query=query, mutation=mutation, subscription=subscription, types=extra,
                               directives=domain.directives, extensions={"nchat_catalog": self.catalog,
                                                                         "nchat_role": role})
        # Strawberry's Info.schema reads this attribute of the graphql-core schema.
        schema._strawberry_schema = self.strawberry  # type: ignore[attr-defined]
        assert_valid_schema(schema)
        return schema


def _merge(name: str, generated: dict[str, GraphQLField], domain: GraphQLObjectType | None) -> GraphQLObjectType:
    fields: dict[str, Any] = dict(generated)
    if domain is not None:
        for field_name, field in domain.fields.items():
            if field_name in fields:
                log.warning("domain field %s.%s hidden by the generated field of that name", name, field_name)
                continue
            fields[field_name] = field
    return GraphQLObjectType(name, fields)
