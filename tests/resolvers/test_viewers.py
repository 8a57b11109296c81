"""Viewer sessions: counters (also under 20 concurrent joins), heartbeats, leaving, expiry, anonymous."""

from __future__ import annotations

import asyncio

import pytest

from nchat_live.auth import Claims
from nchat_live.db import Database
from nchat_live.errors import NchatError
from nchat_live.resolvers import streams, viewers
from tests.support import World

from .conftest import Clock, Events, go_live


async def counters(db: Database, stream_id: str) -> tuple[int, int, int]:
    async with db.session(Claims.service()) as s:
        r = await s.fetchrow("SELECT current_viewers, peak_viewers, total_views FROM nchat_streams WHERE id = $1",
                             stream_id)
    assert r is not None
    return r["current_viewers"], r["peak_viewers"], r["total_views"]


async def test_join_heartbeat_leave_keep_counters_and_watch_time(
    db: Database, world: World, events: Events, clock: Clock
) -> None:
    await go_live(db, world.public_stream)
    async with db.session(Claims.user(world.bob)) as s:
        joined = await viewers.join_stream(s, world.public_stream, "720p", now=clock())
    assert joined["current_viewers"] == 1 and joined["user_id"] == world.bob
    async with db.session(Claims.user(world.bob)) as s:
        beat = await viewers.viewer_heartbeat(s, joined["session_id"], "480p", 300, now=clock.advance(10))
    assert beat["quality"] == "480p" and beat["quality_switches"] == 1 and beat["buffering_ms"] == 300
    assert beat["watch_duration_seconds"] == 10
    async with db.session(Claims.user(world.bob)) as s:
        left = await viewers.leave_stream(s, joined["session_id"], now=clock.advance(5))
    assert left["left_at"] is not None and left["watch_duration_seconds"] == 15 and left["current_viewers"] == 0
    assert await counters(db, world.public_stream) == (0, 1, 1)
    assert [t for t, _ in events][1:] == ["viewer.joined", "viewer.count", "viewer.left", "viewer.count"]
    assert all(p["stream_id"] == world.public_stream and p["channel_id"] == world.public_channel for _, p in events)
    with pytest.raises(NchatError) as info:
        async with db.session(Claims.user(world.bob)) as s:
            await viewers.viewer_heartbeat(s, joined["session_id"], now=clock.advance(1))
    assert info.value.code == "viewer-session-not-found"


async def test_twenty_concurrent_joins_count_exactly(db: Database, world: World) -> None:
    await go_live(db, world.public_stream)

    # Twenty distinct viewers (anonymous clients the server cannot tell apart: no address); one user's
    # repeated joins count once since issue 12 (tests/security/test_attacks.py).
    async def join(i: int) -> str:
        async with db.session(Claims.anonymous()) as s:
            return (await viewers.join_stream(s, world.public_stream, "auto"))["session_id"]

    tokens = await asyncio.gather(*(join(i) for i in range(20)))
    assert await counters(db, world.public_stream) == (20, 20, 20)

    async def leave(i: int, token: str) -> None:
        async with db.session(Claims.anonymous()) as s:
            await viewers.leave_stream(s, token)

    await asyncio.gather(*(leave(i, t) for i, t in enumerate(tokens[:7])))
    assert await counters(db, world.public_stream) == (13, 20, 20)


async def test_anonymous_viewers_only_on_public_streams(db: Database, world: World) -> None:
    await go_live(db, world.private_stream)
    with pytest.raises(NchatError) as info:
        async with db.session(Claims.anonymous()) as s:
            await viewers.join_stream(s, world.private_stream)
    assert info.value.code == "stream-not-found"


async def test_join_refuses_streams_that_are_not_live_and_bad_quality(db: Database, world: World) -> None:
    with pytest.raises(NchatError) as info:
        async with db.session(Claims.user(world.bob)) as s:
            await viewers.join_stream(s, world.public_stream)
    assert info.value.code == "stream-not-live"
    await go_live(db, world.public_stream)
    with pytest.raises(NchatError, match="quality '8k'") as info:
        async with db.session(Claims.user(world.bob)) as s:
            await viewers.join_stream(s, world.public_stream, "8k")
    assert info.value.code == "validation-failed"
    assert await counters(db, world.public_stream) == (0, 0, 0)


async def test_someone_elses_session_cannot_be_touched(db: Database, world: World) -> None:
    await go_live(db, world.public_stream)
    async with db.session(Claims.user(world.bob)) as s:
        token = (await viewers.join_stream(s, world.public_stream))["session_id"]
    with pytest.raises(NchatError, match="not found"):
        async with db.session(Claims.user(world.carol)) as s:
            await viewers.leave_stream(s, token)
    assert (await counters(db, world.public_stream))[0] == 1


async def test_silent_sessions_expire_after_30_seconds(db: Database, world: World, events: Events,
                                                       clock: Clock) -> None:
    await go_live(db, world.public_stream)
    async with db.session(Claims.user(world.bob)) as s:
        quiet = await viewers.join_stream(s, world.public_stream, now=clock())
    async with db.session(Claims.anonymous()) as s:
        alive = await viewers.join_stream(s, world.public_stream, now=clock())
    async with db.session(Claims.anonymous()) as s:
        await viewers.viewer_heartbeat(s, alive["session_id"], now=clock.advance(20))
    clock.advance(15)  # quiet: silent 35 s; alive: 15 s
    async with db.session(Claims.service()) as s:
        expired = await viewers.expire_silent_sessions(s, clock())
    assert expired >= 1
    assert (await counters(db, world.public_stream))[0] == 1
    async with db.session(Claims.service()) as s:
        r = await s.fetchrow("SELECT left_at, watch_duration_seconds FROM nchat_stream_viewers "
                             "WHERE viewer_session_id = $1", quiet["session_id"])
    assert r is not None and r["left_at"] is not None and r["watch_duration_seconds"] == 0
    assert any(p.get("reason") == "expired" and p["stream_id"] == world.public_stream
               for p in events.of("viewer.left"))


async def test_ending_the_stream_closes_sessions(db: Database, world: World) -> None:
    await go_live(db, world.public_stream)
    async with db.session(Claims.user(world.bob)) as s:
        token = (await viewers.join_stream(s, world.public_stream))["session_id"]
    async with db.session(Claims.user(world.alice)) as s:
        await streams.end_stream(s, world.public_stream)
    assert await counters(db, world.public_stream) == (0, 1, 1)
    async with db.session(Claims.service()) as s:
        assert await s.fetchval("SELECT left_at IS NOT NULL FROM nchat_stream_viewers WHERE viewer_session_id = $1",
                                token)
