"""Live queries: Hasura-style subscription root fields, re-run when their data may have changed.

`LiveQuery` is one compiled subscription root field. A subscription `X`, `X_by_pk`, `X_aggregate`
is a live query: the engine re-runs `LiveQuery.run()` (one SQL statement, under the subscriber's
claims) when the data may have changed, and yields the result when it differs from the last one
sent. `X_stream` is a cursor stream: each `run()` returns the next batch after the cursor (possibly
empty) and advances the cursor; the engine yields non-empty batches.

Grouping: subscribers whose `LiveQuery.group_key` is equal run the same statement with the same
parameters under claims of the same visibility, so one execution may serve them all (the
statement is compiled per subscriber; equal keys guarantee equal results). Streams never share a
key (each has its own cursor).

`LiveQueryEngine` (`runtime.live`) re-runs a live query under its subscriber's claims whenever a table
it reads, or one the row policies consult, changes (a statement-level trigger per nchat_ table NOTIFYs
`nchat_table_changes` at commit; migration 0004), or when a send that skipped that NOTIFY signals its
tables (`signal`: this process at once, the others over the event bus; migration 0031), and at least every
`refetch_s` as a safety net. The result goes out only when its JSON differs from the last one.
Subscribers with the same group key (same statement, same parameters, same visibility key) share one
execution; a group never mixes visibility keys. A slow subscriber only ever holds the latest result, so it
cannot make a group wait. `X_stream` subscriptions run their own cursor and yield each non-empty batch.

A re-run is one round trip (`Database.read_text`), and its JSON text is what groups compare. A
websocket subscription of one live root field is compiled from its document into a statement that
builds the whole `data` object (`compile_document`); its subscribers take the text as it is
(`subscribe_text`) and the transport puts it into the frame, where the executor's path decodes it,
completes it field by field and encodes it again (`subscribe`, decoded once per group and change).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import AsyncGenerator, AsyncIterator, Collection, Hashable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, cast

import asyncpg
from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    GraphQLError,
    GraphQLResolveInfo,
    GraphQLSchema,
    OperationDefinitionNode,
)
from graphql.execution.values import get_variable_values

from ...auth import Claims
from ...db import Database, Session
from ...errors import NchatError
from ...subscriptions.bus import EventBus, SlowSubscriber
from .catalog import Catalog
from .compiler.compiler import Compiler, RootField
from .compiler.selection import Reader, Selected
from .compiler.sql import as_text, literal_key
from .statements import QUERY_KINDS, compile_query, run_json

if TYPE_CHECKING:
    from ..context import Context

log = logging.getLogger(__name__)

# The bus event by which a process's writers signal the tables they changed to the other processes' live
# queries, instead of Postgres's NOTIFY (migration 0031), and how long a process gathers them into one.
TABLES_CHANGED = "tables.changed"
SIGNAL_BATCH_S = 0.01

CHANNEL = "nchat_table_changes"
_UNDECODED = object()
_TABLE = re.compile(r"\bnchat_[a-z0-9_]+\b")
# The row policies consult these through nchat.can_read_stream / can_read_channel: a membership
# or privacy change alters what a query returns without touching its own tables.
POLICY_TABLES = frozenset({"nchat_channels", "nchat_channel_members", "nchat_streams"})


@dataclass
class LiveQuery:
    ctx: Context
    field_name: str
    table: str
    kind: Literal["live", "stream"]
    sql: str
    params: list[Any]
    # stream only: how to recompile for the current cursor value
    _info: GraphQLResolveInfo[Any] | None = None
    _args: dict[str, Any] = field(default_factory=dict)
    _selected: Selected | None = None
    cursor: Any = None

    @classmethod
    def compile(
        cls, ctx: Context, info: GraphQLResolveInfo[Any], args: dict[str, Any], selected: Selected, meta: RootField
    ) -> LiveQuery:
        if meta.kind == "stream":
            query = cls(ctx, info.field_name, meta.table, "stream", "", [], info, args, selected)
            query._recompile()
            return query
        sql, params = compile_query(ctx, info, args)
        return cls(ctx, info.field_name, meta.table, "live", sql, params)

    @property
    def group_key(self) -> tuple[Any, ...]:
        if self.kind == "stream":
            return ("stream", id(self))
        return (self.sql, tuple(_frozen(p) for p in self.params), self.ctx.claims.visibility_key())

    def _recompile(self) -> None:
        assert self._info is not None and self._selected is not None
        catalog = self._info.schema.extensions["nchat_catalog"]
        compiler = Compiler(catalog, Reader.of(self._info, self.ctx.raw_variables), self.ctx.runtime.settings.max_rows)
        self.sql, _ = compiler.stream(catalog.tables[self.table], self._selected, self._args,
                                                        self.cursor)
        self.params = compiler.params.values

    async def _pin_initial(self, session: Session | None) -> None:
        """Evaluate the initial cursor once: "now()" must mean the moment of subscribing, not of each run."""
        catalog = self._info.schema.extensions["nchat_catalog"] if self._info else None
        cursor = (self._args.get("cursor") or [{}])[0] or {}
        initial = cursor.get("initial_value") or {}
        if catalog is None or len(initial) != 1:
            return
        (name, value), = initial.items()
        column = catalog.tables[self.table].columns[name]
        sql = f"SELECT (($1::text)::{column.sql_type})::text"
        if session is None:
            async with self.ctx.session() as own:
                self.cursor = await own.fetchval(sql, as_text(value, column))
        else:
            self.cursor = await session.fetchval(sql, as_text(value, column))
        self._recompile()

    async def run(self, session: Session | None = None) -> Any:
        """Execute once as the subscriber (or in `session`, which must carry the same visibility)."""
        if self.kind == "stream" and self.cursor is None:
            await self._pin_initial(session)
        result = await run_json(self.ctx, self.sql, self.params, session)
        if self.kind == "stream" and result:
            self.cursor = result[-1].get("__cursor")
            self._recompile()
        return result

    async def run_text(self, database: Database, claims: Claims) -> str:
        """A live query's result as the JSON text Postgres built (not for `stream`, whose cursor
        moves): equal results are equal texts, so re-runs compare it without decoding.

        `claims` carry the visibility of the subscriber's (its group's). One round trip
        (`Database.read_text`) where a session takes three (set-up, statement, COMMIT), under the
        statement timeout the same query has over HTTP (a connection then keeps one setting)."""
        text = await database.read_text(
            claims, f"SELECT ({self.sql})::text", self.params, statement_timeout_ms=self.ctx.statement_timeout_ms())
        self.ctx.statements += 1
        return text if isinstance(text, str) else "null"  # no row (by_pk)



def compile_document(
    ctx: Context, schema: GraphQLSchema, document: DocumentNode, operation: OperationDefinitionNode, query: str,
    variables: dict[str, Any] | None,
) -> LiveQuery | None:
    """A subscription whose root field is a live query (`X`, `X_by_pk`, `X_aggregate`) as ONE statement
    that builds the whole `data` object, or None (streams, `__typename`, anything the compiler refuses:
    the executor's path answers those, errors included).

    Its JSON text goes to the client as Postgres wrote it (`LiveQueryEngine.subscribe_text`), as the
    fast path of query documents sends it (fast.py): the executor would decode each result, complete
    it field by field and encode it again, for the same value."""
    root = schema.subscription_type
    if root is None or "__" in query:
        return None
    values = get_variable_values(schema, operation.variable_definitions or (), variables or {})
    if isinstance(values, list):  # a bad variable: the executor words the error
        return None
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    defaults = {d.variable.name.value: d.default_value for d in operation.variable_definitions or ()
                if d.default_value is not None}
    reader = Reader(values, fragments, variables, defaults)
    # The operation is the parent node `Reader.fields` walks (it reads only `.selection_set`).
    roots = reader.fields(root, [cast(FieldNode, operation)])
    if len(roots) != 1:
        return None
    selected = roots[0]
    meta = selected.meta
    if not isinstance(meta, RootField) or meta.kind not in QUERY_KINDS:
        return None
    catalog: Catalog = schema.extensions["nchat_catalog"]
    table = catalog.tables[meta.table]
    compiler = Compiler(catalog, reader, ctx.runtime.settings.max_rows)
    try:
        sql = compiler.root(meta.kind, table, selected, reader.args(selected))
    except (NchatError, GraphQLError):
        return None
    if "jsonb_build_object(" in sql:  # a wide object built as jsonb loses the selection's key order
        return None
    ctx.raw_variables = variables
    sql = f"SELECT json_build_object({literal_key(selected.key)}, ({sql}))"
    return LiveQuery(ctx, selected.nodes[0].name.value, meta.table, "live", sql, compiler.params.values)


def _frozen(value: Any) -> Hashable:
    """A parameter as a dict key: `_in`/`_nin` lists (Postgres arrays) and jsonb values are lists and dicts,
    which a group key cannot hold as they are (a live query with `_in` failed with "unexpected error")."""
    if isinstance(value, list | tuple):
        return ("array", tuple(_frozen(v) for v in value))
    if isinstance(value, dict):
        return ("object", tuple(sorted((str(k), _frozen(v)) for k, v in value.items())))
    return value


def tables_of(query: LiveQuery) -> frozenset[str]:
    return frozenset(_TABLE.findall(query.sql)) | {query.table} | POLICY_TABLES


class _Latest:
    """A one-item mailbox: a new result replaces one the subscriber has not taken yet."""

    def __init__(self) -> None:
        self.item: Any = None
        self.has = asyncio.Event()

    def put(self, item: Any) -> None:
        self.item = item
        self.has.set()

    async def get(self) -> Any:
        await self.has.wait()
        self.has.clear()
        item, self.item = self.item, None
        return item


@dataclass(eq=False)
class _Group:
    key: Hashable
    query: LiveQuery
    claims: Claims
    tables: frozenset[str]
    subscribers: set[_Latest] = field(default_factory=set)
    dirty: asyncio.Event = field(default_factory=asyncio.Event)
    last_json: str | None = None
    last_value: Any = _UNDECODED
    task: asyncio.Task[None] | None = None
    runs: int = 0

    def value(self) -> Any:
        """The last result decoded, once for all the subscribers that take values."""
        if self.last_value is _UNDECODED:
            assert self.last_json is not None
            self.last_value = json.loads(self.last_json)
        return self.last_value


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


class LiveQueryEngine:
    """Runs the live queries of a process (`runtime.live`): one LISTEN connection, one task per group."""

    def __init__(self, database: Database, *, bus: EventBus | None = None, refetch_s: float = 5.0,
                 min_interval_s: float = 0.1) -> None:
        self.database = database
        # The bus the other processes' signals travel on (None: in-process only, when there is no other).
        self.bus = bus if bus is not None and bus.backend_name != "memory" else None
        self.refetch_s = refetch_s
        self.min_interval_s = min_interval_s
        self.groups: dict[Hashable, _Group] = {}
        self._streams: set[_Group] = set()
        self._listen_task: asyncio.Task[None] | None = None
        self._signals_task: asyncio.Task[None] | None = None
        self._outgoing: set[str] = set()
        self._flush: asyncio.TimerHandle | None = None
        self._publishing: set[asyncio.Task[None]] = set()
        self._listening = asyncio.Event()
        self.executions = 0

    async def start(self) -> None:
        conn = await self.database.connect_raw()
        try:
            # API processes starting together would race to create the same triggers: one at a time.
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock(hashtext('nchat.ensure_change_triggers'))")
                await conn.execute("SELECT nchat.ensure_change_triggers()")
        finally:
            await conn.close()
        self._listen_task = asyncio.create_task(self._listen(), name="nchat-live-listen")
        if self.bus is not None:
            self._signals_task = asyncio.create_task(self._follow_signals(self.bus), name="nchat-live-signals")
        await asyncio.wait_for(self._listening.wait(), 10)

    async def stop(self) -> None:
        for group in [*self.groups.values(), *self._streams]:
            if group.task is not None:
                group.task.cancel()
        if self._flush is not None:
            self._flush.cancel()
        for task in (self._listen_task, self._signals_task, *self._publishing):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def _listen(self) -> None:
        delay = 0.2
        while True:
            lost = asyncio.Event()
            try:
                conn = await asyncpg.connect(self.database.url, timeout=5)
            except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
                log.warning("live-query LISTEN failed (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            try:
                conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                await conn.add_listener(CHANNEL, lambda _c, _p, _ch, table: self.changed(table))
                delay = 0.2
                if self._listening.is_set():
                    # Changes may have been missed while reconnecting.
                    self.changed(None)
                self._listening.set()
                await lost.wait()
                log.warning("live-query LISTEN connection lost; reconnecting")
            finally:
                with contextlib.suppress(Exception):
                    await conn.close()

    def signal(self, tables: Collection[str]) -> None:
        """Tables a writer of this process changed, committed, without a NOTIFY (migration 0031): this
        process's queries at once; the other processes' over the bus, gathered for SIGNAL_BATCH_S into one
        event (a send a millisecond is a handful of events a second, not a thousand)."""
        self._wake(tables)
        if self.bus is None:  # one process: no other to tell
            return
        self._outgoing.update(tables)
        if self._flush is None:
            self._flush = asyncio.get_running_loop().call_later(SIGNAL_BATCH_S, self._publish_signals)

    def _publish_signals(self) -> None:
        tables, self._outgoing, self._flush = sorted(self._outgoing), set(), None
        assert self.bus is not None
        task = asyncio.create_task(self.bus.publish(TABLES_CHANGED, {"tables": tables}))
        self._publishing.add(task)
        task.add_done_callback(self._published)

    def _published(self, task: asyncio.Task[None]) -> None:
        self._publishing.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # The other processes' queries catch up at their refetch (refetch_s), as after a lost NOTIFY.
            log.warning("live-query signal not published: %s", task.exception())

    async def _follow_signals(self, bus: EventBus) -> None:
        """The tables the other processes' writers signal over the bus (this one's are already applied)."""
        while True:
            try:
                with bus.listen(types={TABLES_CHANGED}) as listener:
                    while True:
                        event = await listener.get()
                        if event.origin == bus.origin:
                            continue
                        tables = event.payload.get("tables")
                        if isinstance(tables, list):
                            self._wake([str(table) for table in tables])
            except SlowSubscriber:
                # Signals were dropped: every query may have missed a change.
                self.changed(None)

    def changed(self, table: str | None) -> None:
        """Wake every query that reads `table` (None: every query)."""
        self._wake(None if table is None else (table,))

    def _wake(self, tables: Collection[str] | None) -> None:
        """Wake every query that reads one of `tables` (None: every query), in one pass over the queries: a
        send names two or three tables, and this runs on every send."""
        for group in [*self.groups.values(), *self._streams]:
            if tables is None or not group.tables.isdisjoint(tables):
                group.dirty.set()

    # -- the engine protocol ----------------------------------------------------------------------

    async def subscribe(self, ctx: Context, field_name: str, query: LiveQuery) -> AsyncIterator[Any]:
        if query.kind == "stream":
            async for batch in self._stream(ctx, query):
                yield batch
            return
        async for group in self._changes(ctx, field_name, query):
            yield group.value()

    async def subscribe_text(self, ctx: Context, query: LiveQuery) -> AsyncGenerator[str]:
        """A live query's results as the JSON text Postgres built (`compile_document`), never decoded."""
        async for group in self._changes(ctx, query.field_name, query):
            assert group.last_json is not None
            yield group.last_json

    async def _changes(self, ctx: Context, field_name: str, query: LiveQuery) -> AsyncIterator[_Group]:
        """The subscriber's group each time its result changed (its latest is `last_json`)."""
        # The engine's key already holds the visibility key; adding it keeps that true whatever
        # the key is made of.
        key = (query.group_key, ctx.claims.visibility_key())
        group = self.groups.get(key)
        if group is None:
            group = _Group(key, query, ctx.claims, tables_of(query))
            self.groups[key] = group
            group.task = asyncio.create_task(self._run_group(group), name=f"nchat-live-{field_name}")
        mailbox = _Latest()
        group.subscribers.add(mailbox)
        if group.last_json is not None:
            mailbox.put(group)
        try:
            while True:
                item = await mailbox.get()
                if isinstance(item, _Failed):
                    raise item.error
                yield item
        finally:
            group.subscribers.discard(mailbox)
            if not group.subscribers and self.groups.get(key) is group:
                del self.groups[key]
                if group.task is not None:
                    group.task.cancel()

    async def _execute(self, group: _Group) -> Any:
        self.executions += 1
        group.runs += 1
        async with self.database.session(group.claims) as session:
            return await group.query.run(session)

    async def _execute_text(self, group: _Group) -> tuple[str, Any]:
        """The result's text to compare, and its value when already decoded (else `_UNDECODED`)."""
        self.executions += 1
        group.runs += 1
        query = group.query
        if isinstance(query, LiveQuery):
            return await query.run_text(self.database, group.claims), _UNDECODED
        # Anything else that runs like a query (tests drive the engine with their own).
        async with self.database.session(group.claims) as session:
            value = await query.run(session)
            return json.dumps(value, sort_keys=True, default=str), value

    async def _after_change(self, group: _Group, started: float) -> None:
        """Wait for a change (or the safety-net refetch), then out of the throttle: at most one run per
        `min_interval_s` from the start of the last, so a burst of writes coalesces into one re-run,
        while a change after a quiet spell is run at once (it used to wait `min_interval_s` every time)."""
        loop = asyncio.get_running_loop()
        if not group.dirty.is_set():
            # The safety net as a timer that marks the group changed: wait_for wrapped every wait in
            # a task of its own and a timeout, one more pass of the loop between a change and its run.
            refetch = loop.call_later(self.refetch_s, group.dirty.set)
            try:
                await group.dirty.wait()
            finally:
                refetch.cancel()
        left = started + self.min_interval_s - loop.time()
        if left > 0:
            await asyncio.sleep(left)

    async def _run_group(self, group: _Group) -> None:
        loop = asyncio.get_running_loop()
        while True:
            group.dirty.clear()
            started = loop.time()
            try:
                text, value = await self._execute_text(group)
            except Exception as exc:
                for mailbox in group.subscribers:
                    mailbox.put(_Failed(exc))
                if self.groups.get(group.key) is group:
                    del self.groups[group.key]
                return
            if text != group.last_json:
                # Decoded only when it changed, and only for subscribers that take values (`value()`):
                # an unchanged re-run costs a string comparison.
                group.last_json, group.last_value = text, value
                for mailbox in group.subscribers:
                    mailbox.put(group)
            await self._after_change(group, started)

    async def _stream(self, ctx: Context, query: LiveQuery) -> AsyncIterator[Any]:
        group = _Group(("stream", id(query)), query, ctx.claims, tables_of(query))
        self._streams.add(group)
        try:
            loop = asyncio.get_running_loop()
            while True:
                group.dirty.clear()
                started = loop.time()
                batch = await self._execute(group)
                if batch:
                    yield batch
                    continue  # there may be more after the new cursor
                await self._after_change(group, started)
        finally:
            self._streams.discard(group)
