"""The one way resolvers reach the database: a transaction that runs as the caller."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, TypeVar

import asyncpg

from ..auth import Claims
from . import errors

log = logging.getLogger(__name__)
T = TypeVar("T")

# Request roles map to Postgres roles by this fixed table; nothing from the request is
# interpolated into SQL.
PG_ROLES = {
    "anonymous": "nchat_anonymous",
    "user": "nchat_user",
    "moderator": "nchat_moderator",
    "admin": "nchat_admin",
}

AfterCommit = Callable[[], Awaitable[None]]
EventPublisher = Callable[[str, dict[str, Any]], Awaitable[None]]
# Database.write_once bound to a caller: the rows of one statement, committed on its own.
WriteOnce = Callable[[str, Sequence[Any]], Awaitable[list[asyncpg.Record]]]


class Statements(Protocol):
    """What a Session runs its statements on: an asyncpg connection in a transaction, or OneStatement."""

    async def execute(self, query: str, *args: Any) -> str: ...
    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]: ...
    async def fetchrow(self, query: str, *args: Any) -> asyncpg.Record | None: ...
    async def fetchval(self, query: str, *args: Any) -> Any: ...
    async def executemany(self, command: str, args: Sequence[Sequence[Any]]) -> None: ...


class OneStatement:
    """Statements for a resolver that makes exactly one (sendChatMessage): that statement runs through
    `write`, in a transaction of its own committed in the same round trip (Database.write_once),
    instead of set-up, statement and COMMIT. A second statement is a programming error (the first is
    already committed, so it could not be rolled back with it) and raises before it runs."""

    def __init__(self, write: WriteOnce) -> None:
        self._write: WriteOnce | None = write

    async def _rows(self, query: str, args: Sequence[Any]) -> list[asyncpg.Record]:
        write, self._write = self._write, None
        if write is None:
            raise RuntimeError("a one-statement session ran a second statement")
        return await write(query, args)

    async def execute(self, query: str, *args: Any) -> str:
        raise RuntimeError("a one-statement session runs statements that return rows")

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        return await self._rows(query, args)

    async def fetchrow(self, query: str, *args: Any) -> asyncpg.Record | None:
        rows = await self._rows(query, args)
        return rows[0] if rows else None

    async def fetchval(self, query: str, *args: Any) -> Any:
        rows = await self._rows(query, args)
        return rows[0][0] if rows else None

    async def executemany(self, command: str, args: Sequence[Sequence[Any]]) -> None:
        raise RuntimeError("a one-statement session runs statements that return rows")


class Session:
    """A transaction running under a request's Postgres role and claims.

    Every statement is SQL text with `$n` parameters (asyncpg); a Postgres failure leaves as the
    domain error `db.errors.translate` gives it. `after_commit` registers work (publishing events)
    that runs only once the transaction has committed.
    """

    def __init__(self, raw: Statements, claims: Claims, publisher: EventPublisher | None = None) -> None:
        self.raw = raw
        self.claims = claims
        self._publisher = publisher
        self._after_commit: list[AfterCommit] = []
        self.statements = 0

    async def execute(self, sql: str, *args: Any) -> str:
        """Run a statement; its status (e.g. "UPDATE 3")."""
        self.statements += 1
        return await _translated(self.raw.execute(sql, *args))

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        self.statements += 1
        return await _translated(self.raw.fetch(sql, *args))

    async def fetchrow(self, sql: str, *args: Any) -> asyncpg.Record | None:
        self.statements += 1
        return await _translated(self.raw.fetchrow(sql, *args))

    async def fetchval(self, sql: str, *args: Any) -> Any:
        self.statements += 1
        return await _translated(self.raw.fetchval(sql, *args))

    async def executemany(self, sql: str, args: Sequence[Sequence[Any]]) -> None:
        self.statements += 1
        await _translated(self.raw.executemany(sql, args))

    def after_commit(self, callback: AfterCommit) -> None:
        self._after_commit.append(callback)

    def emit(self, topic: str, payload: dict[str, Any]) -> None:
        """Publish an event on the bus once (and only if) this transaction commits."""
        publisher = self._publisher
        if publisher is None:
            return

        async def publish() -> None:
            await publisher(topic, payload)

        self._after_commit.append(publish)

    async def run_after_commit(self) -> None:
        callbacks, self._after_commit = self._after_commit, []
        for callback in callbacks:
            try:
                await callback()
            except Exception:
                # The transaction is committed; a failed notification must not turn a success
                # into an error for the caller.
                log.exception("after-commit callback failed")


async def _translated(statement: Awaitable[T]) -> T:
    """`statement`'s result, or the domain error for its Postgres failure (db.errors.translate)."""
    try:
        return await statement
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
        mapped = errors.translate(exc)
        if mapped is None:
            raise
        raise mapped from exc
