"""Migration 0029: 0025's flag on the channel's members and chat settings and on a stream's reactions,
recordings, questions, polls, chapters and highlights. A stale false flag would show a private row, so each
way a flag changes (the channel's privacy, a stream moved to another channel, a row moved to another parent,
an insert racing a change) is driven here and checked by what an outsider, a member and anonymous read."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest

from nchat_live.auth import Claims
from nchat_live.db import Database
from tests.support import World, set_live


@dataclass(frozen=True)
class Child:
    """A flagged table: its parent column and an insert of one row under parent $1 (user $2 where needed)."""

    table: str
    parent: str  # channel_id or stream_id
    insert: str
    key: str = "id"


CHILDREN = [
    Child("nchat_channel_members", "channel_id",
          "INSERT INTO nchat_channel_members (channel_id, user_id, role) VALUES ($1, $2, 'member') RETURNING id"),
    # One row per channel: an upsert, as resolvers/automod.py writes it ($2 unused but typed).
    Child("nchat_channel_chat_settings", "channel_id",
          "INSERT INTO nchat_channel_chat_settings (channel_id, emote_only) VALUES ($1, $2::uuid IS NULL) "
          "ON CONFLICT (channel_id) DO UPDATE SET emote_only = NOT nchat_channel_chat_settings.emote_only "
          "RETURNING channel_id", key="channel_id"),
    Child("nchat_stream_reactions", "stream_id",
          "INSERT INTO nchat_stream_reactions (stream_id, user_id, emoji) VALUES ($1, $2, '🔥') RETURNING id"),
    Child("nchat_stream_recordings", "stream_id",
          "INSERT INTO nchat_stream_recordings (stream_id, kind, status, created_by) "
          "VALUES ($1, 'clip', 'ready', $2) RETURNING id"),
    Child("nchat_stream_questions", "stream_id",
          "INSERT INTO nchat_stream_questions (stream_id, user_id, content) VALUES ($1, $2, 'why?') RETURNING id"),
    Child("nchat_stream_polls", "stream_id",
          "INSERT INTO nchat_stream_polls (stream_id, created_by, question, options) "
          "VALUES ($1, $2, 'which?', '{a,b}') RETURNING id"),
    Child("nchat_stream_chapters", "stream_id",
          "INSERT INTO nchat_stream_chapters (stream_id, start_seconds, title, created_by) "
          "VALUES ($1, 0, 'intro', $2) RETURNING id"),
    # Kept: a kept highlight is what a viewer who does not manage the stream may read.
    Child("nchat_stream_highlights", "stream_id",
          "INSERT INTO nchat_stream_highlights (stream_id, peak_seconds, start_seconds, end_seconds, title, status, "
          "decided_by) VALUES ($1, 5, 0, 10, 'peak', 'kept', $2) RETURNING id"),
]
TABLES = {c.table: c for c in CHILDREN}
BY_STREAM = [c for c in CHILDREN if c.parent == "stream_id"]
UPDATED_AT = ["nchat_channel_chat_settings", "nchat_stream_recordings", "nchat_stream_questions",
              "nchat_stream_polls", "nchat_stream_chapters", "nchat_stream_highlights"]


def _parent(child: Child, channel: str, stream: str) -> str:
    return channel if child.parent == "channel_id" else stream


async def _user(db: Database) -> str:
    async with db.session(Claims.service()) as s:
        tag = uuid.uuid4().hex[:8]
        return str(await s.fetchval("INSERT INTO nchat_users (username, display_name, email) "
                                    "VALUES ($1, 'Dave', $2) RETURNING id", f"dave_{tag}", f"dave_{tag}@example.com"))


async def _add(db: Database, child: Child, parent: str) -> str:
    """One row under `parent`, as the server."""
    user = await _user(db)
    async with db.session(Claims.service()) as s:
        return str(await s.fetchval(child.insert, parent, user))


async def _add_all(db: Database, channel: str, stream: str) -> dict[str, str]:
    return {c.table: await _add(db, c, _parent(c, channel, stream)) for c in CHILDREN}


async def _seen(db: Database, claims: Claims, channel: str, stream: str) -> dict[str, int]:
    """How many rows of each table under the channel / stream the caller reads."""
    async with db.session(claims) as s:
        return {c.table: int(await s.fetchval(f"SELECT count(*) FROM {c.table} WHERE {c.parent} = $1",
                                              _parent(c, channel, stream)))
                for c in CHILDREN}


async def _flags(db: Database, channel: str, stream: str) -> dict[str, set[bool]]:
    """The distinct flags of each table's rows under the channel / stream."""
    async with db.session(Claims.service()) as s:
        return {c.table: {bool(r[0]) for r in await s.fetch(
            f"SELECT in_private_channel FROM {c.table} WHERE {c.parent} = $1", _parent(c, channel, stream))}
            for c in CHILDREN}


