"""Quality-metrics partitions: the scheduler's role makes a month's partition (migration 0030).

0001's function ran as its caller, and the scheduler (nchat_admin) may not create tables: once the month
32 days ahead had no partition, every scheduler tick failed. These run the function as the scheduler does.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone

from nchat_live.auth import Claims
from nchat_live.db import Database
from tests.support import World

PARENT = "nchat_stream_quality_metrics"


async def ensure(db: Database, at: datetime) -> str:
    async with db.session(Claims.service()) as s:
        return str(await s.fetchval("SELECT nchat.ensure_quality_metrics_partition($1)", at))


async def homes(db: Database, stream_id: str) -> dict[datetime, str]:
    """Where each of the stream's rows is stored, by recorded_at."""
    async with db.session(Claims.service()) as s:
        rows = await s.fetch(f"SELECT recorded_at, tableoid::regclass::text AS home FROM {PARENT} "
                             "WHERE stream_id = $1", stream_id)
    return {r["recorded_at"]: r["home"] for r in rows}


async def test_the_scheduler_role_makes_a_utc_month_and_takes_its_rows_from_the_default(
    db: Database, world: World
) -> None:
    first = datetime(2031, 5, 1, tzinfo=UTC)
    mid = datetime(2031, 5, 14, 12, tzinfo=UTC)
    # 23:30 on May 31st two hours west of UTC is June 1st in UTC: not May's row.
    june = datetime(2031, 5, 31, 23, 30, tzinfo=timezone(timedelta(hours=-2)))
    async with db.session(Claims.service()) as s:
        await s.executemany(f"INSERT INTO {PARENT} (stream_id, recorded_at, bitrate_kbps) VALUES ($1, $2, 2500)",
                            [(world.public_stream, at) for at in (first, mid, june)])
    default = f"{PARENT}_default"
    assert set((await homes(db, world.public_stream)).values()) == {default}

    assert await ensure(db, mid) == f"{PARENT}_2031_05"
    assert await homes(db, world.public_stream) == {first: f"{PARENT}_2031_05", mid: f"{PARENT}_2031_05",
                                                     june: default}
    # Again, and from the month's last instant: the same partition, nothing moved or lost.
    assert await ensure(db, datetime(2031, 6, 1, tzinfo=UTC) - timedelta(microseconds=1)) == f"{PARENT}_2031_05"
    assert await ensure(db, june) == f"{PARENT}_2031_06"
    assert await homes(db, world.public_stream) == {first: f"{PARENT}_2031_05", mid: f"{PARENT}_2031_05",
                                                     june: f"{PARENT}_2031_06"}
    async with db.session(Claims.service()) as s:
        bounds = await s.fetchval("SELECT pg_get_expr(c.relpartbound, c.oid) FROM pg_class c WHERE c.relname = $1",
                                  f"{PARENT}_2031_05")
    assert bounds == "FOR VALUES FROM ('2031-05-01 00:00:00+00') TO ('2031-06-01 00:00:00+00')"


async def test_two_servers_making_the_same_month_both_succeed(db: Database) -> None:
    at = datetime(2032, 2, 10, tzinfo=UTC)
    assert list(await asyncio.gather(ensure(db, at), ensure(db, at), ensure(db, at))) == [f"{PARENT}_2032_02"] * 3
    async with db.session(Claims.service()) as s:
        made = await s.fetchval("SELECT count(*) FROM pg_inherits WHERE inhparent = $1::regclass "
                                "AND inhrelid::regclass::text = $2", PARENT, f"{PARENT}_2032_02")
    assert made == 1
