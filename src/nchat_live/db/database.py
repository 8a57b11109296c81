"""The connection pool and the session API every resolver goes through.

Data access is asyncpg with SQL text and `$n` parameters, everywhere: the compiled GraphQL
statements are text, and one style means one pool, one error translation (`db.errors`) and one
way to read a query.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import secrets
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import asyncpg

from ..auth import Claims
from ..errors import ConfigError, NchatError
from . import errors, migrations
from .session import PG_ROLES, EventPublisher, Session

# What asyncpg's pool sends on every release (one round trip each time), sent instead at the head
# of the next session's set-up batch, which costs no round trip of its own.
_RESET = "SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL; "
# How long a session waits for a pooled connection before the database counts as unavailable.
ACQUIRE_TIMEOUT_S = 10.0
# An idle connection (the pool's, or read_text's own) is closed after this long unused, so a burst's
# connections do not stay held against Postgres's max_connections.
IDLE_LIFETIME_S = 300.0
# read_text's functions kept on one connection (the least recently used one is dropped beyond).
READERS_PER_CONNECTION = 128
# How often read_text must have seen a statement (in this process) before it gets a pg_temp function:
# creating one is DDL (catalog writes), paid back only by a statement that comes again.
READER_AFTER = 3
# Statements whose sightings read_text counts (the least recently seen one is forgotten beyond).
SIGHTINGS = 4096


def normalise_url(url: str) -> str:
    """postgresql:// in the form asyncpg takes, or a ConfigError naming what is wrong."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - parsing the port raises ValueError on a bad one
    except ValueError as exc:
        raise ConfigError(f"DATABASE_URL is malformed ({exc}): expected postgresql://user@host:5432/dbname") from exc
    scheme = parts.scheme.split("+", 1)[0]
    if scheme not in ("postgres", "postgresql") or not (parts.hostname or "host=" in (parts.query or "")):
        raise ConfigError(f"DATABASE_URL '{url}' is not a postgresql:// URL with a host")
    return "postgresql://" + url.split("://", 1)[1]


