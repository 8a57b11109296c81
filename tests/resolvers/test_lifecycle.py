"""The state machine: every legal and illegal transition, through startStream/endStream/cancelStream."""

from __future__ import annotations

import itertools

import pytest

from nchat_live.auth import Claims
from nchat_live.db import Database
from nchat_live.resolvers import lifecycle
from nchat_live.resolvers.lifecycle import IllegalTransition
from tests.support import World

from .conftest import Events, set_status

PAIRS = list(itertools.product(lifecycle.STATUSES, lifecycle.STATUSES))


@pytest.mark.parametrize(("current", "target"), PAIRS, ids=[f"{a}->{b}" for a, b in PAIRS])
async def test_transition_is_allowed_exactly_when_the_table_says(
    db: Database, world: World, events: Events, current: str, target: str
) -> None:
    await set_status(db, world.public_stream, current)
    legal = target in lifecycle.TRANSITIONS[current]
    if legal:
        async with db.session(Claims.user(world.alice)) as s:
            result = await lifecycle.transition(s, world.public_stream, target, reason="test")
        assert result["status"] == target
        assert [t for t, _ in events] == [lifecycle.EVENT_FOR_STATUS[target]]
        assert events[0][1]["stream_id"] == world.public_stream
        assert events[0][1]["channel_id"] == world.public_channel
    else:
        with pytest.raises(IllegalTransition) as info:
            async with db.session(Claims.user(world.alice)) as s:
                await lifecycle.transition(s, world.public_stream, target)
        assert info.value.code == "invalid-transition"
        assert f"'{current}' cannot become '{target}'" in info.value.message
        assert events == []
    async with db.session(Claims.service()) as s:
        status = await s.fetchval("SELECT status FROM nchat_streams WHERE id = $1", world.public_stream)
    assert status == (target if legal else current)


async def test_ending_stamps_times_duration_and_zeroes_viewers(db: Database, world: World) -> None:
    async with db.session(Claims.user(world.alice)) as s:
        await lifecycle.transition(s, world.public_stream, lifecycle.LIVE)
    async with db.session(Claims.service()) as s:
        await s.fetchval("UPDATE nchat_streams SET started_at = now() - interval '90 seconds' WHERE id = $1 "
                         "RETURNING id", world.public_stream)
    async with db.session(Claims.user(world.alice)) as s:
        ended = await lifecycle.transition(s, world.public_stream, lifecycle.ENDED)
    assert ended["ended_at"] is not None
    assert 89 <= ended["duration_seconds"] <= 95
    assert ended["current_viewers"] == 0