def _all(flag: bool) -> dict[str, set[bool]]:
    return {c.table: {flag} for c in CHILDREN}


def _none() -> dict[str, int]:
    return {c.table: 0 for c in CHILDREN}


async def _set_private(db: Database, owner: str, channel: str, private: bool) -> None:
    async with db.session(Claims.user(owner)) as s:
        await s.execute("UPDATE nchat_channels SET is_private = $2 WHERE id = $1", channel, private)


async def test_a_channel_made_private_hides_every_row_at_once(db: Database, world: World) -> None:
    await _add_all(db, world.public_channel, world.public_stream)
    open_view = await _seen(db, Claims.user(world.carol), world.public_channel, world.public_stream)
    assert all(open_view.values()), open_view
    assert await _seen(db, Claims.anonymous(), world.public_channel, world.public_stream) == open_view
    assert await _flags(db, world.public_channel, world.public_stream) == _all(False)

    await _set_private(db, world.alice, world.public_channel, True)
    assert await _flags(db, world.public_channel, world.public_stream) == _all(True)
    assert await _seen(db, Claims.user(world.carol), world.public_channel, world.public_stream) == _none()
    assert await _seen(db, Claims.anonymous(), world.public_channel, world.public_stream) == _none()
    # A member still reads them: the hidden set, not the flag, decides for a private row.
    assert await _seen(db, Claims.user(world.bob), world.public_channel, world.public_stream) == open_view

    await _set_private(db, world.alice, world.public_channel, False)
    assert await _flags(db, world.public_channel, world.public_stream) == _all(False)
    assert await _seen(db, Claims.user(world.carol), world.public_channel, world.public_stream) == open_view


async def test_a_new_row_takes_its_parents_flag(db: Database, world: World) -> None:
    await _add_all(db, world.private_channel, world.private_stream)
    await _add_all(db, world.public_channel, world.public_stream)
    assert await _flags(db, world.private_channel, world.private_stream) == _all(True)
    assert await _flags(db, world.public_channel, world.public_stream) == _all(False)
    assert await _seen(db, Claims.user(world.carol), world.private_channel, world.private_stream) == _none()
    assert await _seen(db, Claims.anonymous(), world.private_channel, world.private_stream) == _none()
    seen = await _seen(db, Claims.user(world.alice), world.private_channel, world.private_stream)
    assert all(seen.values()), seen


async def test_a_request_roles_rows_take_the_flag_too(db: Database, world: World) -> None:
    """Through the request roles' own paths (member's question, owner's chapter and chat settings)."""
    await set_live(db, world.private_stream, enable_qa=True)
    async with db.session(Claims.user(world.alice)) as s:
        question = await s.fetchval("INSERT INTO nchat_stream_questions (stream_id, user_id, content) "
                                    "VALUES ($1, $2, 'members only?') RETURNING id", world.private_stream, world.alice)
        chapter = await s.fetchval("INSERT INTO nchat_stream_chapters (stream_id, start_seconds, title) "
                                   "VALUES ($1, 1, 'private part') RETURNING id", world.private_stream)
        await s.execute("INSERT INTO nchat_channel_chat_settings (channel_id, emote_only) VALUES ($1, true)",
                        world.private_channel)
    async with db.session(Claims.service()) as s:
        assert await s.fetchval("SELECT in_private_channel FROM nchat_stream_questions WHERE id = $1", question)
        assert await s.fetchval("SELECT in_private_channel FROM nchat_stream_chapters WHERE id = $1", chapter)
        assert await s.fetchval("SELECT in_private_channel FROM nchat_channel_chat_settings WHERE channel_id = $1",
                                world.private_channel)


