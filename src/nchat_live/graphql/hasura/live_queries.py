"""What the live-query engine (runtime.live) receives for a Hasura-style subscription root field.

A subscription `X`, `X_by_pk`, `X_aggregate` is a live query: the engine re-runs `LiveQuery.run()`
(one SQL statement, under the subscriber's claims) when the data may have changed, and yields the
result when it differs from the last one sent. `X_stream` is a cursor stream: each `run()` returns
the next batch after the cursor (possibly empty) and advances the cursor; the engine yields
non-empty batches.

Grouping: subscribers whose `LiveQuery.group_key` is equal run the same statement with the same
parameters under claims of the same visibility, so one execution may serve them all (the
statement is compiled per subscriber; equal keys guarantee equal results). Streams never share a
key (each has its own cursor).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from graphql import GraphQLResolveInfo

from ..db import Session
from ..resolvers.hasura.compiler import Compiler, RootField
from ..resolvers.hasura.selection import Reader, Selected
from ..resolvers.hasura.sql import as_text

if TYPE_CHECKING:
    from .context import Context


class LiveQueryEngine(Protocol):
    """Provided on `runtime.live` by the realtime subsystem."""

    def subscribe(self, ctx: Context, field_name: str, query: LiveQuery) -> AsyncIterator[Any]:
        """Yield the field's value each time it should be sent to this subscriber."""
        ...


@dataclass
class LiveQuery:
    ctx: Context
    field_name: str
    table: str
    kind: Literal["live", "stream"]
    sql: str
    params: list[Any]
    # stream only: how to recompile for the current cursor value
    _info: GraphQLResolveInfo | None = None
    _args: dict[str, Any] = field(default_factory=dict)
    _selected: Selected | None = None
    cursor: Any = None

    @classmethod
    def compile(
        cls, ctx: Context, info: GraphQLResolveInfo, args: dict[str, Any], selected: Selected, meta: RootField
    ) -> LiveQuery:
        from .hasura_resolvers import compile_query

        if meta.kind == "stream":
            query = cls(ctx, info.field_name, meta.table, "stream", "", [], info, args, selected)
            query._recompile()
            return query
        sql, params = compile_query(info, args, ctx.runtime.settings.max_rows)
        return cls(ctx, info.field_name, meta.table, "live", sql, params)

    @property
    def group_key(self) -> tuple[Any, ...]:
        if self.kind == "stream":
            return ("stream", id(self))
        return (self.sql, tuple(self.params), self.ctx.claims.visibility_key())

    def _recompile(self) -> None:
        assert self._info is not None and self._selected is not None
        catalog = self._info.schema.extensions["nchat_catalog"]
        compiler = Compiler(catalog, Reader.of(self._info), self.ctx.runtime.settings.max_rows)
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
        from .hasura_resolvers import run_json

        if self.kind == "stream" and self.cursor is None:
            await self._pin_initial(session)
        result = await run_json(self.ctx, self.sql, self.params, session)
        if self.kind == "stream" and result:
            self.cursor = result[-1].get("__cursor")
            self._recompile()
        return result
