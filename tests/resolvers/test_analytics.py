"""streamAnalytics: the guide's key metrics from real sessions, chat and reactions; the CSV export."""

from __future__ import annotations

import csv
import io

import pytest

from nchat_live.auth import Claims
from nchat_live.db import Database
from nchat_live.errors import NchatError
from nchat_live.resolvers import analytics, chat, reactions, viewers
from tests.support import World

from .conftest import Clock, go_live


async def test_analytics_from_activity(db: Database, world: World, clock: Clock) -> None:
    await go_live(db, world.public_stream)
    async with db.session(Claims.user(world.bob)) as s:
        bob = await viewers.join_stream(s, world.public_stream, "720p", now=clock())
    async with db.session(Claims.anonymous()) as s:
        anon = await viewers.join_stream(s, world.public_stream, "480p", now=clock())
    async with db.session(Claims.user(world.bob)) as s:
        await chat.send_chat_message(s, world.public_stream, "hi", now=clock.advance(10))
        await reactions.send_reaction(s, world.public_stream, "🔥", now=clock())
        await viewers.viewer_heartbeat(s, bob["session_id"], "480p", 1000, now=clock.advance(10))
        await viewers.leave_stream(s, bob["session_id"], now=clock.advance(20))
    async with db.session(Claims.anonymous()) as s:
        await viewers.leave_stream(s, anon["session_id"], now=clock())
    async with db.session(Claims.user(world.alice)) as s:
        result = await analytics.stream_analytics(s, world.public_stream, now=clock())
    assert result["peak_concurrent_viewers"] == 2 and result["total_views"] == 2 and result["unique_viewers"] == 2
    assert result["average_watch_seconds"] == 40.0
    assert result["buffering_ratio"] == 0.0125  # 1 s over 80 s watched
    assert result["chat_engagement_rate"] == 0.5
    assert result["quality_switches_per_viewer_hour"] == 45.0  # 1 switch over 80 s
    assert result["top_emojis"] == [{"emoji": "🔥", "count": 1}]
    assert result["viewer_timeline"] and result["viewer_timeline"][0]["viewers"] == 2
    rows = list(csv.reader(io.StringIO(analytics.analytics_csv(result))))
    assert rows[0] == ["section", "name", "value"]
    assert ["metric", "unique_viewers", "2"] in rows and ["emoji", "🔥", "1"] in rows
    assert any(r[0] == "minute" for r in rows)


async def test_analytics_are_for_managers(db: Database, world: World) -> None:
    with pytest.raises(NchatError) as info:
        async with db.session(Claims.user(world.bob)) as s:
            await analytics.stream_analytics(s, world.public_stream)
    assert info.value.code == "permission-error"
