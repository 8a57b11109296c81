"""What every resolver receives as `info.context`: the runtime and who is asking.

`session()` is the only way resolvers reach data. It runs as the caller, under the role's
`statement_timeout`, and within the caller's fair share of the pool: one client (a user, or an
address for anonymous callers) holds at most `NCHAT_DB_SESSIONS_PER_CLIENT` sessions at once, so
one client cannot take every connection.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import asyncpg
from starlette.requests import HTTPConnection

from ..auth import Claims
from ..db import Session
from ..db.session import OneStatement
from ..errors import RateLimited

if TYPE_CHECKING:
    from ..runtime import Runtime

# How long a request waits for its client's share of the pool before it is refused.
SLOT_WAIT_SECONDS = 10.0


class _Slots:
    """Per-client semaphores of one process, forgotten when their client holds none."""

    def __init__(self) -> None:
        self._by_client: dict[tuple[int, str], tuple[asyncio.Semaphore, list[int]]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, client: str, limit: int) -> AsyncIterator[None]:
        entry = await self.take(client, limit)
        try:
            yield
        finally:
            self.give(client, limit, entry)

    async def take(self, client: str, limit: int) -> tuple[asyncio.Semaphore, list[int]]:
        """One of `client`'s slots (the entry to `give` back), waiting up to SLOT_WAIT_SECONDS for it."""
        key = (limit, client)
        entry = self._by_client.get(key)
        if entry is None:
            entry = self._by_client[key] = (asyncio.Semaphore(limit), [0])
        semaphore, users = entry
        users[0] += 1
        try:
            if semaphore.locked():
                try:
                    await asyncio.wait_for(semaphore.acquire(), SLOT_WAIT_SECONDS)
                except TimeoutError:
                    raise RateLimited(f"too many concurrent requests from this client: at most {limit} run at once",
                                      code="too-many-requests") from None
            else:  # a free slot: no timer task on every request's path
                await semaphore.acquire()
        except BaseException:
            self._leave(client, limit, entry)
            raise
        return entry

    def give(self, client: str, limit: int, entry: tuple[asyncio.Semaphore, list[int]]) -> None:
        entry[0].release()
        self._leave(client, limit, entry)

    def _leave(self, client: str, limit: int, entry: tuple[asyncio.Semaphore, list[int]]) -> None:
        users = entry[1]
        users[0] -= 1
        key = (limit, client)
        if users[0] == 0 and self._by_client.get(key) is entry:
            del self._by_client[key]


SLOTS = _Slots()


@dataclass
class Context:
    runtime: Runtime
    claims: Claims
    connection: HTTPConnection | None = None
    # Set by execution.run for the operation it runs: the query document's one transaction
    # (opened on first use), or the mutation document's transaction.
    query_session: SharedSession | None = None
    mutation_session: Session | None = None
    # The request's variables as the client sent them (before coercion): the compiler keeps the
    # key order of `order_by` objects from them.
    raw_variables: dict[str, Any] | None = None
    # Statements the generated root fields ran for this context (tests count round trips).
    statements: int = 0
    # Called by an event feed once its bus listener is registered and access allowed
    # (the websocket transport waits for it before it acknowledges a subscription).
    feed_ready: Callable[[], None] | None = None

    def client_key(self) -> str | None:
        """Whose share of the pool this request uses: the user, else the peer address."""
        if self.claims.user_id is not None:
            return f"user:{self.claims.user_id}"
        client = self.connection.client if self.connection is not None else None
        return f"addr:{client.host}" if client is not None else None

    def statement_timeout_ms(self) -> int:
        settings = self.runtime.settings
        return settings.admin_statement_timeout_ms if self.claims.is_admin else settings.statement_timeout_ms

    async def read_text(self, sql: str, args: Sequence[Any]) -> Any:
        """One read-only statement's value as the caller, in one round trip (`Database.read_text`),
        under the same timeout and share of the pool as `session()`."""
        return await self._in_share(self.runtime.database.read_text, sql, args)

    async def write_once(self, sql: str, args: Sequence[Any], signalled: Sequence[str] = ()) -> list[asyncpg.Record]:
        """One statement's rows as the caller, committed on its own in one round trip
        (`Database.write_once`), under the same timeout and share of the pool as `session()`."""
        rows: list[asyncpg.Record] = await self._in_share(self.runtime.database.write_once, sql, args,
                                                          signalled=signalled)
        return rows

    async def _in_share(self, call: Callable[..., Awaitable[Any]], sql: str, args: Sequence[Any],
                        **options: Any) -> Any:
        timeout = self.statement_timeout_ms()
        client = self.client_key()
        limit = self.runtime.settings.db_sessions_per_client
        if client is None or limit <= 0:
            return await call(self.claims, sql, args, statement_timeout_ms=timeout, **options)
        # take/give rather than `hold`: no generator-based context manager on every call's path
        entry = await SLOTS.take(client, limit)
        try:
            return await call(self.claims, sql, args, statement_timeout_ms=timeout, **options)
        finally:
            SLOTS.give(client, limit, entry)

    def one_statement_session(self, signalled: tuple[str, ...] = ()) -> Session:
        """A session for a resolver that makes exactly one statement (`db.session.OneStatement`): it
        commits in the statement's own round trip; the caller runs `run_after_commit()` once the
        resolver has returned. `signalled`: the tables the statement changes; once it has committed, their
        live queries are signalled by this process (`LiveQueryEngine.signal`) instead of by NOTIFY."""

        async def write(sql: str, args: Sequence[Any]) -> list[asyncpg.Record]:
            rows = await self.write_once(sql, args, signalled)
            if signalled and rows:  # a write's RETURNING gives a row for each row it changed: none, no change
                self.runtime.live.signal(signalled)
            return rows

        return Session(OneStatement(write), self.claims, self.runtime.database.publisher)

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[Session]:
        """A transaction as the caller: the only way resolvers reach data."""
        database = self.runtime.database
        timeout = self.statement_timeout_ms()
        client = self.client_key()
        limit = self.runtime.settings.db_sessions_per_client
        if client is None or limit <= 0:
            async with database.session(self.claims, statement_timeout_ms=timeout) as session:
                yield session
            return
        async with SLOTS.hold(client, limit), database.session(self.claims, statement_timeout_ms=timeout) as session:
            yield session


class SharedSession:
    """One transaction for the table root fields of one query document, opened on first use.

    Root fields resolve concurrently; they take turns on the one connection (asyncpg runs one
    statement at a time per connection), which also bounds a document's hold on the pool to one.
    """

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        self._lock = asyncio.Lock()
        self._stack: contextlib.AsyncExitStack | None = None
        self._session: Session | None = None

    @contextlib.asynccontextmanager
    async def use(self) -> AsyncIterator[Session]:
        async with self._lock:
            if self._session is None:
                stack = contextlib.AsyncExitStack()
                self._session = await stack.enter_async_context(self._ctx.session())
                self._stack = stack
            yield self._session

    async def close(self, error: BaseException | None) -> None:
        """Commit (no error) or roll back the transaction, if one was opened."""
        stack, self._stack, self._session = self._stack, None, None
        if stack is None:
            return
        if error is None:
            await stack.aclose()
        else:
            with contextlib.suppress(Exception):
                await stack.__aexit__(type(error), error, error.__traceback__)