class Database:
    """Owns the pool. `session(claims)` is the only path to data for request work."""

    def __init__(self, url: str, *, pool_size: int = 10, reader_after: int = READER_AFTER) -> None:
        self.url = normalise_url(url)
        self.pool_size = pool_size
        self._pool: asyncpg.Pool | None = None
        self._pool_lock = asyncio.Lock()
        # Set by the runtime once the event bus is up; sessions publish through it after commit.
        self.publisher: EventPublisher | None = None
        # read_text's pg_temp functions can be created (False once the login role may not).
        self._readers = True
        # read_text gives a statement its function from its `reader_after`-th call on (1: at once).
        self.reader_after = reader_after
        self._sightings: OrderedDict[str, int] = OrderedDict()
        # read_text's own connections (beside the pool's, at most `pool_size` of them).
        self._reader_conns = _Readers(pool_size)

    async def pool(self) -> asyncpg.Pool:
        """The pool, created on first use (connections open as they are needed).

        A restarted Postgres closes the pooled connections; asyncpg notices and replaces a closed
        one when it is next acquired, so callers see at most the failures of the restart itself.
        """
        async with self._pool_lock:
            if self._pool is None:
                # jit off: a request statement runs in milliseconds, and the planner's estimate for a
                # row-level-security filter (it costs each EXISTS policy as if probed per row, whatever
                # it then runs) can pass jit_above_cost, so the JIT would compile for ~1 s on a 20 ms
                # statement (bench/rls_explain.py).
                self._pool = await asyncpg.create_pool(
                    self.url, min_size=0, max_size=self.pool_size * 2, timeout=5, command_timeout=30,
                    max_inactive_connection_lifetime=IDLE_LIFETIME_S, init=_decode_json,
                    connection_class=_PooledConnection, server_settings={"jit": "off"},
                )
            return self._pool

    async def connect_raw(self) -> asyncpg.Connection:
        """A dedicated connection outside the pool (migrations, LISTEN)."""
        try:
            return await asyncpg.connect(self.url, timeout=5)
        except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
            safe = self.url.split("@")[-1]
            raise ConfigError(f"cannot connect to the database at {safe}: {exc or type(exc).__name__}") from exc

    async def migrate(self) -> list[int]:
        conn = await self.connect_raw()
        try:
            return await migrations.upgrade(conn)
        finally:
            await conn.close()

    async def migration_status(self) -> migrations.MigrationStatus:
        conn = await self.connect_raw()
        try:
            return await migrations.status(conn)
        finally:
            await conn.close()

    @asynccontextmanager
    async def session(self, claims: Claims, *, statement_timeout_ms: int | None = None) -> AsyncIterator[Session]:
        """A transaction as `claims`: SET LOCAL ROLE and the claims in `hasura.user`.

        The set-up is ONE simple-query batch (the pool's reset, BEGIN, role, claims and
        `statement_timeout_ms` - request work; 0 or None: the server's default - all
        transaction-local): one round trip before the first statement, where asyncpg's own
        transaction and reset would take three. A statement over the timeout fails with code
        `timeout`.

        Postgres errors leave as domain errors (NchatError); after-commit callbacks run once the
        transaction has committed, never after a rollback.
        """
        try:
            pool = await self.pool()
            async with pool.acquire(timeout=ACQUIRE_TIMEOUT_S) as raw:
                await raw.execute(setup_batch(PG_ROLES[claims.role], claims.as_setting(), statement_timeout_ms))
                session = Session(raw, claims, self.publisher)
                try:
                    yield session
                except BaseException:
                    if not raw.is_closed():
                        # The pool's release rolls back a connection left in a transaction too.
                        with contextlib.suppress(Exception):
                            await raw.execute("ROLLBACK")
                    raise
                await raw.execute("COMMIT")
                await session.run_after_commit()
        except NchatError:
            raise
        except Exception as exc:
            mapped = errors.translate(exc)
            if mapped is None:
                raise
            raise mapped from exc

    async def read_text(
        self, claims: Claims, sql: str, args: Sequence[Any], *, statement_timeout_ms: int | None = None
    ) -> Any:
        """The value of ONE read-only statement (one row, one column) run as `claims`, in one round trip.

        `session()` costs three (set-up batch, statement, COMMIT). Here the statement is the body of a
        plpgsql function of the connection's own (pg_temp, created on its first use there) that sets
        the role and the claims transaction-locally and returns the statement's value; it is called
        outside any transaction block, so its implicit transaction ends with the call and takes the
        role and the claims with it, as COMMIT does, error or not. Row-level security is that of the
        role: the function's cached plan is re-planned when the role changes (Postgres's plan cache
        tracks the role a plan's policies were applied for, as it does for asyncpg's prepared
        statements across sessions). `statement_timeout_ms` is the connection's session value
        (the statement's timer starts before the function runs, so a transaction-local one would
        come too late). The connections are read_text's own (`_Readers`, beside the pool): no
        `session()` ever leaves state on them. Read-only work only: a write here would commit at once.

        A statement earns its function: until this process has seen it `reader_after` times it runs in
        a `session()`, so a client whose documents all differ (literals instead of variables) costs
        no CREATE FUNCTION per request.
        """
        return await self._one_statement(claims, sql, args, statement_timeout_ms, write=False)

    async def write_once(
        self, claims: Claims, sql: str, args: Sequence[Any], *, statement_timeout_ms: int | None = None,
        signalled: Sequence[str] = (),
    ) -> list[asyncpg.Record]:
        """The rows of ONE statement (a write: INSERT ... RETURNING and the like) run as `claims` in a
        transaction of its own, committed by the time this returns, in one round trip.

        As `read_text`, on the same connections, but the function returns the statement's rows
        (`RETURNS TABLE`, the statement's columns and types). The call's implicit transaction commits
        at the protocol's Sync, before Postgres answers ReadyForQuery, which asyncpg waits for: a
        failure at commit (a deferred constraint) arrives here as the statement's error, and rows
        returned mean committed. Triggers, row-level security and errors are the statement's own, as
        in a `session()`. Until the statement has earned its function it runs in a `session()`.

        `signalled`: the tables whose live-query NOTIFY the statement skips (migration 0031), because the
        caller signals them itself once this has returned. In a `session()` they still notify.
        """
        rows: list[asyncpg.Record] = await self._one_statement(claims, sql, args, statement_timeout_ms, write=True,
                                                               signalled=",".join(signalled))
        return rows

    async def _one_statement(self, claims: Claims, sql: str, args: Sequence[Any], statement_timeout_ms: int | None,
                             *, write: bool, signalled: str = "") -> Any:
        if not self._readers or not self._earned(sql):
            async with self.session(claims, statement_timeout_ms=statement_timeout_ms) as session:
                return await (session.fetch(sql, *args) if write else session.fetchval(sql, *args))
        try:
            raw = await self._reader_conns.take(self._connect_reader)
            healthy = False
            try:
                value = await self._call_on(raw, claims, sql, args, statement_timeout_ms, write, signalled)
                healthy = True
                return value
            except asyncpg.PostgresError:
                healthy = True  # the statement failed; the connection, outside any transaction, did not
                raise
            finally:
                self._reader_conns.give(raw, healthy)
        except NchatError:
            raise
        except Exception as exc:
            mapped = errors.translate(exc)
            if mapped is None:
                raise
            raise mapped from exc

    async def _connect_reader(self) -> _PooledConnection:
        """A connection for read_text, set as the pool's are (no JSON codecs: the statements return text).

        Generic plans: a function's statement is planned once per connection and role, as a prepared
        statement is after five runs. Left to choose, Postgres kept re-planning statements whose generic
        plan it costs higher, such as a LIMIT given as a parameter (a live query's `limit: 1`: 0.75 ms of
        planning for 0.09 ms of execution on every re-run; bench/graphql_bench.py's live push: Postgres
        CPU 2,702 -> 1,463 us per push, 248 -> 390 pushes/s, same run). Only read_text's statements run
        on these connections."""
        conn: _PooledConnection = await asyncpg.connect(
            self.url, timeout=5, command_timeout=30, connection_class=_PooledConnection,
            server_settings={"jit": "off", "plan_cache_mode": "force_generic_plan"})
        return conn

    async def _call_on(self, raw: _PooledConnection, claims: Claims, sql: str, args: Sequence[Any],
                       statement_timeout_ms: int | None, write: bool, signalled: str) -> Any:
        if raw.is_in_transaction():  # never: read_text's connections run no transaction of their own
            raise RuntimeError("read_text on a connection inside a transaction")
        state = raw.reader_state
        timeout = int(statement_timeout_ms or 0)
        if state.timeout_ms != timeout:
            state.timeout_ms = -1  # unknown until the SET has run
            await raw.execute(f"SET statement_timeout = {timeout}" if timeout else "RESET statement_timeout")
            state.timeout_ms = timeout
        key = (write, sql)
        reader = state.readers.get(key)
        if reader is not None:
            state.readers.move_to_end(key)
        else:
            # Bounded per connection: clients choose the documents, hence how many there are. The oldest
            # is dropped with the new one's creation, in its transaction, and forgotten only once that
            # succeeded: a statement that fails to prepare leaves the cache and the functions as they were.
            oldest = next(iter(state.readers)) if len(state.readers) >= READERS_PER_CONNECTION else None
            evicted = state.readers[oldest][0] if oldest is not None else None
            try:
                reader = await _create_reader(raw, sql, PG_ROLES[claims.role], evicted, write=write)
            except asyncpg.InsufficientPrivilegeError:
                # A login role without TEMP on the database: sessions, from now on.
                self._readers = False
                raise
            if oldest is not None:
                del state.readers[oldest]
            state.readers[key] = reader
        try:
            if write:
                return await raw.fetch(reader[1], *args, PG_ROLES[claims.role], claims.as_setting(), signalled)
            return await raw.fetchval(reader[1], *args, PG_ROLES[claims.role], claims.as_setting())
        except asyncpg.UndefinedFunctionError:
            state.readers.clear()  # temp objects discarded (DISCARD): created again next time
            raise

    def _earned(self, sql: str) -> bool:
        """Whether `sql` has been seen often enough to run through a function (this call counted)."""
        if self.reader_after <= 1:
            return True
        seen = self._sightings.pop(sql, 0) + 1
        self._sightings[sql] = seen  # the most recently seen last
        if len(self._sightings) > SIGHTINGS:
            self._sightings.popitem(last=False)
        return seen >= self.reader_after

    async def ping(self) -> bool:
        try:
            pool = await self.pool()
            async with pool.acquire(timeout=ACQUIRE_TIMEOUT_S) as conn:
                await conn.fetchval("SELECT 1")
            return True
        except Exception:
            return False

    async def close(self) -> None:
        """Close the pool's connections; a later session opens a new pool."""
        async with self._pool_lock:
            pool, self._pool = self._pool, None
        await self._reader_conns.close()
        if pool is not None:
            await pool.close()


