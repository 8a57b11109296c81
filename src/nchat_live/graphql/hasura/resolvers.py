"""Root-field resolvers of the generated schema: compile the field, run ONE statement, return JSON.

The table root fields of a query document share one transaction (`Context.query_session`, opened
by the first that needs it, so a document holds one pooled connection whatever its width);
mutations share the operation's single transaction (`Context.mutation_session`),
as Hasura runs a request's mutations in one transaction.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from graphql import GraphQLResolveInfo

from ...db import Session
from ...errors import NchatError
from ..context import Context
from .catalog import Table
from .compiler.compiler import RootField
from .compiler.mutations import UPDATE_OPERATORS, CompiledMutation, MutationCompiler
from .compiler.nested import NestedInsert, has_nested
from .compiler.selection import Reader, Selected
from .live_queries import LiveQuery
from .statements import QUERY_KINDS, catalog_of, compile_query, count_statements, run_json, selected_of


async def resolve_root(_source: Any, info: GraphQLResolveInfo[Any], **args: Any) -> Any:
    ctx: Context = info.context
    _, meta = selected_of(info)
    if meta.kind in QUERY_KINDS:
        sql, params = compile_query(ctx, info, args)
        return await run_json(ctx, sql, params)
    session = ctx.mutation_session
    if session is None:
        # Called outside `execute` (e.g. by a test driving graphql-core directly): own transaction.
        async with ctx.session() as own:
            return await _mutate(ctx, info, meta, args, own)
    return await _mutate(ctx, info, meta, args, session)


async def _mutate(
    ctx: Context, info: GraphQLResolveInfo[Any], meta: RootField, args: dict[str, Any], session: Session
) -> Any:
    selected, _ = selected_of(info)
    catalog = catalog_of(info)
    table = catalog.tables[meta.table]
    role_perms = catalog.permissions[ctx.claims.role][table.name]
    reader = Reader.of(info, ctx.raw_variables)

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
        rows: list[Any] = await session.fetch(sql, *params)
        count_statements(ctx, session, before)
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
    before = session.statements
    status = await session.execute(compiled.sql, *compiled.params)
    count_statements(ctx, session, before)
    affected = int(status.rsplit(" ", 1)[-1])
    return dict.fromkeys(compiled.affected_keys, affected)


async def subscribe_root(_source: Any, info: GraphQLResolveInfo[Any], **args: Any) -> AsyncIterator[Any]:
    """Subscription root fields hand a compiled `LiveQuery` to the live-query engine."""
    ctx: Context = info.context
    live = ctx.runtime.live
    selected, meta = selected_of(info)
    query = LiveQuery.compile(ctx, info, args, selected, meta)
    async for payload in live.subscribe(ctx, info.field_name, query):
        yield payload
