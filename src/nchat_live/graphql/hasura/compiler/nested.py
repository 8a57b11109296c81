"""Nested inserts: object and array relationships inside `X_insert_input`, as Hasura runs them.

One INSERT per relationship path of the document, each carrying every row of that path (never a
statement per row), in dependency order inside the mutation's transaction: object-relationship
parents first, then the rows themselves, then array-relationship children with the parents' keys.

Why not one statement of data-modifying CTEs: all CTEs of a statement share one snapshot, so a
child row's row-level-security check cannot see a parent inserted by a sibling CTE. nchat's
insert policies look the parent up (a channel's first member needs the channel and its owner;
chat, reminders and recordings need a readable or managed stream), so a single statement would
refuse every nested insert a user makes. Separate statements let RLS decide exactly as it does for
the same rows written one after another.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ....errors import ValidationFailed
from ..catalog import Catalog, Relationship, Table
from .mutations import MutationCompiler
from .selection import Reader
from .sql import ident

# (sql, params) -> the returned rows (dicts of column text); (sql, params) -> affected row count
FetchRows = Callable[[str, list[Any]], Awaitable[list[Mapping[str, Any]]]]
Execute = Callable[[str, list[Any]], Awaitable[int]]
Row = dict[str, Any]


def has_nested(table: Table, objects: list[dict[str, Any]]) -> bool:
    return any(k in table.relationships and v is not None for o in objects for k, v in o.items())


@dataclass
class NestedInsert:
    catalog: Catalog
    reader: Reader
    max_rows: int
    returnable: frozenset[str]
    fetch_rows: FetchRows
    execute: Execute
    affected: int = 0  # every row inserted (or upserted) at every level, as Hasura counts them

    async def insert(
        self, table: Table, objects: list[dict[str, Any]], on_conflict: dict[str, Any] | None, need: set[str]
    ) -> list[Row]:
        """Insert `objects` with their nested rows; the rows' `need` columns (as text), in input order."""
        rels = table.relationships
        plain = [{k: v for k, v in o.items() if k not in rels} for o in objects]
        for name in _used(objects, rels, "object"):
            rel = rels[name]
            remote = self.catalog.tables[rel.remote_table]
            for conflict, owners in _by_conflict(objects, name):
                parents = await self.insert(remote, [objects[i][name]["data"] for i in owners], conflict,
                                            {r for _, r in rel.mapping})
                if len(parents) != len(owners):
                    raise ValidationFailed(f"on_conflict of the object relationship '{name}' skipped its row, "
                                           "which the row pointing at it needs")
                for i, parent in zip(owners, parents, strict=True):
                    for local, remote_col in rel.mapping:
                        _refuse_given(plain[i], local, name)
                        plain[i][local] = parent[remote_col]
        arrays = _used(objects, rels, "array")
        link = {local for name in arrays for local, _ in rels[name].mapping}
        rows = await self._insert_rows(table, plain, on_conflict, need | link)
        if arrays and len(rows) != len(objects):
            raise ValidationFailed("on_conflict skipped a row whose nested array relationship rows need it")
        for name in arrays:
            rel = rels[name]
            remote = self.catalog.tables[rel.remote_table]
            for conflict, owners in _by_conflict(objects, name):
                children = []
                for i in owners:
                    for child in objects[i][name]["data"]:
                        child = dict(child)
                        for local, remote_col in rel.mapping:
                            _refuse_given(child, remote_col, name)
                            child[remote_col] = rows[i][local]
                        children.append(child)
                if children:
                    await self.insert(remote, children, conflict, set())
        return rows

    async def _insert_rows(
        self, table: Table, objects: list[Row], on_conflict: dict[str, Any] | None, need: set[str]
    ) -> list[Row]:
        compiler = MutationCompiler(self.catalog, self.reader, self.max_rows, self.returnable)
        dml = compiler.insert_dml(table, objects, on_conflict)
        cols = [c for c in table.columns if c in need]
        if not cols:
            # No RETURNING: it would apply the table's SELECT policies to rows the role may write
            # without reading (see mutations.py).
            count = await self.execute(dml, compiler.params.values)
            self.affected += count
            return [{} for _ in range(count)]
        # Text, so the values go back into the next statement exactly as Postgres wrote them.
        returning = ", ".join(f"{ident(c)}::text AS {ident(c)}" for c in cols)
        rows = [dict(r) for r in await self.fetch_rows(f"{dml} RETURNING {returning}", compiler.params.values)]
        self.affected += len(rows)
        return rows


def _used(objects: list[dict[str, Any]], rels: dict[str, Relationship], kind: str) -> list[str]:
    return list(dict.fromkeys(k for o in objects for k, v in o.items()
                              if v is not None and k in rels and rels[k].kind == kind))


def _by_conflict(objects: list[dict[str, Any]], name: str) -> list[tuple[dict[str, Any] | None, list[int]]]:
    """The indexes of the objects that carry relationship `name`, grouped by their on_conflict."""
    groups: dict[str, tuple[dict[str, Any] | None, list[int]]] = {}
    for i, o in enumerate(objects):
        if o.get(name) is not None:
            conflict = o[name].get("on_conflict")
            groups.setdefault(json.dumps(conflict, sort_keys=True, default=str), (conflict, []))[1].append(i)
    return list(groups.values())


def _refuse_given(obj: Row, column: str, rel: str) -> None:
    if column in obj:
        raise ValidationFailed(f"column '{column}' is set by the relationship '{rel}' and cannot be given")
