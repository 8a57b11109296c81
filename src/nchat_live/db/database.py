"""The connection pool and the session API every resolver goes through.

Data access is asyncpg with SQL text and `$n` parameters, everywhere: the compiled GraphQL
statements are text, and one style means one pool, one error translation (`db.errors`) and one
way to read a query.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
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

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = normalise_url(url)
        self.pool_size = pool_size
        self._pool: asyncpg.Pool | None = None
        self._pool_lock = asyncio.Lock()
        # Set by the runtime once the event bus is up; sessions publish through it after commit.
        self.publisher: EventPublisher | None = None

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
                    max_inactive_connection_lifetime=1800, init=_decode_json, connection_class=_PooledConnection,
                    server_settings={"jit": "off"},
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


class _PooledConnection(asyncpg.Connection):  # type: ignore[misc]
    """Released without a reset query of its own: the next session's set-up batch carries it."""

    def get_reset_query(self) -> str:
        return ""


async def _decode_json(conn: asyncpg.Connection) -> None:
    """json and jsonb values arrive decoded; parameters of those types are passed as JSON text."""
    for name in ("json", "jsonb"):
        await conn.set_type_codec(name, schema="pg_catalog", encoder=_json_text, decoder=json.loads, format="text")


def _json_text(value: str) -> str:
    return value
