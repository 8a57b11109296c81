"""Root-field resolvers of the generated schema: compile the field, run ONE statement, return JSON.

The table root fields of a query document share one transaction (`context.QUERY_SESSION`, opened
by the first that needs it, so a document holds one pooled connection whatever its width);
mutations share the operation's single transaction (`execution.MUTATION_SESSION` in the context),
as Hasura runs a request's mutations in one transaction.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
from graphql import GraphQLResolveInfo

from ..db import Session
from ..db import errors as db_errors
from ..errors import NchatError, Unavailable
from ..resolvers.hasura.catalog import Catalog, Table
from ..resolvers.hasura.compiler import Compiler, RootField
from ..resolvers.hasura.mutations import UPDATE_OPERATORS, CompiledMutation, MutationCompiler
from ..resolvers.hasura.nested import NestedInsert, has_nested
from ..resolvers.hasura.selection import Reader, Selected
from .context import QUERY_SESSION, Context, SharedSession
from .live import LiveQuery

MUTATION_SESSION = "nchat.mutation_session"
STATEMENTS = "statements"
QUERY_KINDS = ("select", "by_pk", "aggregate")


def _catalog(info: GraphQLResolveInfo) -> Catalog:
    return info.schema.extensions["nchat_catalog"]


def _selected(info: GraphQLResolveInfo) -> tuple[Selected, RootField]:
    field = info.parent_type.fields[info.field_name]
    meta: RootField = field.extensions["nchat"]
    return Selected(str(info.path.key), field, tuple(info.field_nodes), meta), meta


def compile_query(info: GraphQLResolveInfo, args: dict[str, Any], max_rows: int) -> tuple[str, list[Any]]:
    """SQL and parameters of a query (or live-query) root field: select, by_pk or aggregate."""
    selected, meta = _selected(info)
    catalog = _catalog(info)
    table = catalog.tables[meta.table]
    reader = Reader.of(info)
    args = reader.in_document_order(selected, args)
    compiler = Compiler(catalog, reader, max_rows)
    if meta.kind == "select":
        sql = compiler.select(table, selected, args)
    elif meta.kind == "by_pk":
        sql = compiler.by_pk(table, selected, args)
    else:
        sql = compiler.aggregate(table, selected, args)
    return sql, compiler.params.values


def _count(ctx: Context, session: Session, before: int = 0) -> None:
    ctx.extra[STATEMENTS] = ctx.extra.get(STATEMENTS, 0) + session.statements - before


async def run_json(ctx: Context, sql: str, params: list[Any], session: Session | None = None) -> Any:
    """Run one compiled statement as the caller and decode its JSON (None for no row)."""
    shared: SharedSession | None = ctx.extra.get(QUERY_SESSION) if session is None else None
    if shared is not None:
        # The query document's one transaction (execution.run): root fields take turns on it.
        async with shared.use() as s:
            before = s.statements
            raw = await _guarded(s.fetchval(sql, *params))
            _count(ctx, s, before)
    elif session is None:
        async with ctx.session() as s:
            raw = await s.fetchval(sql, *params)
            _count(ctx, s)
    else:
        before = session.statements
        raw = await _guarded(session.fetchval(sql, *params))
        _count(ctx, session, before)
    # The pool may decode json itself (a type codec); text is decoded here.
    return json.loads(raw) if isinstance(raw, (str, bytes)) else raw


async def _guarded(awaitable: Any) -> Any:
    """Postgres errors inside a shared transaction, mapped as the session would map them."""
    try:
        return await awaitable
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
        mapped = db_errors.translate(exc)
        if mapped is None:
            raise
        raise mapped from exc


async def resolve_root(_source: Any, info: GraphQLResolveInfo, **args: Any) -> Any:
    ctx: Context = info.context
    _, meta = _selected(info)
    max_rows = ctx.runtime.settings.max_rows
    if meta.kind in QUERY_KINDS:
        sql, params = compile_query(info, args, max_rows)
        return await run_json(ctx, sql, params)
    session: Session | None = ctx.extra.get(MUTATION_SESSION)
    if session is None:
        # Called outside `execute` (e.g. by a test driving graphql-core directly): own transaction.
        async with ctx.session() as own:
            return await _mutate(ctx, info, meta, args, own)
    return await _mutate(ctx, info, meta, args, session)


async def _mutate(
    ctx: Context, info: GraphQLResolveInfo, meta: RootField, args: dict[str, Any], session: Session
) -> Any:
    selected, _ = _selected(info)
    catalog = _catalog(info)
    table = catalog.tables[meta.table]
    role_perms = catalog.permissions[ctx.claims.role][table.name]
    reader = Reader.of(info)

    def compiler() -> MutationCompiler:
        return MutationCompiler(catalog, reader, ctx.runtime.settings.max_rows, role_perms.select)

    pk = {c: args[c] for c in table.primary_key if c in args}
    if meta.kind in ("insert", "insert_one"):
        objects = args["objects"] if meta.kind == "insert" else [args["object"]]
        if has_nested(table, objects):
            return await _nested_insert(ctx, session, compiler(), selected, table, objects, args.get("on_conflict"),
                                        meta.kind == "insert_one")
    if meta.kind == "insert":
        compiled = compiler().insert(table, selected, args["objects"], args.get("on_conflict"), single=False)
        if not args["objects"]:
            return {p.key: 0 if p.nodes[0].name.value == "affected_rows" else [] for p in reader.child_fields(selected)}
    elif meta.kind == "insert_one":
        compiled = compiler().insert(table, selected, [args["object"]], args.get("on_conflict"), single=True)
    elif meta.kind == "update":
        compiled = compiler().update(table, selected, args["where"], None, _changes(args), False)
    elif meta.kind == "update_by_pk":
        compiled = compiler().update(table, selected, None, args["pk_columns"], _changes(args), True)
    elif meta.kind == "update_many":
        # One statement per update, in order, in the operation's transaction.
        results = []
        for update in args["updates"]:
            compiled = compiler().update(table, selected, update["where"], None, _changes(update), False)
            results.append(await _run_mutation(ctx, session, compiled))
        return results
    elif meta.kind == "delete":
        compiled = compiler().delete(table, selected, args["where"], None, False)
    elif meta.kind == "delete_by_pk":
        compiled = compiler().delete(table, selected, None, pk, True)
    else:  # pragma: no cover - subscription kinds never reach here
        raise NchatError(f"unsupported root field kind '{meta.kind}'")
    return await _run_mutation(ctx, session, compiled)


async def _nested_insert(
    ctx: Context, session: Session, compiler: MutationCompiler, selected: Selected, table: Table,
    objects: list[dict[str, Any]], on_conflict: dict[str, Any] | None, single: bool,
) -> Any:
    """One INSERT per relationship path (see resolvers/hasura/nested.py), then the response."""

    async def fetch_rows(sql: str, params: list[Any]) -> list[Any]:
        before = session.statements
        rows: list[Any] = await _guarded(session.fetch(sql, *params))
        _count(ctx, session, before)
        return rows

    async def execute(sql: str, params: list[Any]) -> int:
        return int((await _run_mutation(ctx, session, CompiledMutation(sql, params, ["n"])))["n"])

    nested = NestedInsert(compiler.catalog, compiler.reader, compiler.max_rows, compiler.returnable, fetch_rows,
                          execute)
    parts = compiler.reader.child_fields(selected)
    wants_rows = single or any(p.nodes[0].name.value != "affected_rows" for p in parts)
    keys = await nested.insert(table, objects, on_conflict, set(table.primary_key) if wants_rows else set())
    if not wants_rows:
        return dict.fromkeys((p.key for p in parts), nested.affected)
    if single and not keys:
        return None  # on_conflict do nothing skipped the row
    compiled = compiler.inserted(table, selected, keys, nested.affected, single)
    return await run_json(ctx, compiled.sql, compiled.params, session)


def _changes(args: dict[str, Any]) -> dict[str, Any]:
    return {op: args.get(op) for op in UPDATE_OPERATORS}


async def _run_mutation(ctx: Context, session: Session, compiled: CompiledMutation) -> Any:
    if compiled.affected_keys is None:
        return await run_json(ctx, compiled.sql, compiled.params, session)
    session.statements += 1
    status: str = await _guarded(session.raw.execute(compiled.sql, *compiled.params))
    _count(ctx, session, session.statements - 1)
    affected = int(status.rsplit(" ", 1)[-1])
    return dict.fromkeys(compiled.affected_keys, affected)


async def subscribe_root(_source: Any, info: GraphQLResolveInfo, **args: Any) -> AsyncIterator[Any]:
    """Subscription root fields hand a compiled `LiveQuery` to the live-query engine."""
    ctx: Context = info.context
    live = getattr(ctx.runtime, "live", None)
    if live is None:
        raise Unavailable("live queries are not available: no live-query engine is running (runtime.live)")
    selected, meta = _selected(info)
    query = LiveQuery.compile(ctx, info, args, selected, meta)
    async for payload in live.subscribe(ctx, info.field_name, query):
        yield payload
