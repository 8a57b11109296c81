"""Compiles a Hasura-style root field (with its whole nested selection) into ONE SQL statement.

The statement returns the field's JSON: objects from json_build_object, lists from json_agg over
an ordered subquery, relationships as correlated subqueries. Values only ever travel as `$n`
parameters (text, cast in SQL so Postgres parses them as Hasura lets it). Row visibility is left
to row-level security: the statement runs in the caller's session.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from ....errors import ValidationFailed
from ..catalog import Catalog, Column, Relationship, Table
from .selection import Reader, Selected
from .sql import Params, as_text, ident, json_object

RootKind = Literal[
    "select", "by_pk", "aggregate", "stream",
    "insert", "insert_one", "update", "update_by_pk", "update_many", "delete", "delete_by_pk",
]


@dataclass(frozen=True)
class ColumnField:
    column: Column


@dataclass(frozen=True)
class ComputedField:
    """A field computed by SQL from the row, e.g. `nchat.stream_key({alias}.id)`."""

    template: str


@dataclass(frozen=True)
class RelationshipField:
    rel: Relationship
    aggregate: bool = False


@dataclass(frozen=True)
class RootField:
    kind: RootKind
    table: str


COMPARISONS = {"_eq": "=", "_neq": "<>", "_gt": ">", "_gte": ">=", "_lt": "<", "_lte": "<="}
TEXT_COMPARISONS = {
    "_like": "LIKE", "_nlike": "NOT LIKE", "_ilike": "ILIKE", "_nilike": "NOT ILIKE",
    "_similar": "SIMILAR TO", "_nsimilar": "NOT SIMILAR TO",
    "_regex": "~", "_nregex": "!~", "_iregex": "~*", "_niregex": "!~*",
}
CONTAINMENT = {"_contains": "@>", "_contained_in": "<@"}
JSON_KEYS = {"_has_keys_any": "?|", "_has_keys_all": "?&"}
NUMERIC_AGGREGATES = ("sum", "avg", "stddev", "stddev_pop", "stddev_samp", "var_pop", "var_samp", "variance")
ORDER_AGGREGATES = ("max", "min")
BOOL_AGGREGATES = ("bool_and", "bool_or")
# What count() compares as, in X_aggregate_bool_exp predicates (Int_comparison_exp).
AGGREGATE_COUNT = Column("count", "integer", "int4", "N", False, False)

Join = Callable[[str], str]


def join_sql(rel: Relationship, local_alias: str, remote_alias: str) -> str:
    return " AND ".join(f"{remote_alias}.{ident(r)} = {local_alias}.{ident(lc)}" for lc, r in rel.mapping)


class Compiler:
    """One instance per statement: holds its parameters and alias counter."""

    def __init__(self, catalog: Catalog, reader: Reader, max_rows: int) -> None:
        self.catalog = catalog
        self.reader = reader
        self.max_rows = max_rows
        self.params = Params()
        self._aliases = 0

    def alias(self, prefix: str = "_t") -> str:
        self._aliases += 1
        return f"{prefix}{self._aliases}"

    # -- root fields -----------------------------------------------------------------------------

    def root(self, kind: str, table: Table, selected: Selected, args: dict[str, Any]) -> str:
        """The statement of a query root field of `kind` (select, by_pk or aggregate)."""
        if kind == "select":
            return self.select(table, selected, args)
        if kind == "by_pk":
            return self.by_pk(table, selected, args)
        return self.aggregate(table, selected, args)

    def select(self, table: Table, selected: Selected, args: dict[str, Any]) -> str:
        return "SELECT " + self.array_json(table, selected, args, None, root=True)

    def aggregate(self, table: Table, selected: Selected, args: dict[str, Any]) -> str:
        return "SELECT " + self.aggregate_json(table, selected, args, None, root=True)

    def by_pk(self, table: Table, selected: Selected, args: dict[str, Any]) -> str:
        a = self.alias()
        obj = self.object_json(table, a, self.reader.child_fields(selected))
        return f"SELECT {obj} FROM {ident(table.name)} {a} WHERE {self.pk_match(table, a, args)} LIMIT 1"

    def stream(self, table: Table, selected: Selected, args: dict[str, Any], cursor_value: Any) -> tuple[str, str]:
        """A batch after the cursor; each row carries its cursor value under `__cursor`."""
        cursors = [c for c in args.get("cursor") or [] if c]
        if len(cursors) != 1 or len(cursors[0].get("initial_value") or {}) != 1:
            raise ValidationFailed("cursor must name exactly one column in initial_value")
        (column, initial), = cursors[0]["initial_value"].items()
        descending = cursors[0].get("ordering") == "DESC"
        value = initial if cursor_value is None else cursor_value
        batch = args.get("batch_size")
        if batch is None or batch < 0:
            raise ValidationFailed(f"batch_size must be a non-negative integer, got {batch}")
        a = self.alias()
        col = f"{a}.{ident(column)}"
        conds = [f"{col} {'<' if descending else '>'} {self.params.compared(value, table.columns[column])}"]
        if args.get("where"):
            conds.append(self.bool_exp(table, a, args["where"]))
        pairs = self._pairs(table, a, self.reader.child_fields(selected))
        pairs.append(("__cursor", col))
        s = self.alias("_s")
        limit = self.params.add(min(batch, self.max_rows))
        sql = (
            f"SELECT coalesce(json_agg({s}.j), '[]') FROM (SELECT {json_object(pairs)} AS j "
            f"FROM {ident(table.name)} {a} WHERE {' AND '.join(conds)} "
            f"ORDER BY {col} {'DESC' if descending else 'ASC'} LIMIT {limit}) {s}"
        )
        return sql, column

    # -- selections ------------------------------------------------------------------------------

    def pk_match(self, table: Table, alias: str, values: dict[str, Any]) -> str:
        return " AND ".join(
            f"{alias}.{ident(c)} = {self.params.compared(values[c], table.columns[c])}" for c in table.primary_key
        )

    def _pairs(self, table: Table, alias: str, fields: list[Selected]) -> list[tuple[str, str]]:
        pairs: list[tuple[str, str]] = []
        for s in fields:
            meta = s.meta
            if isinstance(meta, ColumnField):
                pairs.append((s.key, f"{alias}.{ident(meta.column.name)}"))
            elif isinstance(meta, ComputedField):
                pairs.append((s.key, meta.template.format(alias=alias)))
            elif isinstance(meta, RelationshipField):
                pairs.append((s.key, self._relationship(meta, alias, s)))
        return pairs

    def object_json(self, table: Table, alias: str, fields: list[Selected]) -> str:
        return json_object(self._pairs(table, alias, fields))

    def _relationship(self, meta: RelationshipField, alias: str, selected: Selected) -> str:
        rel = meta.rel
        remote = self.catalog.tables[rel.remote_table]

        def join(remote_alias: str) -> str:
            return join_sql(rel, alias, remote_alias)

        if rel.kind == "object":
            a = self.alias()
            obj = self.object_json(remote, a, self.reader.child_fields(selected))
            return f"(SELECT {obj} FROM {ident(remote.name)} {a} WHERE {join(a)} LIMIT 1)"
        args = self.reader.args(selected)
        if meta.aggregate:
            return self.aggregate_json(remote, selected, args, join, root=False)
        return self.array_json(remote, selected, args, join, root=False)

    def rows_source(self, table: Table, args: dict[str, Any], join: Join | None, root: bool) -> tuple[str, str, str]:
        """(alias, DISTINCT ON prefix, FROM ... WHERE ... ORDER BY ... LIMIT ... OFFSET ...)."""
        a = self.alias()
        conds = [join(a)] if join else []
        if args.get("where"):
            conds.append(self.bool_exp(table, a, args["where"]))
        order = self.order_terms(table, a, args.get("order_by"))
        prefix = ""
        distinct = args.get("distinct_on")
        if distinct:
            exprs = [f"{a}.{ident(c)}" for c in distinct]
            if order:
                if [e for e, _ in order[: len(exprs)]] != exprs:
                    raise ValidationFailed('"distinct_on" columns must match initial "order_by" columns')
            else:
                order = [(e, "ASC") for e in exprs]
            prefix = f"DISTINCT ON ({', '.join(exprs)}) "
        tail = f"FROM {ident(table.name)} {a}"
        if conds:
            tail += " WHERE " + " AND ".join(conds)
        if order:
            tail += " ORDER BY " + ", ".join(f"{e} {d}" for e, d in order)
        limit, offset = args.get("limit"), args.get("offset")
        for name, value in (("limit", limit), ("offset", offset)):
            if value is not None and value < 0:
                raise ValidationFailed(f"\"{name}\" must be a non-negative integer, got {value}")
        if root:
            # The row cap of the deployment: a larger or missing limit is clamped, as Hasura's
            # per-role row limit does (array_json asks for it on nested lists as well).
            limit = self.max_rows if limit is None else min(limit, self.max_rows)
        if limit is not None:
            tail += f" LIMIT {self.params.add(limit)}"
        if offset:
            tail += f" OFFSET {self.params.add(offset)}"
        return a, prefix, tail

    def array_json(self, table: Table, selected: Selected, args: dict[str, Any], join: Join | None, root: bool) -> str:
        # Every list of rows, nested array relationships too, gets the row cap as its default limit
        # (and a larger limit is clamped): nesting cannot multiply unbounded lists.
        a, prefix, tail = self.rows_source(table, args, join, True)
        obj = self.object_json(table, a, self.reader.child_fields(selected))
        s = self.alias("_s")
        return f"(SELECT coalesce(json_agg({s}.j), '[]') FROM (SELECT {prefix}{obj} AS j {tail}) {s})"

    def aggregate_json(
        self, table: Table, selected: Selected, args: dict[str, Any], join: Join | None, root: bool
    ) -> str:
        # As in Hasura, the row cap bounds the rows an answer carries (`nodes`), not the rows an aggregate
        # reads: `count` is every matching row unless the caller's own limit, offset or distinct_on narrow
        # them. Unnarrowed, the aggregates read the table directly (ORDER BY cannot change them); narrowed,
        # they read the narrowed rows from a sub-select.
        parts = self.reader.child_fields(selected)
        if all(part.nodes[0].name.value == "nodes" for part in parts):
            return f"(SELECT {json_object([(p.key, self.array_json(table, p, args, join, root)) for p in parts])})"
        narrowed = bool(args.get("distinct_on") or args.get("offset")) or args.get("limit") is not None
        a, prefix, tail = self.rows_source(table, args if narrowed else args | {"order_by": None}, join, False)
        s = self.alias("_s") if narrowed else a
        inner: list[str] = []

        def column_ref(name: str) -> str:
            if not narrowed:
                return f"{a}.{ident(name)}"
            inner.append(f"{a}.{ident(name)} AS _c{len(inner)}")
            return f"{s}._c{len(inner) - 1}"

        outer: list[tuple[str, str]] = []
        for part in parts:
            if part.nodes[0].name.value == "nodes":
                outer.append((part.key, self.array_json(table, part, args, join, root)))
                continue
            pairs: list[tuple[str, str]] = []
            for fn in self.reader.child_fields(part):
                name = fn.nodes[0].name.value
                if name == "count":
                    cargs = self.reader.args(fn)
                    cols = [column_ref(c) for c in cargs.get("columns") or []]
                    distinct = "DISTINCT " if cargs.get("distinct") else ""
                    target = "*" if not cols else cols[0] if len(cols) == 1 else f"({', '.join(cols)})"
                    pairs.append((fn.key, f"count({distinct if cols else ''}{target})"))
                else:
                    refs = [(c.key, column_ref(c.nodes[0].name.value)) for c in self.reader.child_fields(fn)]
                    pairs.append((fn.key, json_object([(k, f"{name}({ref})") for k, ref in refs])))
            outer.append((part.key, json_object(pairs)))
        if not narrowed:
            return f"(SELECT {json_object(outer)} {tail})"
        return f"(SELECT {json_object(outer)} FROM (SELECT {prefix}{', '.join(inner) or '1'} {tail}) {s})"

    # -- where -----------------------------------------------------------------------------------

    def bool_exp(self, table: Table, alias: str, exp: dict[str, Any]) -> str:
        parts: list[str] = []
        for key, value in exp.items():
            if value is None:
                continue
            if key == "_and":
                parts.append("(" + (" AND ".join(self.bool_exp(table, alias, e) for e in value if e) or "true") + ")")
            elif key == "_or":
                parts.append("(" + (" OR ".join(self.bool_exp(table, alias, e) for e in value if e is not None)
                                    or "false") + ")")
            elif key == "_not":
                parts.append(f"NOT ({self.bool_exp(table, alias, value)})")
            elif key in table.columns:
                parts.append(self.comparison(table.columns[key], f"{alias}.{ident(key)}", value))
            elif key in table.relationships:
                rel = table.relationships[key]
                remote = self.catalog.tables[rel.remote_table]
                a = self.alias()
                parts.append(f"EXISTS (SELECT 1 FROM {ident(remote.name)} {a} WHERE {join_sql(rel, alias, a)} "
                             f"AND {self.bool_exp(remote, a, value)})")
            elif key.endswith("_aggregate") and key.removesuffix("_aggregate") in table.relationships:
                parts.append(self._aggregate_filter(table.relationships[key.removesuffix("_aggregate")], alias,
                                                    value))
            else:  # pragma: no cover - the schema only offers the keys above
                raise ValidationFailed(f"field '{key}' not found in type: '{table.name}_bool_exp'")
        return " AND ".join(parts) or "true"

    def _aggregate_filter(self, rel: Relationship, alias: str, exp: dict[str, Any]) -> str:
        """`{count: {predicate, filter, arguments, distinct}}` (and bool_and/bool_or): a correlated aggregate."""
        remote = self.catalog.tables[rel.remote_table]
        parts: list[str] = []
        for fn, spec in exp.items():
            if spec is None:
                continue
            a = self.alias()
            conds = [join_sql(rel, alias, a)]
            if spec.get("filter"):
                conds.append(self.bool_exp(remote, a, spec["filter"]))
            distinct = "DISTINCT " if spec.get("distinct") else ""
            if fn == "count":
                cols = [f"{a}.{ident(c)}" for c in spec.get("arguments") or []]
                target = "*" if not cols else cols[0] if len(cols) == 1 else f"({', '.join(cols)})"
                value, column = f"count({distinct if cols else ''}{target})", AGGREGATE_COUNT
            else:
                column = remote.columns[spec["arguments"]]
                value = f"{fn}({distinct}{a}.{ident(column.name)})"
            source = f"(SELECT {value} FROM {ident(remote.name)} {a} WHERE {' AND '.join(conds)})"
            parts.append(self.comparison(column, source, spec["predicate"]))
        return " AND ".join(parts) or "true"

    def comparison(self, column: Column, expr: str, ops: dict[str, Any]) -> str:
        parts: list[str] = []
        for op, value in ops.items():
            if value is None and op != "_is_null":
                raise ValidationFailed(f"unexpected null value for type '{column.scalar}' in '{op}'")
            if op in COMPARISONS:
                parts.append(f"{expr} {COMPARISONS[op]} {self.params.compared(value, column)}")
            elif op in TEXT_COMPARISONS:
                parts.append(f"{expr} {TEXT_COMPARISONS[op]} {self.params.text(value)}")
            elif op in ("_in", "_nin"):
                any_of = f"{expr} = ANY({self.params.compared_array([_text(v, column) for v in value], column)})"
                parts.append(any_of if op == "_in" else f"NOT ({any_of})")
            elif op == "_is_null":
                if value is not None:
                    parts.append(f"{expr} IS {'' if value else 'NOT '}NULL")
            elif op in CONTAINMENT:
                parts.append(f"{expr} {CONTAINMENT[op]} {self.params.compared(value, column)}")
            elif op == "_has_key":
                parts.append(f"{expr} ? {self.params.text(value)}")
            elif op in JSON_KEYS:
                parts.append(f"{expr} {JSON_KEYS[op]} {self.params.text_array(value)}")
            else:  # pragma: no cover - the schema only offers the operators above
                raise ValidationFailed(f"operator '{op}' is not supported")
        return " AND ".join(parts) or "true"

    # -- order -----------------------------------------------------------------------------------

    def order_terms(self, table: Table, alias: str, order_by: Any) -> list[tuple[str, str]]:
        items = order_by if isinstance(order_by, list) else [order_by] if order_by else []
        terms: list[tuple[str, str]] = []
        for item in items:
            for key, value in (item or {}).items():
                if value is None:
                    continue
                if key in table.columns:
                    terms.append((f"{alias}.{ident(key)}", value))
                elif key in table.relationships:
                    rel = table.relationships[key]
                    remote = self.catalog.tables[rel.remote_table]
                    a = self.alias()
                    where = join_sql(rel, alias, a)
                    for expr, direction in self.order_terms(remote, a, value):
                        terms.append((f"(SELECT {expr} FROM {ident(remote.name)} {a} WHERE {where} LIMIT 1)",
                                      direction))
                elif key.endswith("_aggregate") and key.removesuffix("_aggregate") in table.relationships:
                    rel = table.relationships[key.removesuffix("_aggregate")]
                    remote = self.catalog.tables[rel.remote_table]
                    a = self.alias()
                    source = f"FROM {ident(remote.name)} {a} WHERE {join_sql(rel, alias, a)}"
                    for fn, spec in value.items():
                        if spec is None:
                            continue
                        if fn == "count":
                            terms.append((f"(SELECT count(*) {source})", spec))
                            continue
                        for col, direction in spec.items():
                            if direction is not None:
                                terms.append((f"(SELECT {fn}({a}.{ident(col)}) {source})", direction))
        return terms


def _text(value: Any, column: Column) -> str:
    text = as_text(value, column)
    if text is None:
        raise ValidationFailed(f"unexpected null value for type '{column.scalar}' in '_in'")
    return text
