"""A PostgreSQL restart under write load: writes fail fast with a clear code, the pool recovers by
itself, and every write that answered success is still there afterwards.

Uses its own embedded PostgreSQL cluster so that restarting it disturbs nothing else.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from nchat_live.auth import Claims
from nchat_live.db import Database
from nchat_live.errors import NchatError
from tests.support import private_cluster, restart_cluster


@pytest.fixture
async def own_cluster() -> AsyncIterator[tuple[object, Database]]:
    async with private_cluster("nchat-fault-pg-") as (server, url):
        db = Database(url, pool_size=4)
        try:
            yield server, db
        finally:
            await db.close()


@pytest.mark.slow
async def test_restart_mid_load_fails_fast_recovers_and_loses_nothing(own_cluster: tuple[object, Database]) -> None:
    server, db = own_cluster
    accepted: list[str] = []
    failures: list[tuple[str, float]] = []
    stop = asyncio.Event()

    async def writer() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            name = f"user-{n}"
            started = time.monotonic()
            try:
                async with db.session(Claims.service()) as s:
                    await s.fetchval("INSERT INTO nchat_users (username) VALUES ($1) RETURNING id", name)
                accepted.append(name)
            except NchatError as exc:
                failures.append((exc.code, time.monotonic() - started))
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.01)

    task = asyncio.create_task(writer())
    await asyncio.sleep(1.0)
    before_restart = len(accepted)
    restart_began = time.monotonic()
    await asyncio.to_thread(restart_cluster, server, 1.5)
    back_at = time.monotonic()
    # The pool must recover on its own: successes resume soon after the server is back.
    while len(accepted) == before_restart or accepted[-1] == f"user-{before_restart}":
        assert time.monotonic() - back_at < 10, "writes did not resume within 10 s of the restart"
        await asyncio.sleep(0.1)
    resumed_after = time.monotonic() - back_at
    await asyncio.sleep(0.5)
    stop.set()
    await task

    assert before_restart > 5
    assert failures, "no write failed while the server was down"
    assert {code for code, _ in failures} <= {"database-unavailable"}, failures
    assert max(seconds for _, seconds in failures) < 6, "a write hung instead of failing fast"
    async with db.session(Claims.service()) as s:
        stored = {r["username"] for r in await s.fetch("SELECT username FROM nchat_users")}
    assert set(accepted) <= stored, "a write that answered success is missing"
    print(
        f"restart took {back_at - restart_began:.1f}s; {len(failures)} writes failed fast "
        f"(max {max(s for _, s in failures):.2f}s); writes resumed {resumed_after:.2f}s after the server was back; "
        f"{len(accepted)} accepted, all stored"
    )
