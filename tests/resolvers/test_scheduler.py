"""The scheduler: reminders once per lead time, expiry of stale scheduled streams, several processes."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

import asyncpg
import pytest

from nchat_live.auth import Claims
from nchat_live.config import Settings
from nchat_live.db import Database
from nchat_live.errors import ConfigError, NchatError
from nchat_live.resolvers import scheduler, streams
from nchat_live.resolvers.scheduler import StreamScheduler
from nchat_live.resolvers.streams import StreamInput
from tests.support import World

from .conftest import Clock, Events


async def scheduled(db: Database, settings: Settings, world: World, at_minutes: float, clock: Clock) -> str:
    async with db.session(Claims.user(world.alice)) as s:
        created = await streams.create_stream(s, settings, StreamInput(
            channel_id=world.public_channel, title="Soon", scheduled_at=clock() + timedelta(minutes=at_minutes)),
            now=clock())
    return created["id"]


async def test_reminders_go_once_per_lead_to_opted_in_users(
    db: Database, settings: Settings, world: World, events: Events, clock: Clock
) -> None:
    sid = await scheduled(db, settings, world, 20, clock)
    for user in (world.bob, world.carol):
        async with db.session(Claims.user(user)) as s:
            await scheduler.set_stream_reminder(s, sid)
    async with db.session(Claims.user(world.carol)) as s:
        await scheduler.set_stream_reminder(s, sid, enabled=False)
    task = StreamScheduler(db)
    assert (sid, 15) not in (await task.run_once(clock.advance(60))).reminders  # 19 min before
    clock.advance(5 * 60)  # 14 min before: the 15-minute reminder is due, in two processes at once
    reports = await asyncio.gather(StreamScheduler(db).run_once(clock()), StreamScheduler(db).run_once(clock()))
    assert sum((sid, 15) in r.reminders for r in reports) == 1
    assert (sid, 15) not in (await StreamScheduler(db).run_once(clock.advance(60))).reminders  # a restart
    assert (sid, 0) in (await task.run_once(clock.advance(13 * 60 + 1))).reminders
    sent = [p for p in events.of("stream.reminder") if p["stream_id"] == sid]
    assert [(p["lead_minutes"], p["user_ids"]) for p in sent] == [(15, [world.bob]), (0, [world.bob])]
    assert sent[0]["channel_id"] == world.public_channel


async def test_stale_scheduled_streams_expire_to_cancelled(
    db: Database, settings: Settings, world: World, events: Events, clock: Clock
) -> None:
    sid = await scheduled(db, settings, world, 1, clock)
    task = StreamScheduler(db, grace=timedelta(minutes=10))
    assert sid not in (await task.run_once(clock.advance(10 * 60))).expired_streams
    assert sid in (await task.run_once(clock.advance(2 * 60))).expired_streams
    async with db.session(Claims.user(world.alice)) as s:
        stream = await streams.get_stream(s, sid)
    assert stream["status"] == "cancelled" and stream["end_reason"] == "expired"
    assert any(p["stream_id"] == sid for p in events.of("stream.cancelled"))


async def test_a_failing_duty_is_rolled_back_alone_and_the_others_still_run(
    db: Database, database_url: str, settings: Settings, world: World, events: Events, clock: Clock
) -> None:
    # The failure of 2026-11-30, for real: the scheduler's role may not make the month's partition.
    # Before, that failed the whole tick, and reminders, expiry and the rest stopped with it.
    sid = await scheduled(db, settings, world, 1, clock)
    owner = await asyncpg.connect(database_url)
    grant = "ON FUNCTION nchat.ensure_quality_metrics_partition(timestamptz) {} nchat_admin"
    try:
        await owner.execute("REVOKE EXECUTE " + grant.format("FROM"))
        report = await StreamScheduler(db, grace=timedelta(minutes=10)).run_once(clock.advance(12 * 60))
    finally:
        await owner.execute("GRANT EXECUTE " + grant.format("TO"))
        await owner.close()
    assert report.failed == ["make_partitions"] and not report.skipped
    assert sid in report.expired_streams  # the duty before it, committed
    async with db.session(Claims.user(world.alice)) as s:
        assert (await streams.get_stream(s, sid))["status"] == "cancelled"
    assert any(p["stream_id"] == sid for p in events.of("stream.cancelled"))
    assert (await StreamScheduler(db).run_once(clock.advance(5))).failed == []


async def test_a_tick_without_the_database_logs_one_warning_not_a_traceback_per_duty(
    caplog: pytest.LogCaptureFixture, clock: Clock
) -> None:
    # Nothing listens on port 1: the database is away, as during a restart.
    away = Database("postgresql://postgres@127.0.0.1:1/postgres")
    try:
        with caplog.at_level(logging.WARNING, logger=scheduler.__name__):
            report = await StreamScheduler(away).run_once(clock())
    finally:
        await away.close()
    assert report.failed == ["remind", "expire_streams", "expire_viewers", "make_partitions", "close_polls",
                             "fold_chat_tallies"]
    records = [r for r in caplog.records if r.name == scheduler.__name__]
    assert [(r.levelno, r.exc_info) for r in records] == [(logging.WARNING, None)], caplog.text
    assert "database unavailable" in records[0].getMessage()


async def test_reminders_only_for_upcoming_streams(db: Database, world: World) -> None:
    async with db.session(Claims.service()) as s:
        await s.fetchval("UPDATE nchat_streams SET status = 'ended' WHERE id = $1 RETURNING id", world.public_stream)
    with pytest.raises(NchatError) as info:
        async with db.session(Claims.user(world.bob)) as s:
            await scheduler.set_stream_reminder(s, world.public_stream)
    assert info.value.code == "stream-not-scheduled"


async def test_start_and_stop_own_the_task(db: Database) -> None:
    task = StreamScheduler(db, interval=0.05)
    task.start()
    await asyncio.sleep(0.1)
    await task.stop()
    assert task._task is None


def test_lead_times_and_grace_come_from_settings(db: Database, settings: Settings) -> None:
    task = StreamScheduler.from_settings(db, settings.model_copy(update={
        "reminder_lead_minutes": "0, 60,15", "schedule_grace_minutes": 5}))
    assert task.lead_minutes == (60, 15, 0) and task.grace == timedelta(minutes=5)
    with pytest.raises(ConfigError, match="'soon'"):
        StreamScheduler.from_settings(db, settings.model_copy(update={"reminder_lead_minutes": "soon"}))
