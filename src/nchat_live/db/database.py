"""The connection pool and the session API every resolver goes through.

Data access is asyncpg with SQL text and `$n` parameters, everywhere: the compiled GraphQL
statements are text, and one style means one pool, one error translation (`db.errors`) and one
way to read a query.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

import asyncpg

from ..auth import Claims
from ..errors import ConfigError, NchatError
from . import errors, migrations
from .session import PG_ROLES, EventPublisher, Session

_SET_CLAIMS = "SELECT set_config('role', $1, true), set_config('hasura.user', $2, true)"
# The same round trip with the request's statement_timeout (transaction-local, like SET LOCAL).
_SET_CLAIMS_TIMEOUT = (
    "SELECT set_config('role', $1, true), set_config('hasura.user', $2, true), "
    "set_config('statement_timeout', $3, true)"
)
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
                self._pool = await asyncpg.create_pool(
                    self.url, min_size=0, max_size=self.pool_size * 2, timeout=5, command_timeout=30,
                    max_inactive_connection_lifetime=1800, init=_decode_json,
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

        `statement_timeout_ms` (request work; 0 or None: the server's default) is set in the same
        statement, so it costs no extra round trip; a statement over it fails with code `timeout`.

        Postgres errors leave as domain errors (NchatError); after-commit callbacks run once the
        transaction has committed, never after a rollback.
        """
        try:
            pool = await self.pool()
            async with pool.acquire(timeout=ACQUIRE_TIMEOUT_S) as raw:
                async with raw.transaction():
                    role, setting = PG_ROLES[claims.role], claims.as_setting()
                    if statement_timeout_ms:
                        await raw.execute(_SET_CLAIMS_TIMEOUT, role, setting, f"{int(statement_timeout_ms)}ms")
                    else:
                        await raw.execute(_SET_CLAIMS, role, setting)
                    session = Session(raw, claims, self.publisher)
                    yield session
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


async def _decode_json(conn: asyncpg.Connection) -> None:
    """json and jsonb values arrive decoded; parameters of those types are passed as JSON text."""
    for name in ("json", "jsonb"):
        await conn.set_type_codec(name, schema="pg_catalog", encoder=_json_text, decoder=json.loads, format="text")


def _json_text(value: str) -> str:
    return value
