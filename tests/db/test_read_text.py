"""Database.read_text: one read-only statement as the caller in one round trip (a pg_temp function per
statement and connection, called outside a transaction block), with the security of `session()`."""

from __future__ import annotations

import asyncio
import json

import asyncpg
import pytest

from nchat_live.auth import Claims
from nchat_live.db import Database, database
from nchat_live.errors import NchatError
from tests.support import World

# The private stream's row counted under RLS, and who the statement ran as, on which connection.
PROBE = """SELECT json_build_object('n', (SELECT count(*) FROM nchat_streams WHERE id = $1::uuid),
  'pid', pg_backend_pid(), 'who', current_user, 'uid', nchat.user_id())::text"""
AFTER = ("SELECT json_build_object('who', current_user, 'claims', current_setting('hasura.user', true), "
         "'pid', pg_backend_pid())::text")


async def _probe(db: Database, claims: Claims, stream: str) -> dict:
    return json.loads(await db.read_text(claims, PROBE, [stream], statement_timeout_ms=10_000))


async def _left_on_the_connection(db: Database) -> dict:
    """What the next read finds on read_text's (one, idle) connection, read with no set-up of ours at all."""
    [raw] = db._reader_conns.idle
    return json.loads(await raw.fetchval(AFTER))


async def _readers_on_the_connection(db: Database) -> int:
    """read_text's functions on its connection (none yet: no connection, no function)."""
    if not db._reader_conns.idle:
        return 0
    [raw] = db._reader_conns.idle
    return int(await raw.fetchval("SELECT count(*) FROM pg_proc WHERE pronamespace = pg_my_temp_schema() "
                                  "AND proname LIKE 'nchat_read_%'"))


async def test_a_statement_earns_its_function_by_coming_again(world: World, database_url: str) -> None:
    db = Database(database_url, pool_size=1, reader_after=3)
    try:
        # Documents that differ by a literal: each statement once, none gets a function (no DDL).
        for n in range(4):
            sql = f"SELECT json_build_object('n', {n}, 'who', current_user, 'pid', pg_backend_pid())::text"
            seen = json.loads(await db.read_text(Claims.user(world.bob), sql, [], statement_timeout_ms=10_000))
            assert (seen["n"], seen["who"]) == (n, "nchat_user")
        assert await _readers_on_the_connection(db) == 0
        # The same statement a third time: from then on through its function, as its caller still.
        found = [await _probe(db, Claims.user(world.alice), world.private_stream) for _ in range(2)]
        assert await _readers_on_the_connection(db) == 0
        found.append(await _probe(db, Claims.user(world.alice), world.private_stream))
        assert await _readers_on_the_connection(db) == 1
        found.append(await _probe(db, Claims.user(world.bob), world.private_stream))
        assert [(s["n"], s["who"], s["uid"]) for s in found] == [(1, "nchat_user", world.alice)] * 3 + [
            (0, "nchat_user", world.bob)]
        assert await _readers_on_the_connection(db) == 1
        left = await _left_on_the_connection(db)
        assert left["who"] not in ("nchat_user", "nchat_anonymous") and left["claims"] in (None, "")
    finally:
        await db.close()


