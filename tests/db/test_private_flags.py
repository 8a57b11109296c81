"""Migration 0025: streams and chat messages carry their channel's is_private, and the read policies admit a
row whose flag is false without building the hidden set. A stale false flag would show a private row, so
each way a flag changes is driven here through the request roles and checked by what an outsider reads."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

from nchat_live.auth import Claims
from nchat_live.db import Database
from tests.support import World

VISIBLE = ("SELECT (SELECT count(*) FROM nchat_streams WHERE id = $1), "
           "(SELECT count(*) FROM nchat_stream_chat_messages WHERE stream_id = $1)")


async def _post(db: Database, stream: str, author: str, content: str) -> str:
    async with db.session(Claims.service()) as s:
        return str(await s.fetchval("INSERT INTO nchat_stream_chat_messages (stream_id, user_id, content) "
                                    "VALUES ($1, $2, $3) RETURNING id", stream, author, content))


async def _seen(db: Database, claims: Claims, stream: str) -> tuple[int, int]:
    async with db.session(claims) as s:
        row = await s.fetchrow(VISIBLE, stream)
    assert row is not None
    return int(row[0]), int(row[1])


async def _flags(db: Database, stream: str) -> tuple[bool, list[bool]]:
    async with db.session(Claims.service()) as s:
        stream_flag = await s.fetchval("SELECT in_private_channel FROM nchat_streams WHERE id = $1", stream)
        messages = await s.fetch("SELECT in_private_channel FROM nchat_stream_chat_messages WHERE stream_id = $1",
                                 stream)
    return bool(stream_flag), [bool(r[0]) for r in messages]


async def _set_private(db: Database, owner: str, channel: str, private: bool) -> None:
    async with db.session(Claims.user(owner)) as s:
        await s.execute("UPDATE nchat_channels SET is_private = $2 WHERE id = $1", channel, private)


async def test_a_channel_made_private_hides_its_streams_and_chat_at_once(db: Database, world: World) -> None:
    await _post(db, world.public_stream, world.bob, "before the change")
    assert await _seen(db, Claims.user(world.carol), world.public_stream) == (1, 1)
    assert await _seen(db, Claims.anonymous(), world.public_stream) == (1, 1)

    await _set_private(db, world.alice, world.public_channel, True)
    assert await _flags(db, world.public_stream) == (True, [True])
    assert await _seen(db, Claims.user(world.carol), world.public_stream) == (0, 0)
    assert await _seen(db, Claims.anonymous(), world.public_stream) == (0, 0)
    # Members still read it: the hidden set, not the flag, decides for a private row.
    assert await _seen(db, Claims.user(world.bob), world.public_stream) == (1, 1)

    await _set_private(db, world.alice, world.public_channel, False)
    assert await _flags(db, world.public_stream) == (False, [False])
    assert await _seen(db, Claims.user(world.carol), world.public_stream) == (1, 1)


async def test_a_message_posted_in_a_private_channel_is_hidden(db: Database, world: World) -> None:
    assert (await _flags(db, world.private_stream))[0] is True
    await _post(db, world.private_stream, world.alice, "members only")
    assert await _flags(db, world.private_stream) == (True, [True])
    assert await _seen(db, Claims.user(world.carol), world.private_stream) == (0, 0)
    assert await _seen(db, Claims.anonymous(), world.private_stream) == (0, 0)
    assert await _seen(db, Claims.user(world.alice), world.private_stream) == (1, 1)


async def test_a_stream_takes_its_channels_flag_when_created_or_moved(db: Database, world: World) -> None:
    async with db.session(Claims.user(world.alice)) as s:
        stream = str(await s.fetchval("INSERT INTO nchat_streams (channel_id, broadcaster_id, title) "
                                      "VALUES ($1, $2, 'new') RETURNING id", world.private_channel, world.alice))
    await _post(db, stream, world.alice, "in private")
    assert await _flags(db, stream) == (True, [True])
    assert await _seen(db, Claims.user(world.carol), stream) == (0, 0)

    async with db.session(Claims.service()) as s:  # channel_id is the server's to change
        await s.execute("UPDATE nchat_streams SET channel_id = $2 WHERE id = $1", stream, world.public_channel)
    assert await _flags(db, stream) == (False, [False])
    assert await _seen(db, Claims.user(world.carol), stream) == (1, 1)


async def test_a_flag_change_is_not_an_edit(db: Database, world: World) -> None:
    message = await _post(db, world.public_stream, world.bob, "unchanged")
    query = ("SELECT s.updated_at, m.updated_at FROM nchat_streams s, nchat_stream_chat_messages m "
             "WHERE s.id = $1 AND m.id = $2")
    async with db.session(Claims.service()) as s:
        before = await s.fetchrow(query, world.public_stream, message)
    await _set_private(db, world.alice, world.public_channel, True)
    async with db.session(Claims.service()) as s:
        after = await s.fetchrow(query, world.public_stream, message)
    assert before == after



async def _insert_open(conn: asyncpg.Connection, stream: str, author: str) -> str:
    """A message inserted in a transaction left open on `conn`."""
    await conn.execute("BEGIN")
    return str(await conn.fetchval("INSERT INTO nchat_stream_chat_messages (stream_id, user_id, content) "
                                   "VALUES ($1, $2, 'racing') RETURNING id", stream, author))


async def _blocked(task: asyncio.Task[Any]) -> bool:
    await asyncio.sleep(0.3)
    return not task.done()


async def test_a_flag_change_and_a_racing_insert_never_leave_a_stale_flag(db: Database, world: World) -> None:
    a, b = await asyncpg.connect(db.url), await asyncpg.connect(db.url)
    try:
        # An insert in flight: the change waits for it, then includes its row.
        message = await _insert_open(a, world.public_stream, world.bob)
        change = asyncio.create_task(b.execute("UPDATE nchat_channels SET is_private = true WHERE id = $1",
                                               world.public_channel))
        assert await _blocked(change)
        # Only that channel's streams wait: a message elsewhere goes through while the change is blocked.
        await _post(db, world.private_stream, world.alice, "another channel")
        await a.execute("COMMIT")
        await asyncio.wait_for(change, 10)
        assert await b.fetchval("SELECT in_private_channel FROM nchat_stream_chat_messages WHERE id = $1",
                                message) is True

        # A change in flight: an insert under it waits, then takes the new flag.
        await b.execute("BEGIN")
        await b.execute("UPDATE nchat_channels SET is_private = false WHERE id = $1", world.public_channel)
        insert = asyncio.create_task(_insert_open(a, world.public_stream, world.bob))
        assert await _blocked(insert)
        await _post(db, world.private_stream, world.alice, "still another channel")
        await b.execute("COMMIT")
        late = await asyncio.wait_for(insert, 10)
        await a.execute("COMMIT")
        assert await a.fetchval("SELECT in_private_channel FROM nchat_stream_chat_messages WHERE id = $1",
                                late) is False
    finally:
        await a.close()
        await b.close()
