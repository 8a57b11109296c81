"""Database.write_once: one data-modifying statement as the caller, committed in its own round trip (a
pg_temp function returning the statement's rows, called outside a transaction block), with the
security and the errors of the same statement in a `session()`."""

from __future__ import annotations

import asyncio
import datetime
import uuid
from typing import Any

import asyncpg
import pytest

from nchat_live.auth import Claims
from nchat_live.db import Database, Session
from nchat_live.db.session import OneStatement
from nchat_live.errors import NchatError
from tests.support import World, set_live

SEND = ("INSERT INTO nchat_stream_chat_messages (stream_id, user_id, content) VALUES ($1, $2, $3) "
        "RETURNING id, user_id, content AS \"the \"\"content\"\"\", created_at, current_user AS who")


async def _count(db: Database, stream: str, content: str) -> int:
    async with db.session(Claims.service()) as s:
        return int(await s.fetchval(
            "SELECT count(*) FROM nchat_stream_chat_messages WHERE stream_id = $1 AND content = $2", stream, content))


async def _refusal(db: Database, claims: Claims, sql: str, args: list[Any]) -> tuple[str, str]:
    """The code and message `session()` gives the statement's failure (the reference)."""
    with pytest.raises(NchatError) as refused:
        async with db.session(claims, statement_timeout_ms=10_000) as s:
            await s.fetch(sql, *args)
    return refused.value.code, refused.value.message


async def test_rows_come_back_typed_and_committed_as_the_caller(world: World, database_url: str) -> None:
    await set_live(Database(database_url), world.public_stream)
    db = Database(database_url, pool_size=1, reader_after=1)
    try:
        rows = await db.write_once(Claims.user(world.bob), SEND, [world.public_stream, world.bob, "  hi\x01 "],
                                   statement_timeout_ms=10_000)
        [row] = rows
        # The statement's own column names (quotes included) and types; the insert trigger's cleaning.
        assert list(row.keys()) == ["id", "user_id", "the \"content\"", "created_at", "who"]
        assert isinstance(row["id"], uuid.UUID) and isinstance(row["created_at"], datetime.datetime)
        assert (str(row["user_id"]), row["the \"content\""], row["who"]) == (world.bob, "hi", "nchat_user")
        # Committed: another connection sees it at once.
        assert await _count(db, world.public_stream, "hi") == 1
        # Nothing left on the connection: no transaction, not the caller's role or claims.
        [raw] = db._reader_conns.idle
        assert not raw.is_in_transaction()
        left = await raw.fetchrow("SELECT current_user AS who, current_setting('hasura.user', true) AS claims")
        assert left["who"] != "nchat_user" and left["claims"] in (None, "")
    finally:
        await db.close()


async def test_refusals_are_the_sessions_and_nothing_is_written(world: World, database_url: str) -> None:
    db = Database(database_url, pool_size=1, reader_after=1)
    try:
        # Row-level security's check (posting as someone else), then an insert trigger's rule (the private
        # stream is not live): the same code and message as in a session, nothing inserted either way.
        cases = [
            (Claims.user(world.bob), [world.public_stream, world.alice, "spoofed"]),
            (Claims.user(world.alice), [world.private_stream, world.alice, "not live"]),
        ]
        await set_live(Database(database_url), world.public_stream)
        for claims, args in cases:
            expected = await _refusal(db, claims, SEND, args)
            with pytest.raises(NchatError) as refused:
                await db.write_once(claims, SEND, args, statement_timeout_ms=10_000)
            assert (refused.value.code, refused.value.message) == expected
            assert await _count(db, args[0], args[2]) == 0
        assert [c for c, _ in [await _refusal(db, c, SEND, a) for c, a in cases]] == ["permission-error",
                                                                                      "stream-not-live"]
        # The connection survived the refusals: the next write goes through on it.
        rows = await db.write_once(Claims.user(world.bob), SEND, [world.public_stream, world.bob, "after"])
        assert rows[0]["who"] == "nchat_user" and await _count(db, world.public_stream, "after") == 1
        assert len(db._reader_conns.idle) == 1
    finally:
        await db.close()


async def test_a_statement_without_rows_is_refused_before_it_runs(world: World, database_url: str) -> None:
    db = Database(database_url, pool_size=1, reader_after=1)
    try:
        with pytest.raises(ValueError, match="RETURNING"):
            await db.write_once(Claims.service(), "UPDATE nchat_users SET display_name = 'x' WHERE id = $1",
                                [world.carol])
        async with db.session(Claims.service()) as s:
            assert await s.fetchval("SELECT display_name FROM nchat_users WHERE id = $1", world.carol) != "x"
    finally:
        await db.close()


async def test_a_one_statement_session_refuses_a_second_statement(world: World, database_url: str) -> None:
    db = Database(database_url, pool_size=1, reader_after=1)
    written: list[str] = []

    async def write(sql: str, args: Any) -> list[Any]:
        written.append(sql)
        return await db.write_once(Claims.service(), sql, args)

    try:
        session = Session(OneStatement(write), Claims.service())
        rename = "UPDATE nchat_users SET display_name = $2 WHERE id = $1 RETURNING display_name"
        assert await session.fetchval(rename, world.carol, "one") == "one"
        with pytest.raises(RuntimeError, match="second statement"):
            await session.fetchrow(rename, world.carol, "two")
        assert len(written) == 1
        async with db.session(Claims.service()) as s:
            assert await s.fetchval("SELECT display_name FROM nchat_users WHERE id = $1", world.carol) == "one"
    finally:
        await db.close()


async def test_signalled_tables_skip_their_notify_and_only_theirs(world: World, database_url: str) -> None:
    # Migration 0031: a writer that signals live queries itself names its tables; a table it did not name
    # (here the sender's viewer row, counted by the insert's trigger chain) still notifies.
    owner = Database(database_url)
    await set_live(owner, world.public_stream)
    async with owner.session(Claims.service()) as s:
        await s.execute("INSERT INTO nchat_stream_viewers (stream_id, user_id, viewer_session_id) VALUES ($1, $2, $3)",
                        world.public_stream, world.bob, f"signals-{uuid.uuid4()}")
    await owner.close()
    heard: list[str] = []
    listener = await asyncpg.connect(database_url)
    await listener.add_listener("nchat_table_changes", lambda _c, _p, _ch, table: heard.append(table))

    async def notified_by(write: Any) -> set[str]:
        heard.clear()
        await write
        await listener.fetchval("SELECT 1")  # the listener's backend delivers what it was sent
        await asyncio.sleep(0.05)
        return set(heard)

    both = {"nchat_stream_chat_messages", "nchat_stream_viewers"}
    db = Database(database_url, pool_size=1, reader_after=1)
    try:
        bob = Claims.user(world.bob)
        args = [world.public_stream, world.bob]
        assert await notified_by(db.write_once(bob, SEND, [*args, "plain"])) == both
        assert await notified_by(db.write_once(bob, SEND, [*args, "half"],
                                               signalled=["nchat_stream_chat_messages"])) == {"nchat_stream_viewers"}
        assert await notified_by(db.write_once(bob, SEND, [*args, "all"], signalled=sorted(both))) == set()
        # The setting is the call's own: the next write on the connection, naming none, notifies again.
        assert await notified_by(db.write_once(bob, SEND, [*args, "again"])) == both
        async with db.session(Claims.service()) as s:
            sent = await s.fetchval("SELECT sent_chat_messages FROM nchat_stream_viewers WHERE stream_id = $1 "
                                    "AND user_id = $2 AND left_at IS NULL", world.public_stream, world.bob)
        assert sent == 4
    finally:
        await db.close()
        await listener.close()
