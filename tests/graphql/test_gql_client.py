"""Part of the suite as a real client sends it: the `gql` library over HTTP to a real uvicorn."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from gql import Client, GraphQLRequest
from gql.transport.exceptions import TransportQueryError
from gql.transport.httpx import HTTPXAsyncTransport
from graphql import GraphQLError
from starlette.applications import Starlette

from nchat_live.db import Database
from tests.support import World, serve_app, set_live

pytestmark = pytest.mark.usefixtures("chat")


@pytest.fixture(scope="module")
async def server_url(app: Starlette) -> AsyncIterator[str]:
    # The app's lifespan is already running (module fixture); the server only serves.
    async with serve_app(app, lifespan="off") as url:
        yield f"{url}/v1/graphql"


def client(url: str, token: str | None = None) -> Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return Client(transport=HTTPXAsyncTransport(url=url, headers=headers), fetch_schema_from_transport=True)


async def test_gql_validates_against_the_introspected_schema_and_queries(server_url: str, cast: World) -> None:
    async with client(server_url, cast.token(cast.bob)) as session:
        result = await session.execute(GraphQLRequest(
            """query Stream($id: uuid!) {
                 nchat_streams_by_pk(id: $id) {
                   title broadcaster { display_name }
                   chat_messages(order_by: {created_at: desc}, limit: 2) { content user { display_name } }
                 }
               }""", variable_values={"id": cast.public_stream}))
        assert session.client.schema is not None
        assert session.client.schema.query_type.name == "query_root"  # type: ignore[union-attr]
    stream = result["nchat_streams_by_pk"]
    assert stream["broadcaster"] == {"display_name": "Alice"}
    assert [m["content"] for m in stream["chat_messages"]][:1] == ["third one"]


async def test_gql_mutation_and_error_codes(server_url: str, cast: World, db: Database) -> None:
    await set_live(db, cast.public_stream)  # reactions need a live stream (migration 0009)
    async with client(server_url, cast.token(cast.bob)) as session:
        inserted = await session.execute(GraphQLRequest(
            """mutation($s: uuid!, $u: uuid!) { insert_nchat_stream_reactions_one(object: {stream_id: $s, user_id: $u,
                 emoji: "👍", position_x: 50}) { emoji user { display_name } } }""",
            variable_values={"s": cast.public_stream, "u": cast.bob}))
        assert inserted == {"insert_nchat_stream_reactions_one": {"emoji": "👍", "user": {"display_name": "Bob"}}}
        with pytest.raises(TransportQueryError) as refused:
            await session.execute(GraphQLRequest(
                """mutation($s: uuid!, $u: uuid!) { insert_nchat_stream_reactions_one(object: {stream_id: $s,
                     user_id: $u, emoji: "x"}) { id } }""", variable_values={"s": cast.public_stream, "u": cast.alice}))
        assert refused.value.errors is not None
        assert refused.value.errors[0]["extensions"]["code"] == "permission-error"
    # The anonymous schema gql introspects has no stream_key: the client refuses the document itself.
    async with client(server_url) as anonymous:
        with pytest.raises(GraphQLError) as hidden:
            await anonymous.execute(GraphQLRequest(
                "query($id: uuid!) { nchat_streams_by_pk(id: $id) { stream_key } }",
                variable_values={"id": cast.public_stream}))
        assert "stream_key" in str(hidden.value)
