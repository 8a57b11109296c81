"""Reactions: allowed emojis, positions, rules, rate limit, exact totals under 50 concurrent sends."""

from __future__ import annotations

import asyncio

import pytest

from nchat_live.auth import Claims
from nchat_live.db import Database
from nchat_live.errors import NchatError
from nchat_live.resolvers import reactions
from nchat_live.resolvers.streams import StreamInput, update_stream
from tests.support import World

from .conftest import Clock, Events, go_live


async def count(db: Database, stream: str) -> tuple[int, int]:
    async with db.session(Claims.service()) as s:
        rows = await s.fetchval("SELECT count(*) FROM nchat_stream_reactions WHERE stream_id = $1", stream)
        total = await s.fetchval("SELECT total_reactions FROM nchat_streams WHERE id = $1", stream)
    return rows, total


async def test_reaction_is_stored_and_published(db: Database, world: World, events: Events) -> None:
    await go_live(db, world.public_stream)
    async with db.session(Claims.user(world.bob)) as s:
        sent = await reactions.send_reaction(s, world.public_stream, "❤", 12.5, 100)
    assert sent["emoji"] == "❤️" and sent["position_x"] == 12.5 and sent["position_y"] == 100.0
    assert events.of("reaction") == [{
        "stream_id": world.public_stream, "channel_id": world.public_channel, "id": sent["id"], "emoji": "❤️",
        "position_x": 12.5, "position_y": 100.0, "user_id": world.bob,
    }]


@pytest.mark.parametrize(("emoji", "x", "code"), [
    ("💩", None, "invalid-emoji"), ("", None, "invalid-emoji"), ("👍👍", None, "invalid-emoji"),
    ("👍", -1, "invalid-position"), ("👍", 100.5, "invalid-position"),
])
async def test_bad_reactions_are_refused_and_not_stored(
    db: Database, world: World, emoji: str, x: float | None, code: str
) -> None:
    await go_live(db, world.public_stream)
    with pytest.raises(NchatError) as info:
        async with db.session(Claims.user(world.bob)) as s:
            await reactions.send_reaction(s, world.public_stream, emoji, x)
    assert info.value.code == code
    assert await count(db, world.public_stream) == (0, 0)


async def test_stream_must_be_live_with_reactions_enabled(db: Database, world: World) -> None:
    with pytest.raises(NchatError) as info:
        async with db.session(Claims.user(world.bob)) as s:
            await reactions.send_reaction(s, world.public_stream, "🔥")
    assert info.value.code == "stream-not-live"
    await go_live(db, world.public_stream)
    async with db.session(Claims.user(world.alice)) as s:
        await update_stream(s, world.public_stream, StreamInput(enable_reactions=False))
    with pytest.raises(NchatError) as info:
        async with db.session(Claims.user(world.bob)) as s:
            await reactions.send_reaction(s, world.public_stream, "🔥")
    assert info.value.code == "reactions-disabled"


async def test_rate_limit_per_user(db: Database, world: World, clock: Clock) -> None:
    await go_live(db, world.public_stream)
    limits = reactions.ReactionLimits(reactions=3)
    for _ in range(3):
        async with db.session(Claims.user(world.bob)) as s:
            await reactions.send_reaction(s, world.public_stream, "👍", now=clock.advance(1), limits=limits)
    with pytest.raises(NchatError) as info:
        async with db.session(Claims.user(world.bob)) as s:
            await reactions.send_reaction(s, world.public_stream, "👍", now=clock.advance(1), limits=limits)
    assert info.value.code == "rate-limited"
    async with db.session(Claims.user(world.bob)) as s:
        await reactions.send_reaction(s, world.public_stream, "👍", now=clock.advance(8), limits=limits)
    assert await count(db, world.public_stream) == (4, 4)


async def test_fifty_concurrent_reactions_give_exact_totals(db: Database, world: World) -> None:
    await go_live(db, world.public_stream)
    users = [world.alice, world.bob, world.carol, world.mod]
    emojis = ["👍", "🔥", "🎉"]

    async def react(i: int) -> None:
        async with db.session(Claims.user(users[i % 4])) as s:
            await reactions.send_reaction(s, world.public_stream, emojis[i % 3], i % 101)

    await asyncio.gather(*(react(i) for i in range(50)))
    assert await count(db, world.public_stream) == (50, 50)
    async with db.session(Claims.anonymous()) as s:
        totals = await reactions.reaction_totals(s, world.public_stream)
    assert totals == [{"emoji": "👍", "count": 17}, {"emoji": "🔥", "count": 17}, {"emoji": "🎉", "count": 16}]