def setup_batch(pg_role: str, setting: str, statement_timeout_ms: int | None) -> str:
    """The set-up of a session as one simple query (no parameters: the claims are a dollar-quoted
    literal whose tag they do not contain; the role comes from the fixed PG_ROLES table)."""
    tag = "$nchat$"
    while tag in setting:
        tag = f"$nchat{secrets.token_hex(4)}$"
    configs = [f"set_config('role', '{pg_role}', true)", f"set_config('hasura.user', {tag}{setting}{tag}, true)"]
    if statement_timeout_ms:
        configs.append(f"set_config('statement_timeout', '{int(statement_timeout_ms)}ms', true)")
    return _RESET + "BEGIN; SELECT " + ", ".join(configs)


async def _create_reader(raw: asyncpg.Connection, sql: str, pg_role: str, evicted: str | None, *,
                         write: bool = False) -> tuple[str, str]:
    """A pg_temp function of this connection returning `sql`'s value as text (`Database.read_text`), or
    its rows (`write`: `Database.write_once`), and the statement that calls it.

    Its parameters are the statement's (types as Postgres infers them, prepared as the role that will
    run it, in a transaction of its own, so `$n` in the body is the same value), then the role and the
    claims, and a writer's signalled tables (migration 0031); a writer's columns are the statement's, named
    c1..cn in the function and given back their names by the call. The body's text is ours (compiled
    SQL), never a caller's."""
    async with raw.transaction():
        await raw.execute(f"SELECT set_config('role', '{pg_role}', true)")
        prepared = await raw.prepare(sql)
        oids = [t.oid for t in prepared.get_parameters()]
        columns = [(a.name, a.type.oid) for a in prepared.get_attributes()] if write else []
        if write and not columns:
            raise ValueError("write_once takes a statement that returns rows (RETURNING ...)")
        # Postgres's own spelling of each type (format_type: qualified where needed, arrays as x[]).
        types: list[str] = list(await raw.fetchval(
            "SELECT coalesce(array_agg(format_type(o, NULL) ORDER BY i), '{}') "
            "FROM unnest($1::oid[]) WITH ORDINALITY AS t(o, i)", [*oids, *(oid for _, oid in columns)]))
    n = len(oids)
    kind = "write" if write else "read"
    name = f"pg_temp.nchat_{kind}_" + hashlib.sha256(sql.encode()).hexdigest()[:24]
    tag = "$nchat$"
    while tag in sql:
        tag = f"$nchat{secrets.token_hex(4)}$"
    extra = ["text", "text", "text"] if write else ["text", "text"]
    markers = ", ".join(f"${i + 1}" for i in range(n + len(extra)))
    signalled = f", set_config('nchat.signalled_tables', ${n + 3}, true)" if write else ""
    setup = f"PERFORM set_config('role', ${n + 1}, true), set_config('hasura.user', ${n + 2}, true){signalled};\n"
    if write:
        returns = "TABLE(" + ", ".join(f"c{i + 1} {t}" for i, t in enumerate(types[n:])) + ")"
        body = f"{setup}RETURN QUERY {sql};\n"
        names = ", ".join(f'c{i + 1} AS "{column.replace(chr(34), chr(34) * 2)}"'
                          for i, (column, _) in enumerate(columns))
        call = f"SELECT {names} FROM {name}({markers})"
    else:
        returns, body, call = "text", f"{setup}RETURN ({sql});\n", f"SELECT {name}({markers})"
    # use_column: an unqualified name in the statement is a column, never a plpgsql variable.
    drop = f"DROP FUNCTION IF EXISTS {evicted}; " if evicted else ""
    await raw.execute(
        f"{drop}CREATE OR REPLACE FUNCTION {name}({', '.join([*types[:n], *extra])}) RETURNS {returns} "
        f"LANGUAGE plpgsql AS {tag}#variable_conflict use_column\nBEGIN\n{body}END{tag}")
    return name, call


