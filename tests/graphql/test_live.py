"""Subscription root fields through the live-query engine on runtime.live (real bus, real Postgres)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg
import httpx
from starlette.applications import Starlette

from nchat_live.auth import Claims
from nchat_live.graphql.context import Context
from nchat_live.graphql.execution import subscribe
from tests.support import World, set_live


async def post_message(app: Starlette, world: World, content: str) -> None:
    async with app.state.runtime.database.session(Claims.user(world.bob)) as s:
        await s.fetchval("INSERT INTO nchat_stream_chat_messages (stream_id, user_id, content) VALUES ($1, $2, $3) "
                         "RETURNING id", world.public_stream, world.bob, content)


async def test_live_aggregate_and_cursor_stream(app: Starlette, cast: World) -> None:
    await set_live(app.state.runtime.database, cast.public_stream)  # chat needs a live stream (migration 0009)
    ctx = Context(app.state.runtime, Claims.user(cast.bob))
    live: Any = await subscribe(ctx, """subscription($s: uuid!) { nchat_stream_chat_messages_aggregate(
        where: {stream_id: {_eq: $s}, content: {_like: "live %"}}) { aggregate { count } } }""",
                                {"s": cast.public_stream})
    stream: Any = await subscribe(Context(app.state.runtime, Claims.user(cast.bob)), """subscription($s: uuid!) {
        nchat_stream_chat_messages_stream(batch_size: 10, cursor: {initial_value: {created_at: "now()"}},
          where: {stream_id: {_eq: $s}}) { content user { display_name } } }""", {"s": cast.public_stream})
    try:
        first = await asyncio.wait_for(live.__anext__(), 10)
        assert first == {"data": {"nchat_stream_chat_messages_aggregate": {"aggregate": {"count": 0}}}}
        pending = asyncio.ensure_future(stream.__anext__())
        await asyncio.sleep(0.3)
        await post_message(app, cast, "live one")
        second = await asyncio.wait_for(live.__anext__(), 15)
        assert second["data"]["nchat_stream_chat_messages_aggregate"]["aggregate"]["count"] == 1
        batch = await asyncio.wait_for(pending, 15)
        assert batch == {"data": {"nchat_stream_chat_messages_stream": [
            {"content": "live one", "user": {"display_name": "Bob"}}]}}
    finally:
        await live.aclose()
        await stream.aclose()


async def test_a_send_signals_live_queries_itself_without_a_notify(
    app: Starlette, client: httpx.AsyncClient, cast: World
) -> None:
    # sendChatMessage's one statement skips its tables' NOTIFY (migration 0031) and signals them over the
    # bus once committed: the live query still sees every message, well before its refetch (5 s).
    database = app.state.runtime.database
    await set_live(database, cast.public_stream)
    heard: list[str] = []
    listener = await asyncpg.connect(database.url)
    await listener.add_listener("nchat_table_changes", lambda _c, _p, _ch, table: heard.append(table))
    live: Any = await subscribe(Context(app.state.runtime, Claims.user(cast.bob)), """subscription($s: uuid!) {
        nchat_stream_chat_messages_aggregate(where: {stream_id: {_eq: $s}, content: {_like: "signal %"}}) {
          aggregate { count } } }""", {"s": cast.public_stream})
    send = "mutation($s: ID!, $c: String!) { sendChatMessage(streamId: $s, content: $c) { id } }"
    bob = cast.token(cast.bob)
    try:
        assert await asyncio.wait_for(live.__anext__(), 10) == {
            "data": {"nchat_stream_chat_messages_aggregate": {"aggregate": {"count": 0}}}}
        for n in range(1, 5):
            heard.clear()
            started = time.monotonic()
            answer = await client.post("/v1/graphql", json={"query": send, "variables": {
                "s": cast.public_stream, "c": f"signal {n}"}}, headers={"authorization": f"Bearer {bob}"})
            assert "errors" not in answer.json(), answer.text
            pushed = await asyncio.wait_for(live.__anext__(), 10)
            assert pushed["data"]["nchat_stream_chat_messages_aggregate"]["aggregate"]["count"] == n
            assert time.monotonic() - started < 2.5
            await listener.fetchval("SELECT 1")
            await asyncio.sleep(0.05)
            if n >= 3:  # its statement has earned its function (READER_AFTER): no NOTIFY from then on
                assert "nchat_stream_chat_messages" not in heard, heard
    finally:
        await live.aclose()
        await listener.close()