async def test_a_moved_stream_carries_its_rows(db: Database, world: World) -> None:
    async with db.session(Claims.user(world.alice)) as s:
        stream = str(await s.fetchval("INSERT INTO nchat_streams (channel_id, broadcaster_id, title) "
                                      "VALUES ($1, $2, 'moving') RETURNING id", world.private_channel, world.alice))
    for child in BY_STREAM:
        await _add(db, child, stream)
    stream_flags = {c.table: {True} for c in BY_STREAM}

    async def flags() -> dict[str, set[bool]]:
        found = await _flags(db, world.private_channel, stream)
        return {c.table: found[c.table] for c in BY_STREAM}

    async def carol() -> dict[str, int]:
        seen = await _seen(db, Claims.user(world.carol), world.private_channel, stream)
        return {c.table: seen[c.table] for c in BY_STREAM}

    assert await flags() == stream_flags
    assert not any((await carol()).values())
    async with db.session(Claims.service()) as s:  # channel_id is the server's to change
        await s.execute("UPDATE nchat_streams SET channel_id = $2 WHERE id = $1", stream, world.public_channel)
    assert await flags() == {c.table: {False} for c in BY_STREAM}
    assert all((await carol()).values())
    async with db.session(Claims.service()) as s:
        await s.execute("UPDATE nchat_streams SET channel_id = $2 WHERE id = $1", stream, world.private_channel)
    assert await flags() == stream_flags
    assert not any((await carol()).values())


@pytest.mark.parametrize("child", CHILDREN, ids=[c.table for c in CHILDREN])
async def test_a_row_moved_to_another_parent_takes_its_flag(db: Database, world: World, child: Child) -> None:
    """No request role may change a row's parent; the server's move is covered all the same."""
    if child.table == "nchat_channel_chat_settings":
        await _add(db, child, world.public_channel)
        row_id, where = world.public_channel, "channel_id"
    else:
        row_id, where = await _add(db, child, _parent(child, world.public_channel, world.public_stream)), "id"
    target = _parent(child, world.private_channel, world.private_stream)
    async with db.session(Claims.service()) as s:
        moved = await s.fetchval(f"UPDATE {child.table} SET {child.parent} = $2 WHERE {where} = $1 "
                                 f"RETURNING {child.key}", row_id, target)
        assert await s.fetchval(f"SELECT in_private_channel FROM {child.table} WHERE {child.key} = $1", moved)
    async with db.session(Claims.user(world.carol)) as s:
        assert await s.fetchval(f"SELECT count(*) FROM {child.table} WHERE {child.key} = $1", moved) == 0


async def test_a_flag_change_is_not_an_edit(db: Database, world: World) -> None:
    ids = await _add_all(db, world.public_channel, world.public_stream)
    async with db.session(Claims.user(world.mod)) as s:  # a moderator's settings: updated_by is theirs
        await s.execute("UPDATE nchat_channel_chat_settings SET link_filter = true WHERE channel_id = $1",
                        world.public_channel)

    async def state() -> list[Any]:
        async with db.session(Claims.service()) as s:
            edits = [await s.fetchval(f"SELECT updated_at FROM {t} WHERE {TABLES[t].key} = $1", ids[t])
                     for t in UPDATED_AT]
            settings = await s.fetchrow("SELECT updated_by, link_filter FROM nchat_channel_chat_settings "
                                        "WHERE channel_id = $1", world.public_channel)
            logged = await s.fetchval("SELECT count(*) FROM nchat_moderation_log WHERE channel_id = $1",
                                      world.public_channel)
        return [*edits, settings, logged]

    before = await state()
    assert before[len(UPDATED_AT)]["updated_by"] is not None
    await _set_private(db, world.alice, world.public_channel, True)
    assert await _flags(db, world.public_channel, world.public_stream) == _all(True)
    assert await state() == before
    await _set_private(db, world.alice, world.public_channel, False)
    assert await state() == before


async def _insert_open(conn: asyncpg.Connection, child: Child, parent: str, user: str) -> str:
    """A row inserted in a transaction left open on `conn`."""
    await conn.execute("BEGIN")
    return str(await conn.fetchval(child.insert, parent, user))


async def _blocked(task: asyncio.Task[Any]) -> bool:
    await asyncio.sleep(0.3)
    return not task.done()