class _ReaderState:
    """Per read_text connection: its functions, and its session statement_timeout (-1: unknown)."""

    def __init__(self) -> None:
        # (written, statement) -> (function, the statement that calls it), least recently used first
        self.readers: OrderedDict[tuple[bool, str], tuple[str, str]] = OrderedDict()
        self.timeout_ms = -1
        self.idle_since = 0.0  # the event loop's clock when last handed back


class _Readers:
    """read_text's connections: an idle list, instead of the pool's acquire and release (pure Python
    around a proxy object, a timer, a shielded task and a timeout on each use; a tenth of a
    fast-path read's server CPU). Only read_text uses them, so none is ever left in a transaction
    or with a session's settings: no reset between uses. A closed one (a restarted Postgres) is
    dropped and another opened; one whose statement did not end cleanly (cancelled, connection
    error) is terminated, as its state is then unknown. One idle for `idle_s` is closed when the
    list is next used (the most recently used are taken first, so the idle ones are the oldest), and
    one handed back after `close()` is closed, not kept.
    """

    def __init__(self, size: int, idle_s: float = IDLE_LIFETIME_S) -> None:
        self.size = max(size, 1)
        self.idle_s = idle_s
        self.opened = 0
        self.closed = False
        self.idle: list[_PooledConnection] = []
        # Callers waiting for a connection: handed one, or None (a place freed: open one).
        self.waiters: deque[asyncio.Future[_PooledConnection | None]] = deque()

    async def take(self, connect: Callable[[], Awaitable[_PooledConnection]]) -> _PooledConnection:
        self.closed = False  # a Database reopens on use after close(), as its pool does
        self._retire_idle()
        while self.idle:
            conn = self.idle.pop()
            if not conn.is_closed():
                return conn
            self._drop()
        if self.opened < self.size:
            self.opened += 1
        else:
            handed = await self._wait()
            if handed is not None:
                return handed
            # None: a place freed was passed on to this caller
        try:
            return await connect()
        except BaseException:
            self._drop()
            raise

    def _retire_idle(self) -> None:
        if not self.idle:
            return
        oldest = asyncio.get_running_loop().time() - self.idle_s
        while self.idle and self.idle[0].reader_state.idle_since < oldest:
            # Outside any transaction and idle: Postgres takes the end of the socket as a normal exit.
            self.idle.pop(0).terminate()
            self._drop()

    async def _wait(self) -> _PooledConnection | None:
        waiter: asyncio.Future[_PooledConnection | None] = asyncio.get_running_loop().create_future()
        self.waiters.append(waiter)
        try:
            async with asyncio.timeout(ACQUIRE_TIMEOUT_S):
                return await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():  # handed over as the wait ended: pass it on
                handed = waiter.result()
                if handed is not None:
                    self.give(handed, True)
                else:
                    self._drop()
            raise
        finally:
            if not waiter.done():
                waiter.cancel()
                self.waiters.remove(waiter)

    def give(self, conn: _PooledConnection, healthy: bool) -> None:
        if not healthy or conn.is_closed() or (self.closed and not self.waiters):
            conn.terminate()
            self._drop()
            return
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        conn.reader_state.idle_since = asyncio.get_running_loop().time()
        self.idle.append(conn)

    def _drop(self) -> None:
        """A place for a connection freed: passed to a waiter (which opens one), else given up."""
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self.opened -= 1

    async def close(self) -> None:
        """Close the idle connections; those in use are closed as they are handed back."""
        self.closed = True
        idle, self.idle = self.idle, []
        self.opened -= len(idle)
        for conn in idle:
            with contextlib.suppress(Exception):
                await conn.close(timeout=5)


class _PooledConnection(asyncpg.Connection):  # type: ignore[misc]
    """Released without a reset query of its own: the next session's set-up batch carries it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reader_state = _ReaderState()

    def get_reset_query(self) -> str:
        return ""


async def _decode_json(conn: asyncpg.Connection) -> None:
    """json and jsonb values arrive decoded; parameters of those types are passed as JSON text."""
    for name in ("json", "jsonb"):
        await conn.set_type_codec(name, schema="pg_catalog", encoder=_json_text, decoder=json.loads, format="text")


def _json_text(value: str) -> str:
    return value
