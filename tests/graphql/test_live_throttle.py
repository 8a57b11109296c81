"""The live-query throttle: a change after a quiet spell is pushed at once; a burst coalesces.

An engine of its own with a 1 s throttle, so the two behaviours are far apart: the push of a lone
change must come well before the throttle would have let it (it used to wait the whole interval
after every change), and the runs of a burst must still be at least the interval apart.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from nchat_live.auth import Claims
from nchat_live.config import Settings
from nchat_live.db import Session
from nchat_live.graphql.context import Context
from nchat_live.graphql.hasura.live_queries import LiveQueryEngine
from nchat_live.resolvers import lifecycle
from nchat_live.runtime import Runtime
from tests.support import World

THROTTLE_S = 1.0
SQL = ("SELECT coalesce(json_agg(content ORDER BY created_at), '[]') FROM nchat_stream_chat_messages "
       "WHERE stream_id = $1")


class Query:
    """The LiveQuery shape (kind, table, sql, group_key, run), hand-written; records when it ran."""

    kind = "live"
    table = "nchat_stream_chat_messages"
    sql = SQL

    def __init__(self, stream_id: str) -> None:
        self.stream_id = stream_id
        self.ran_at: list[float] = []

    @property
    def group_key(self) -> tuple[Any, ...]:
        return (SQL, self.stream_id)

    async def run(self, session: Session) -> Any:
        self.ran_at.append(time.monotonic())
        return await session.fetchval(SQL, self.stream_id)


@pytest.fixture
async def runtime(settings: Settings, world: World) -> AsyncIterator[Runtime]:
    rt = Runtime(settings)
    await rt.open_database(migrate=False)
    async with rt.database.session(Claims.service()) as s:
        await lifecycle.transition(s, world.public_stream, lifecycle.LIVE)
    yield rt
    await rt.stop()


async def _post(runtime: Runtime, world: World, content: str) -> float:
    async with runtime.database.session(Claims.user(world.alice)) as s:
        await s.fetchval("INSERT INTO nchat_stream_chat_messages (stream_id, user_id, content) "
                         "VALUES ($1, $2, $3) RETURNING id", world.public_stream, world.alice, content)
    return time.monotonic()


async def test_a_lone_change_is_pushed_at_once_and_a_burst_coalesces(runtime: Runtime, world: World) -> None:
    engine = LiveQueryEngine(runtime.database, min_interval_s=THROTTLE_S)
    await engine.start()
    query = Query(world.public_stream)
    pushes: asyncio.Queue[tuple[float, Any]] = asyncio.Queue()

    async def consume() -> None:
        ctx = Context(runtime, Claims.user(world.bob))
        async for value in engine.subscribe(ctx, "chat", query):  # type: ignore[arg-type]
            await pushes.put((time.monotonic(), value))

    task = asyncio.create_task(consume())
    try:
        await asyncio.wait_for(pushes.get(), 10)  # the first result
        await asyncio.sleep(THROTTLE_S + 0.2)  # a quiet spell
        posted = await _post(runtime, world, "lone")
        pushed_at, value = await asyncio.wait_for(pushes.get(), 10)
        assert value[-1] == "lone"
        assert pushed_at - posted < THROTTLE_S * 0.8, "the lone change waited for the throttle"
        # A burst right after: its runs are still at least the throttle apart, and the last write shows.
        for i in range(3):
            await _post(runtime, world, f"burst {i}")
        while True:
            _, value = await asyncio.wait_for(pushes.get(), 10)
            if value[-1] == "burst 2":
                break
        gaps = [b - a for a, b in zip(query.ran_at[1:], query.ran_at[2:], strict=False)]
        assert gaps and min(gaps) >= THROTTLE_S * 0.95, gaps
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await engine.stop()


class Clock(Query):
    """A result that changes with no write to any table: only the safety-net refetch can see it."""

    async def run(self, session: Session) -> Any:
        self.ran_at.append(time.monotonic())
        return len(self.ran_at)


async def test_a_change_no_table_announces_is_seen_by_the_refetch(runtime: Runtime, world: World) -> None:
    refetch_s = 0.3
    engine = LiveQueryEngine(runtime.database, refetch_s=refetch_s, min_interval_s=0.0)
    await engine.start()
    query = Clock(world.public_stream)
    ctx = Context(runtime, Claims.user(world.bob))
    results = engine.subscribe(ctx, "clock", query)  # type: ignore[arg-type]
    try:
        assert [await asyncio.wait_for(anext(results), 5) for _ in range(3)] == [1, 2, 3]
        gaps = [b - a for a, b in zip(query.ran_at, query.ran_at[1:], strict=False)]
        assert min(gaps) >= refetch_s * 0.9, gaps
    finally:
        await results.aclose()
        await engine.stop()
