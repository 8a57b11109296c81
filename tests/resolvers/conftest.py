"""Fixtures for the streaming operations: captured events and a controllable clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from nchat_live.auth import Claims
from nchat_live.db import Database
from nchat_live.resolvers import lifecycle


class Events(list[tuple[str, dict[str, Any]]]):
    def of(self, topic: str) -> list[dict[str, Any]]:
        return [p for t, p in self if t == topic]


@pytest.fixture
async def events(db: Database) -> AsyncIterator[Events]:
    captured = Events()
    previous = db.publisher

    async def publisher(topic: str, payload: dict[str, Any]) -> None:
        captured.append((topic, payload))

    db.publisher = publisher
    yield captured
    db.publisher = previous


class Clock:
    """Starts at the real time (so a scheduler running elsewhere never sees these rows as stale)."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


async def set_status(db: Database, stream_id: str, status: str) -> None:
    """Put a stream in a status directly (as the server), for tests that start from it."""
    async with db.session(Claims.service()) as s:
        await s.fetchval("UPDATE nchat_streams SET status = $2 WHERE id = $1 RETURNING id", stream_id, status)


async def go_live(db: Database, stream_id: str) -> None:
    async with db.session(Claims.service()) as s:
        await lifecycle.transition(s, stream_id, lifecycle.LIVE)
