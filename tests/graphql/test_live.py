"""Subscription root fields through the live-query engine on runtime.live (real bus, real Postgres)."""

from __future__ import annotations

import asyncio
from typing import Any

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
