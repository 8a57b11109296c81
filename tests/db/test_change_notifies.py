"""The live-query change notification (0004, per row since 0024): a statement that changes no row of a
table wakes no live query reading it; every real change still does, under the table's own name."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable

import asyncpg
import pytest

from nchat_live.auth import Claims
from nchat_live.db import Database
from nchat_live.graphql.hasura.live_queries import CHANNEL
from tests.support import World, fold_chat_tallies, set_live


@pytest.fixture
async def listener(database_url: str) -> AsyncIterator[tuple[asyncpg.Connection, list[str]]]:
    conn = await asyncpg.connect(database_url)
    seen: list[str] = []
    await conn.add_listener(CHANNEL, lambda _c, _p, _ch, payload: seen.append(payload))
    try:
        yield conn, seen
    finally:
        await conn.close()


async def _drain(listener: tuple[asyncpg.Connection, list[str]]) -> list[str]:
    """What arrived up to now. A marker notified from the listening connection arrives after every
    notification of the commits before it (one server, commit order), so its arrival ends the wait."""
    conn, seen = listener
    marker = f"marker-{uuid.uuid4().hex}"
    await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, marker)
    for _ in range(500):
        if marker in seen:
            got = seen[: seen.index(marker)]
            seen.clear()
            return got
        await asyncio.sleep(0.01)
    raise AssertionError(f"the marker notification never arrived: {seen}")


async def _notified_by(listener: tuple[asyncpg.Connection, list[str]], write: Awaitable[None]) -> list[str]:
    """The payloads that `write`'s commit sends, and nothing from the commits before it."""
    await _drain(listener)
    await write
    return await _drain(listener)


async def _send_chat(db: Database, stream_id: str, user_id: str) -> None:
    async with db.session(Claims.user(user_id)) as s:
        await s.fetchval(
            "INSERT INTO nchat_stream_chat_messages (stream_id, user_id, content) VALUES ($1, $2, 'hi') RETURNING id",
            stream_id, user_id,
        )


async def test_chat_insert_wakes_viewers_only_when_a_viewer_row_changed(
    db: Database, world: World, listener: tuple[asyncpg.Connection, list[str]],
) -> None:
    await set_live(db, world.public_stream)

    # Bob is not watching: the counter trigger's UPDATE of his viewer row matches nothing.
    got = await _notified_by(listener, _send_chat(db, world.public_stream, world.bob))
    # The stream's chat counter is a tally of its own (migration 0027): no write to the stream's row, so live
    # queries reading streams are not woken by chat.
    assert sorted(got) == ["nchat_stream_chat_messages"]

    async with db.session(Claims.service()) as s:
        await s.fetchval(
            "INSERT INTO nchat_stream_viewers (stream_id, user_id, viewer_session_id) VALUES ($1, $2, $3) RETURNING id",
            world.public_stream, world.bob, uuid.uuid4().hex,
        )
    # Now he is: his sent_chat_messages changes, and live queries reading viewers must hear of it.
    got = await _notified_by(listener, _send_chat(db, world.public_stream, world.bob))
    assert sorted(got) == ["nchat_stream_chat_messages", "nchat_stream_viewers"]


async def test_empty_statements_are_quiet_and_partitions_report_their_parent(
    db: Database, world: World, listener: tuple[asyncpg.Connection, list[str]],
) -> None:
    async def empty_update() -> None:
        async with db.session(Claims.service()) as s:
            await s.execute("UPDATE nchat_stream_viewers SET quality = 'x' WHERE id = $1", uuid.uuid4())

    assert await _notified_by(listener, empty_update()) == []

    async def metric() -> None:
        async with db.session(Claims.service()) as s:
            await s.fetchval(
                "INSERT INTO nchat_stream_quality_metrics (stream_id) VALUES ($1) RETURNING id", world.public_stream,
            )

    # The row lands in a partition; live queries read the parent, so the parent's name is the payload.
    assert await _notified_by(listener, metric()) == ["nchat_stream_quality_metrics"]


async def test_the_chat_counter_reaches_the_stream_once_per_fold(
    db: Database, world: World, listener: tuple[asyncpg.Connection, list[str]],
) -> None:
    await set_live(db, world.public_stream)
    async with db.session(Claims.service()) as s:
        before = await s.fetchval("SELECT total_chat_messages FROM nchat_streams WHERE id = $1", world.public_stream)
    for _ in range(3):
        await _send_chat(db, world.public_stream, world.carol)

    async def tick() -> None:
        await fold_chat_tallies(db)

    # Three messages, one change of the stream's row.
    assert await _notified_by(listener, tick()) == ["nchat_streams"]
    async with db.session(Claims.service()) as s:
        assert await s.fetchval("SELECT total_chat_messages FROM nchat_streams WHERE id = $1",
                                world.public_stream) == before + 3
    # (No request role, the service's included, may read the tallies: asked as the superuser.)
    assert await listener[0].fetchval("SELECT count(*) FROM nchat.chat_tallies WHERE stream_id = $1",
                                      uuid.UUID(world.public_stream)) == 0
    # Nothing left to fold: a second tick changes no row and wakes nothing.
    assert await _notified_by(listener, tick()) == []
