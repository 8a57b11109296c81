"""Table subscriptions over a real websocket: the push of a change, as the bench's live push measures it.

A subscription of one live root field is compiled into one statement that builds the whole `data`
object (live_queries.compile_document) and its JSON text goes into the frame as it is; these tests
hold that path to what the executor's path answers: the same data as the same document over HTTP,
one re-run per committed change, nothing pushed for an unchanged result, each subscriber's rows.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from nchat_live.auth import Claims
from tests.support import World, set_live

from .conftest import Server, open_socket, recv_json

# An alias, a fragment, a variable and an order: what the compiler reads from the document.
CHAT = """subscription($s: uuid!, $n: Int!) { latest: nchat_stream_chat_messages(
    where: {stream_id: {_eq: $s}}, order_by: {created_at: desc}, limit: $n) { ...row } }
  fragment row on nchat_stream_chat_messages { id content user { display_name } }"""


async def post(server: Server, world: World, stream_id: str, content: str) -> None:
    async with server.runtime.database.session(Claims.user(world.alice)) as s:
        await s.fetchval("INSERT INTO nchat_stream_chat_messages (stream_id, user_id, content) "
                         "VALUES ($1, $2, $3) RETURNING id", stream_id, world.alice, content)


async def subscribe(ws: Any, op_id: str, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    await ws.send(json.dumps({"type": "subscribe", "id": op_id, "payload": {"query": query, "variables": variables}}))
    return await recv_json(ws, 10)


async def query_over_http(server: Server, token: str, query: str, variables: dict[str, Any]) -> Any:
    async with httpx.AsyncClient() as client:
        response = await client.post(f"http://127.0.0.1:{server.port}/v1/graphql",
                                     json={"query": query, "variables": variables},
                                     headers={"Authorization": f"Bearer {token}"})
    return response.json()


@pytest.fixture(autouse=True)
async def live_streams(server: Server, world: World) -> None:
    # Chat is written only to live streams (migration 0009's write rules).
    for stream_id in (world.public_stream, world.private_stream):
        await set_live(server.runtime.database, stream_id)


async def test_each_change_is_one_rerun_and_one_push_of_what_the_query_answers(server: Server, world: World) -> None:
    token = world.token(world.bob)
    variables = {"s": world.public_stream, "n": 2}
    ws = await open_socket(server.url(), token)
    try:
        await post(server, world, world.public_stream, "before")
        first = await subscribe(ws, "1", CHAT, variables)
        answer = await query_over_http(server, token, CHAT.replace("subscription", "query", 1), variables)
        assert first == {"type": "next", "id": "1", "payload": answer}
        assert [row["content"] for row in answer["data"]["latest"]] == ["before"]
        for n in range(3):
            runs = server.runtime.live.executions
            await post(server, world, world.public_stream, f"push {n}")
            pushed = await recv_json(ws, 10)
            rows = pushed["payload"]["data"]["latest"]
            assert [row["content"] for row in rows] == [f"push {n}", f"push {n - 1}" if n else "before"]
            assert rows[0]["user"] == {"display_name": "Alice"}
            # The insert notifies twice (the chat table, the stream's counter): one re-run for both.
            assert server.runtime.live.executions == runs + 1
        # A change elsewhere in the table re-runs the query; the same result is not pushed again.
        runs = server.runtime.live.executions
        await post(server, world, world.private_stream, "elsewhere")
        for _ in range(100):
            if server.runtime.live.executions > runs:
                break
            await asyncio.sleep(0.01)
        assert server.runtime.live.executions > runs
        with pytest.raises(TimeoutError):
            await recv_json(ws, 0.5)
    finally:
        await ws.close()


async def test_each_subscriber_gets_the_rows_its_claims_may_read(server: Server, world: World) -> None:
    """Alice belongs to the private channel, Bob does not: the same document, two answers."""
    query = "subscription($s: uuid!) { nchat_stream_chat_messages(where: {stream_id: {_eq: $s}}) { content } }"
    alice = await open_socket(server.url(), world.token(world.alice))
    bob = await open_socket(server.url(), world.token(world.bob))
    try:
        await subscribe(alice, "a", query, {"s": world.private_stream})
        assert (await subscribe(bob, "b", query, {"s": world.private_stream}))["payload"] == {
            "data": {"nchat_stream_chat_messages": []}}
        await post(server, world, world.private_stream, "members only")
        pushed = await recv_json(alice, 10)
        assert {"content": "members only"} in pushed["payload"]["data"]["nchat_stream_chat_messages"]
        with pytest.raises(TimeoutError):
            await recv_json(bob, 0.5)
    finally:
        await alice.close()
        await bob.close()


async def test_a_document_the_compiler_does_not_take_runs_through_the_executor(server: Server, world: World) -> None:
    """`__typename` is answered by the executor, not by SQL: the subscription still works, pushes included."""
    query = """subscription($s: uuid!) { nchat_stream_chat_messages(where: {stream_id: {_eq: $s}},
        order_by: {created_at: desc}, limit: 1) { __typename content } }"""
    ws = await open_socket(server.url(), world.token(world.bob))
    try:
        await subscribe(ws, "1", query, {"s": world.public_stream})
        await post(server, world, world.public_stream, "typed")
        pushed = await recv_json(ws, 10)
        assert pushed["payload"] == {"data": {"nchat_stream_chat_messages": [
            {"__typename": "nchat_stream_chat_messages", "content": "typed"}]}}
    finally:
        await ws.close()


async def test_the_legacy_protocol_gets_the_same_data_in_its_own_envelope(server: Server, world: World) -> None:
    token = world.token(world.bob)
    variables = {"s": world.public_stream, "n": 1}
    ws = await open_socket(server.url(), token, "graphql-ws")
    try:
        await ws.send(json.dumps({"type": "start", "id": "op\u0000\"1", "payload": {"query": CHAT,
                                                                                 "variables": variables}}))
        first = await recv_json(ws, 10)
        answer = await query_over_http(server, token, CHAT.replace("subscription", "query", 1), variables)
        assert first == {"type": "data", "id": "op\u0000\"1", "payload": answer}
    finally:
        await ws.close()
