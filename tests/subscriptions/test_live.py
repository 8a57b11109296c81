"""Live queries against real Postgres: re-run on commit, diff-only pushes, shared executions, streams.

The queries here are hand-written objects with the `graphql.live.LiveQuery` shape (kind, table,
sql, group_key, run(session)); the GraphQL engine compiles the same shape from documents.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from nchat_live.auth import Claims
from nchat_live.config import Settings
from nchat_live.db import Session
from nchat_live.graphql.context import Context
from nchat_live.resolvers import lifecycle
from nchat_live.runtime import Runtime
from tests.support import World

MESSAGES = ("SELECT coalesce(json_agg(content ORDER BY created_at), '[]') FROM nchat_stream_chat_messages "
            "WHERE stream_id = $1")


@dataclass
class Query:
    ctx: Context
    sql: str
    params: list[Any]
    table: str = "nchat_stream_chat_messages"
    kind: str = "live"
    cursor: Any = None
    runs: list[str] = field(default_factory=list)

    @property
    def group_key(self) -> tuple[Any, ...]:
        if self.kind == "stream":
            return ("stream", id(self))
        return (self.sql, tuple(self.params), self.ctx.claims.visibility_key())

    async def run(self, session: Session) -> Any:
        self.runs.append(session.claims.role)
        if self.kind == "stream":
            rows = await session.fetch(
                "SELECT content, created_at FROM nchat_stream_chat_messages WHERE stream_id = $1 "
                "AND created_at > coalesce($2, '-infinity'::timestamptz) ORDER BY created_at LIMIT 2",
                self.params[0], self.cursor)
            if rows:
                self.cursor = rows[-1]["created_at"]
            return [r["content"] for r in rows]
        return await session.fetchval(self.sql, *self.params)


@pytest.fixture(scope="module")
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    rt = Runtime(settings)
    await rt.start()
    yield rt
    await rt.stop()


@pytest.fixture(autouse=True)
async def live_streams(runtime: Runtime, world: World) -> None:
    # Chat is written only to live streams (migration 0009's write rules).
    async with runtime.database.session(Claims.service()) as s:
        for stream_id in (world.public_stream, world.private_stream):
            await lifecycle.transition(s, stream_id, lifecycle.LIVE)


async def post(runtime: Runtime, world: World, stream_id: str, content: str) -> None:
    async with runtime.database.session(Claims.user(world.alice)) as s:
        await s.fetchval("INSERT INTO nchat_stream_chat_messages (stream_id, user_id, content) "
                         "VALUES ($1, $2, $3) RETURNING id", stream_id, world.alice, content)


class Tap:
    """Consumes a subscription in a task, so a test can wait with a timeout without cancelling it."""

    def __init__(self, it: AsyncIterator[Any]) -> None:
        self.items: asyncio.Queue[Any] = asyncio.Queue()
        self.task = asyncio.create_task(self._run(it))

    async def _run(self, it: AsyncIterator[Any]) -> None:
        async for item in it:
            await self.items.put(item)

    async def take(self, within: float = 5.0) -> Any:
        return await asyncio.wait_for(self.items.get(), within)

    async def close(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


async def test_live_query_pushes_on_commit_only_when_the_result_differs(runtime: Runtime, world: World) -> None:
    assert runtime.live is not None
    ctx = Context(runtime, Claims.user(world.bob))
    a = Tap(runtime.live.subscribe(ctx, "chat", Query(ctx, MESSAGES, [world.public_stream])))  # type: ignore[arg-type]
    assert await a.take() == []
    await post(runtime, world, world.public_stream, "first")
    assert await a.take() == ["first"]
    # A write to another stream's chat re-runs the query, but the same result is not sent again.
    await post(runtime, world, world.private_stream, "elsewhere")
    with pytest.raises(TimeoutError):
        await a.take(0.5)
    # A rolled-back write sends nothing.
    with pytest.raises(RuntimeError):
        async with runtime.database.session(Claims.user(world.alice)) as s:
            await s.fetchval("INSERT INTO nchat_stream_chat_messages (stream_id, user_id, content) "
                             "VALUES ($1, $2, 'ghost') RETURNING id", world.public_stream, world.alice)
            raise RuntimeError("roll back")
    await post(runtime, world, world.public_stream, "second")
    assert await a.take() == ["first", "second"]
    await a.close()


async def test_same_query_and_visibility_share_one_execution_but_claims_never_mix(
    runtime: Runtime, world: World
) -> None:
    assert runtime.live is not None
    bob1, bob2 = Context(runtime, Claims.user(world.bob)), Context(runtime, Claims.user(world.bob))
    carol = Context(runtime, Claims.user(world.carol))
    q1 = Query(bob1, MESSAGES, [world.private_stream])
    q2 = Query(bob2, MESSAGES, [world.private_stream])
    q3 = Query(carol, MESSAGES, [world.private_stream])
    alice = Context(runtime, Claims.user(world.alice))
    q4 = Query(alice, MESSAGES, [world.private_stream])
    subs = [Tap(runtime.live.subscribe(q.ctx, "chat", q)) for q in (q1, q2, q3, q4)]  # type: ignore[arg-type]
    first = [await s.take() for s in subs]
    assert first == [[], [], [], []]
    await post(runtime, world, world.private_stream, "members")
    # Only alice is a member of the private channel; bob and carol still see nothing (no push).
    assert await subs[3].take() == ["members"]
    # One group for both bobs (q2 never ran), one for carol, one for alice. The groups re-run
    # independently, so alice's push may come before the others have re-run: give them a moment.
    for _ in range(50):
        if len(q1.runs) >= 2 and len(q3.runs) >= 2:
            break
        await asyncio.sleep(0.1)
    assert q2.runs == [] and len(q1.runs) >= 2 and len(q3.runs) >= 2
    for outsider in subs[:3]:
        with pytest.raises(TimeoutError):
            await outsider.take(0.3)
    for s in subs:
        await s.close()
    assert runtime.live.groups == {}


async def test_stream_subscription_yields_batches_after_its_cursor(runtime: Runtime, world: World) -> None:
    assert runtime.live is not None
    ctx = Context(runtime, Claims.user(world.bob))
    for content in ("first", "second", "third"):
        await post(runtime, world, world.public_stream, content)
    query = Query(ctx, "", [world.public_stream], kind="stream")
    sub = Tap(runtime.live.subscribe(ctx, "chat_stream", query))  # type: ignore[arg-type]
    # Two per batch, then what arrives after the cursor.
    assert await sub.take() == ["first", "second"]
    assert await sub.take() == ["third"]
    await post(runtime, world, world.public_stream, "fourth")
    assert await sub.take() == ["fourth"]
    await sub.close()
