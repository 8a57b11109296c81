"""The event bus on each backend: delivery across bus instances, big payloads, rollback, secrets."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from nchat_live.auth import Claims
from nchat_live.config import Settings
from nchat_live.db import Database
from nchat_live.graphql.hasura.live_queries import SIGNAL_BATCH_S, TABLES_CHANGED, LiveQueryEngine
from nchat_live.runtime import Runtime
from nchat_live.subscriptions.bus import EventBus, SlowSubscriber
from tests.support import NEEDS_REDIS, REDIS_URL, World

BACKENDS = ["memory://", "postgres://", pytest.param(REDIS_URL, marks=NEEDS_REDIS)]


@pytest.fixture(params=BACKENDS, ids=["memory", "postgres", "redis"])
async def buses(request: pytest.FixtureRequest, database_url: str) -> AsyncIterator[tuple[EventBus, EventBus]]:
    """Two buses on one backend, as two API processes would hold (memory: one process, one bus)."""
    url: str = request.param
    first = EventBus(url, database_url=database_url)
    await first.start()
    second = first
    if url != "memory://":
        second = EventBus(url, database_url=database_url)
        await second.start()
    try:
        yield first, second
    finally:
        await first.stop()
        if second is not first:
            await second.stop()


async def test_event_published_on_one_bus_reaches_listener_on_the_other(
    buses: tuple[EventBus, EventBus],
) -> None:
    publisher, receiver = buses
    with receiver.listen(streams=["s1"]) as listener, receiver.listen(streams=["other"]) as unrelated:
        await publisher.publish("chat.message", {"stream_id": "s1", "channel_id": "c1", "content": "hi"})
        event = await asyncio.wait_for(listener.get(), 5)
        assert event.type == "chat.message"
        assert event.payload["content"] == "hi"
        assert unrelated.get_nowait() is None


async def test_payload_over_notify_limit_arrives_whole(buses: tuple[EventBus, EventBus]) -> None:
    publisher, receiver = buses
    big = "x" * 20_000  # NOTIFY refuses 8000 bytes or more
    with receiver.listen(streams=["s2"]) as listener:
        await publisher.publish("qa.question", {"stream_id": "s2", "channel_id": "c", "content": big})
        event = await asyncio.wait_for(listener.get(), 5)
    assert event.payload["content"] == big


async def test_stream_keys_and_deleted_content_never_travel(buses: tuple[EventBus, EventBus]) -> None:
    publisher, receiver = buses
    with receiver.listen(streams=["s3"]) as listener:
        await publisher.publish("stream.updated", {"stream_id": "s3", "channel_id": "c",
                                                   "stream": {"stream_key": "secret", "title": "t"}})
        await publisher.publish("chat.deleted", {"stream_id": "s3", "channel_id": "c", "id": "m",
                                                 "content": "rude words"})
        updated = await asyncio.wait_for(listener.get(), 5)
        deleted = await asyncio.wait_for(listener.get(), 5)
    assert updated.payload["stream"] == {"title": "t"}
    assert "content" not in deleted.payload and deleted.payload["id"] == "m"


async def test_full_listener_is_dropped_with_a_counted_reason_and_others_still_receive() -> None:
    bus = EventBus("memory://")
    await bus.start()
    try:
        with bus.listen(streams=["s"], maxsize=3) as stalled, bus.listen(streams=["s"], maxsize=100) as reader:
            for i in range(10):
                await bus.publish("reaction", {"stream_id": "s", "channel_id": "c", "n": i})
            got = [(await asyncio.wait_for(reader.get(), 2)).payload["n"] for _ in range(10)]
            assert got == list(range(10))
            with pytest.raises(SlowSubscriber):
                await stalled.get()
        assert bus.stats.dropped["listener_queue_full"] == 1
        assert bus.stats.listeners == 0
    finally:
        await bus.stop()


@pytest.fixture
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    rt = Runtime(settings)
    await rt.start()
    try:
        yield rt
    finally:
        await rt.stop()


async def test_session_emit_publishes_after_commit_and_not_after_rollback(runtime: Runtime, world: World) -> None:
    # The runtime's background jobs (scheduler, media) publish too: count only what sessions publish for this stream.
    published: list[dict[str, Any]] = []
    forward = runtime.database.publisher
    assert forward is not None

    async def recording(event_type: str, payload: dict[str, Any]) -> None:
        if payload.get("stream_id") == world.public_stream:
            published.append(payload)
        await forward(event_type, payload)

    runtime.database.publisher = recording
    with runtime.bus.listen(streams=[world.public_stream]) as listener:
        with pytest.raises(RuntimeError):
            async with runtime.database.session(Claims.service()) as s:
                s.emit("chat.message", {"stream_id": world.public_stream, "channel_id": world.public_channel,
                                        "content": "never"})
                raise RuntimeError("roll back")
        async with runtime.database.session(Claims.service()) as s:
            s.emit("chat.message", {"stream_id": world.public_stream, "channel_id": world.public_channel,
                                    "content": "committed"})
            # Not yet: the transaction is still open.
            await asyncio.sleep(0.05)
            assert listener.get_nowait() is None
        event = await asyncio.wait_for(listener.get(), 5)
        assert event.payload["content"] == "committed"
        await asyncio.sleep(0.1)
        assert listener.get_nowait() is None
    assert [p["content"] for p in published] == ["committed"]


async def test_delivery_observes_the_time_since_publishing(buses: tuple[EventBus, EventBus]) -> None:
    from nchat_live.observability import BUS_LAG

    def observed() -> float:
        return next(s.value for s in BUS_LAG.collect()[0].samples if s.name.endswith("_count"))

    publisher, receiver = buses
    before = observed()
    with receiver.listen(streams=["lag"]) as listener:
        await publisher.publish("chat.message", {"stream_id": "lag", "channel_id": "c"})
        event = await asyncio.wait_for(listener.get(), 5)
    assert event.published_at is not None and 0 <= time.time() - event.published_at < 5
    # Once per bus that received it: both buses here are in this process (memory: one bus).
    expected = before + (1 if publisher is receiver else 2)
    for _ in range(100):
        if observed() >= expected:
            break
        await asyncio.sleep(0.02)
    assert observed() == expected


async def test_live_query_signals_reach_the_other_process_gathered(
    buses: tuple[EventBus, EventBus], db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Migration 0031: a send's tables are signalled by its process instead of by NOTIFY. That process's
    # queries at once; the other processes' over the bus, a burst of sends gathered into one event.
    first, second = buses
    engines = [LiveQueryEngine(db, bus=bus) for bus in (first, second)]
    woken: list[list[str | None]] = [[], []]
    for engine, seen in zip(engines, woken, strict=True):
        # What each engine was told, table by table (None: everything), nothing else.
        monkeypatch.setattr(engine, "_wake",
                            lambda tables, seen=seen: seen.extend([None] if tables is None else tables))
        await engine.start()
    try:
        with second.listen(types={TABLES_CHANGED}) as events:
            for n in range(50):
                engines[0].signal(("nchat_stream_chat_messages", "nchat_stream_viewers" if n % 2 else "nchat_streams"))
            assert len(woken[0]) == 100  # its own queries: at once, each time
            if first is second:  # memory: one process, nobody else to tell
                await asyncio.sleep(SIGNAL_BATCH_S * 5)
                assert events.get_nowait() is None and woken[1] == []
                return
            event = await asyncio.wait_for(events.get(), 5)
            assert event.payload["tables"] == ["nchat_stream_chat_messages", "nchat_stream_viewers", "nchat_streams"]
            await asyncio.sleep(SIGNAL_BATCH_S * 5)
            assert events.get_nowait() is None  # one event for the burst
            assert sorted(t for t in woken[1] if t is not None) == event.payload["tables"]
            assert woken[0][100:] == []  # a process skips its own signals coming back
    finally:
        for engine in engines:
            await engine.stop()