async def test_a_statement_that_fails_to_prepare_leaks_no_function(
    world: World, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A full cache: the next function evicts the oldest. Before, the oldest was forgotten before the new
    # one's creation, so each failed creation left one function on the connection that nothing counted.
    monkeypatch.setattr(database, "READERS_PER_CONNECTION", 2)
    db = Database(database_url, pool_size=1, reader_after=1)
    try:
        reads = [f"SELECT json_build_object('n', {n})::text" for n in range(2)]
        for sql in reads:
            assert json.loads(await db.read_text(Claims.user(world.bob), sql, [])) == {"n": reads.index(sql)}
        assert await _readers_on_the_connection(db) == 2
        for _ in range(3):
            with pytest.raises(asyncpg.UndefinedColumnError):
                await db.read_text(Claims.user(world.bob), "SELECT no_such_column::text FROM nchat_users", [])
        assert await _readers_on_the_connection(db) == 2
        # New statements evict the old ones, and none is left over: two functions, as the cache holds.
        for n in (2, 3):
            sql = f"SELECT json_build_object('n', {n})::text"
            assert json.loads(await db.read_text(Claims.user(world.bob), sql, [])) == {"n": n}
        assert await _readers_on_the_connection(db) == 2
    finally:
        await db.close()


async def test_each_call_runs_as_its_caller_on_one_connection_and_leaves_nothing(world: World,
                                                                                   database_url: str) -> None:
    db = Database(database_url, pool_size=1, reader_after=1)
    try:
        seen = [
            await _probe(db, Claims.user(world.alice), world.private_stream),  # the channel's owner
            await _probe(db, Claims.user(world.bob), world.private_stream),    # not a member
            await _probe(db, Claims.anonymous(), world.private_stream),
            await _probe(db, Claims.user(world.alice), world.private_stream),
        ]
        # One connection (the plan cached there is re-planned per role), each call under its own policies.
        assert len({s["pid"] for s in seen}) == 1
        assert [(s["n"], s["who"], s["uid"]) for s in seen] == [
            (1, "nchat_user", world.alice), (0, "nchat_user", world.bob), (0, "nchat_anonymous", None),
            (1, "nchat_user", world.alice)]
        left = await _left_on_the_connection(db)
        assert left["who"] != "nchat_user" and left["who"] != "nchat_anonymous"
        assert left["claims"] in (None, "")
    finally:
        await db.close()


async def test_a_failing_statement_leaves_no_role_or_claims(world: World, database_url: str) -> None:
    db = Database(database_url, pool_size=1, reader_after=1)
    try:
        with pytest.raises(NchatError):
            await db.read_text(Claims.user(world.bob), "SELECT (1 / (0 * length($1::text)))::text", ["x"],
                               statement_timeout_ms=10_000)
        left = await _left_on_the_connection(db)
        assert left["who"] not in ("nchat_user", "nchat_anonymous") and left["claims"] in (None, "")
    finally:
        await db.close()


async def test_statement_timeout_holds(world: World, database_url: str) -> None:
    db = Database(database_url, pool_size=1, reader_after=1)
    try:
        with pytest.raises(NchatError) as caught:
            await db.read_text(Claims.user(world.bob), "SELECT (pg_sleep($1::float8))::text", [2.0],
                               statement_timeout_ms=100)
        assert caught.value.code == "timeout"
        # The next call with another timeout gets its own.
        assert await db.read_text(Claims.user(world.bob), "SELECT current_setting('statement_timeout') || $1",
                                  [""], statement_timeout_ms=7_000) == "7s"
    finally:
        await db.close()


async def test_state_a_session_left_never_reaches_a_read(world: World, database_url: str) -> None:
    db = Database(database_url, pool_size=1, reader_after=1)
    try:
        async with db.session(Claims.service()) as s:
            # Session-level (not transaction-local): what the pool's reset is there to clear.
            await s.fetchval("SELECT set_config('nchat.test_marker', 'left-behind', false)")
            pid = await s.fetchval("SELECT pg_backend_pid()")
        seen = json.loads(await db.read_text(
            Claims.user(world.bob),
            "SELECT json_build_object('m', current_setting($1, true), 'pid', pg_backend_pid())::text",
            ["nchat.test_marker"], statement_timeout_ms=10_000))
        assert seen["pid"] != pid  # read_text's own connection, which no session uses
        assert seen["m"] in (None, "")
    finally:
        await db.close()


SLOW = "SELECT json_build_object('pid', pg_backend_pid(), 'slept', pg_sleep($1::float8))::text"


async def test_reads_share_at_most_pool_size_connections_of_their_own(world: World, database_url: str) -> None:
    db = Database(database_url, pool_size=2, reader_after=1)
    try:
        reads = [db.read_text(Claims.user(world.bob), SLOW, [0.2], statement_timeout_ms=10_000) for _ in range(6)]
        pids = {json.loads(text)["pid"] for text in await asyncio.gather(*reads)}
        assert len(pids) == 2 and db._reader_conns.opened == 2 and len(db._reader_conns.idle) == 2
    finally:
        await db.close()


async def test_a_dead_or_cancelled_connection_is_replaced(world: World, db: Database, database_url: str) -> None:
    readers = Database(database_url, pool_size=1, reader_after=1)
    try:
        first = json.loads(await readers.read_text(Claims.user(world.bob), SLOW, [0], statement_timeout_ms=10_000))
        raw = await db.connect_raw()  # as a restarted Postgres would
        try:
            await raw.fetchval("SELECT pg_terminate_backend($1)", first["pid"])
        finally:
            await raw.close()
        await asyncio.sleep(0.2)
        second = json.loads(await readers.read_text(Claims.user(world.bob), SLOW, [0], statement_timeout_ms=10_000))
        assert second["pid"] != first["pid"]
        # A read cancelled mid-statement (the request's deadline): its connection is not reused.
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(readers.read_text(Claims.user(world.bob), SLOW, [5], statement_timeout_ms=10_000),
                                   0.2)
        third = json.loads(await readers.read_text(Claims.user(world.bob), SLOW, [0], statement_timeout_ms=10_000))
        assert third["pid"] not in (first["pid"], second["pid"])
        assert readers._reader_conns.opened == 1
    finally:
        await readers.close()


async def test_reads_run_on_generic_plans_and_sessions_do_not(world: World, database_url: str) -> None:
    """read_text's connections plan each function's statement once (plan_cache_mode), where Postgres left
    to choose re-planned a statement with a LIMIT parameter on every call; sessions keep the default."""
    db = Database(database_url, pool_size=1, reader_after=1)
    try:
        mode = "SELECT current_setting('plan_cache_mode') || $1::text"
        assert await db.read_text(Claims.user(world.bob), mode, [""]) == "force_generic_plan"
        async with db.session(Claims.user(world.bob)) as s:
            assert await s.fetchval(mode, "") == "auto"
    finally:
        await db.close()


async def _backends_alive(db: Database, pids: list[int]) -> int:
    """How many of `pids` Postgres still runs, given up to 2 s to notice a closed socket."""
    for _ in range(40):
        async with db.session(Claims.service()) as s:
            alive = int(await s.fetchval("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1::int[])", pids))
        if alive == 0:
            return 0
        await asyncio.sleep(0.05)
    return alive


async def test_idle_connections_are_retired_and_none_is_kept_after_close(world: World, database_url: str) -> None:
    db = Database(database_url, pool_size=2, reader_after=1)
    try:
        readers = db._reader_conns
        readers.idle_s = 0.3
        pids = {json.loads(text)["pid"] for text in await asyncio.gather(
            *(db.read_text(Claims.user(world.bob), SLOW, [0.1], statement_timeout_ms=10_000) for _ in range(2)))}
        assert len(pids) == 2 and readers.opened == 2
        await asyncio.sleep(0.5)
        # Both idle past the limit: retired on the next use, which opens one of its own.
        later = json.loads(await db.read_text(Claims.user(world.bob), SLOW, [0], statement_timeout_ms=10_000))
        assert later["pid"] not in pids and readers.opened == 1 and len(readers.idle) == 1
        assert await _backends_alive(db, list(pids)) == 0
        # A read in flight when the database closes: its connection is closed when handed back, not kept.
        slow = asyncio.ensure_future(db.read_text(Claims.user(world.bob), SLOW, [0.3], statement_timeout_ms=10_000))
        await asyncio.sleep(0.1)
        await db.close()
        inflight = json.loads(await slow)
        assert readers.idle == [] and readers.opened == 0
        assert await _backends_alive(db, [inflight["pid"], later["pid"]]) == 0
    finally:
        await db.close()
