"""Compiling a query root field and running one compiled statement as the caller.

Shared by the root-field resolvers (`resolvers.py`) and the live-query engine (`live_queries.py`).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from graphql import GraphQLResolveInfo

from ...db import Session
from ..context import SharedSession
from .catalog import Catalog
from .compiler.compiler import Compiler, RootField
from .compiler.selection import Reader, Selected

if TYPE_CHECKING:
    from ..context import Context

QUERY_KINDS = ("select", "by_pk", "aggregate")


def catalog_of(info: GraphQLResolveInfo[Any]) -> Catalog:
    return info.schema.extensions["nchat_catalog"]


def selected_of(info: GraphQLResolveInfo[Any]) -> tuple[Selected, RootField]:
    field = info.parent_type.fields[info.field_name]
    meta: RootField = field.extensions["nchat"]
    return Selected(str(info.path.key), field, tuple(info.field_nodes), meta), meta


def compile_query(ctx: Context, info: GraphQLResolveInfo[Any], args: dict[str, Any]) -> tuple[str, list[Any]]:
    """SQL and parameters of a query (or live-query) root field: select, by_pk or aggregate."""
    selected, meta = selected_of(info)
    catalog = catalog_of(info)
    table = catalog.tables[meta.table]
    reader = Reader.of(info, ctx.raw_variables)
    args = reader.in_document_order(selected, args)
    compiler = Compiler(catalog, reader, ctx.runtime.settings.max_rows)
    return compiler.root(meta.kind, table, selected, args), compiler.params.values


def count_statements(ctx: Context, session: Session, before: int = 0) -> None:
    ctx.statements += session.statements - before


async def run_json(ctx: Context, sql: str, params: list[Any], session: Session | None = None) -> Any:
    """Run one compiled statement as the caller and decode its JSON (None for no row)."""
    shared: SharedSession | None = ctx.query_session if session is None else None
    if shared is not None:
        # The query document's one transaction (execution.run): root fields take turns on it.
        async with shared.use() as s:
            before = s.statements
            raw = await s.fetchval(sql, *params)
            count_statements(ctx, s, before)
    elif session is None:
        async with ctx.session() as s:
            raw = await s.fetchval(sql, *params)
            count_statements(ctx, s)
    else:
        before = session.statements
        raw = await session.fetchval(sql, *params)
        count_statements(ctx, session, before)
    # The pool may decode json itself (a type codec); text is decoded here.
    return json.loads(raw) if isinstance(raw, (str, bytes)) else raw