async def _change_open(conn: asyncpg.Connection, channel: str, private: bool) -> None:
    """The channel's privacy changed in a transaction left open on `conn`."""
    await conn.execute("BEGIN")
    await conn.execute("UPDATE nchat_channels SET is_private = $2 WHERE id = $1", channel, private)


@pytest.mark.parametrize("child", CHILDREN, ids=[c.table for c in CHILDREN])
async def test_a_flag_change_and_a_racing_insert_never_leave_a_stale_flag(db: Database, world: World,
                                                                          child: Child) -> None:
    public = _parent(child, world.public_channel, world.public_stream)
    elsewhere = _parent(child, world.private_channel, world.private_stream)
    flag = f"SELECT in_private_channel FROM {child.table} WHERE {child.key} = $1"
    a, b = await asyncpg.connect(db.url), await asyncpg.connect(db.url)
    try:
        # An insert in flight: the change waits for it, then includes its row.
        row = await _insert_open(a, child, public, await _user(db))
        change = asyncio.create_task(b.execute("UPDATE nchat_channels SET is_private = true WHERE id = $1",
                                               world.public_channel))
        assert await _blocked(change)
        # Only that channel's rows wait: an insert under another channel goes through while the change waits.
        await asyncio.wait_for(_add(db, child, elsewhere), 5)
        await a.execute("COMMIT")
        await asyncio.wait_for(change, 10)
        assert await b.fetchval(flag, row) is True

        # A change in flight, either way: an insert under it waits, then takes the new flag (a stale false
        # here would show the row to everyone).
        for private in (False, True):
            await _change_open(b, world.public_channel, private)
            insert = asyncio.create_task(_insert_open(a, child, public, await _user(db)))
            assert await _blocked(insert)
            # Held open, it stalls no other channel's writes.
            await asyncio.wait_for(_add(db, child, elsewhere), 5)
            await b.execute("COMMIT")
            late = await asyncio.wait_for(insert, 10)
            await a.execute("COMMIT")
            assert await a.fetchval(flag, late) is private
    finally:
        await a.close()
        await b.close()


async def test_a_stream_created_during_a_change_takes_the_new_flag(db: Database, world: World) -> None:
    """0025's stream flag, read FOR KEY SHARE from a channel whose is_private is changing: the change holds the
    channel FOR UPDATE before it updates it, so the insert waits and reads the new row, not the one its
    snapshot saw (a key-share lock on a row updated without a key change would not wait for it)."""
    insert = ("INSERT INTO nchat_streams (channel_id, broadcaster_id, title) VALUES ($1, $2, 'racing') "
              "RETURNING id")
    a, b = await asyncpg.connect(db.url), await asyncpg.connect(db.url)
    try:
        for private in (True, False):
            await _change_open(b, world.public_channel, private)
            await a.execute("BEGIN")
            task = asyncio.create_task(a.fetchval(insert, world.public_channel, world.alice))
            assert await _blocked(task)
            await b.execute("COMMIT")
            stream = await asyncio.wait_for(task, 10)
            await a.execute("COMMIT")
            assert await a.fetchval("SELECT in_private_channel FROM nchat_streams WHERE id = $1", stream) is private
    finally:
        await a.close()
        await b.close()


@pytest.mark.parametrize("child", BY_STREAM, ids=[c.table for c in BY_STREAM])
async def test_a_row_created_while_its_stream_moves_takes_the_new_flag(db: Database, world: World,
                                                                       child: Child) -> None:
    flag = f"SELECT in_private_channel FROM {child.table} WHERE {child.key} = $1"
    a, b = await asyncpg.connect(db.url), await asyncpg.connect(db.url)
    try:
        for channel, private in ((world.private_channel, True), (world.public_channel, False)):
            await b.execute("BEGIN")
            await b.execute("UPDATE nchat_streams SET channel_id = $2 WHERE id = $1", world.public_stream, channel)
            task = asyncio.create_task(_insert_open(a, child, world.public_stream, await _user(db)))
            assert await _blocked(task)
            await b.execute("COMMIT")
            row = await asyncio.wait_for(task, 10)
            await a.execute("COMMIT")
            assert await a.fetchval(flag, row) is private
    finally:
        await a.close()
        await b.close()
