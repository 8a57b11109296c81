"""The connection pool and the session API every resolver goes through."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from ..auth import Claims
from ..errors import ConfigError, NchatError
from . import errors, migrations
from .session import PG_ROLES, Publisher, Session

_SET_CLAIMS = text("SELECT set_config('role', :role, true), set_config('hasura.user', :claims, true)")
# The same round trip with the request's statement_timeout (transaction-local, like SET LOCAL).
_SET_CLAIMS_TIMEOUT = text(
    "SELECT set_config('role', :role, true), set_config('hasura.user', :claims, true), "
    "set_config('statement_timeout', :timeout, true)"
)


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
        self.engine: AsyncEngine = create_async_engine(
            "postgresql+asyncpg://" + self.url.split("://", 1)[1],
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_pre_ping=True,
            pool_timeout=10,
            # A restarted Postgres leaves dead connections in the pool; pre-ping and recycling
            # replace them without the caller noticing more than one failed request.
            pool_recycle=1800,
            connect_args={"timeout": 5, "command_timeout": 30},
        )
        # Set by the runtime once the event bus is up; sessions publish through it after commit.
        self.publisher: Publisher | None = None

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
            async with self.engine.connect() as conn:
                async with conn.begin():
                    # This statement also opens the transaction on the driver connection, so the
                    # raw asyncpg calls below run inside it.
                    params = {"role": PG_ROLES[claims.role], "claims": claims.as_setting()}
                    if statement_timeout_ms:
                        await conn.execute(_SET_CLAIMS_TIMEOUT, {**params, "timeout": f"{int(statement_timeout_ms)}ms"})
                    else:
                        await conn.execute(_SET_CLAIMS, params)
                    raw = (await conn.get_raw_connection()).driver_connection
                    assert raw is not None
                    session = Session(conn, raw, claims, self.publisher)
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
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
            return True
        except Exception:
            return False

    async def close(self) -> None:
        await self.engine.dispose()
