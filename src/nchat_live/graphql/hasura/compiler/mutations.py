"""Insert, update and delete root fields compiled to one data-modifying statement each.

With `returning` (or a single-row result) selected, the DML runs in a CTE whose rows the response
is built from; without it the plain statement runs and its command tag gives `affected_rows`
(RETURNING would also apply the table's SELECT policies to the written rows, which a role that may
insert without reading, such as an anonymous viewer, does not pass).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ....errors import ValidationFailed
from ..catalog import Catalog, Table
from .compiler import Compiler
from .selection import Reader, Selected
from .sql import ident, json_object

# The update operators, in Hasura's argument order; the jsonb ones exist for jsonb columns only.
UPDATE_OPERATORS = ("_append", "_delete_at_path", "_delete_elem", "_delete_key", "_inc", "_prepend", "_set")
JSONB_OPERATORS = ("_append", "_delete_at_path", "_delete_elem", "_delete_key", "_prepend")


@dataclass
class CompiledMutation:
    sql: str
    params: list[Any]
    # When set, the statement is plain DML and the response is {key: affected rows} for these keys.
    affected_keys: list[str] | None = None


class MutationCompiler(Compiler):
    def __init__(self, catalog: Catalog, reader: Reader, max_rows: int, returnable: frozenset[str]) -> None:
        super().__init__(catalog, reader, max_rows)
        # Columns the role may read back: what RETURNING may name.
        self.returnable = returnable

    def _finish(self, table: Table, selected: Selected, dml: str, single: bool) -> CompiledMutation:
        parts = self.reader.child_fields(selected)
        if not single and all(p.nodes[0].name.value == "affected_rows" for p in parts):
            return CompiledMutation(dml, self.params.values, [p.key for p in parts])
        returning = ", ".join(ident(c) for c in table.columns if c in self.returnable)
        body = self._response(table, parts, single, "(SELECT count(*) FROM _m)", ordered=False)
        return CompiledMutation(f"WITH _m AS ({dml} RETURNING {returning}) SELECT {body}", self.params.values)

    def _response(self, table: Table, parts: list[Selected], single: bool, affected: str, ordered: bool) -> str:
        """The mutation's JSON from the rows of `_m` (with `_ord`, their input order, when `ordered`)."""
        r = self.alias("_r")
        order = f" ORDER BY {r}._ord" if ordered else ""
        if single:
            return f"(SELECT {self.object_json(table, r, parts)} FROM _m {r}{order} LIMIT 1)"
        pairs = []
        for p in parts:
            if p.nodes[0].name.value == "affected_rows":
                pairs.append((p.key, affected))
            else:
                obj = self.object_json(table, r, self.reader.child_fields(p))
                pairs.append((p.key, f"(SELECT coalesce(json_agg({obj}{order}), '[]') FROM _m {r})"))
        return json_object(pairs)

    def inserted(
        self, table: Table, selected: Selected, keys: list[dict[str, str]], affected: int, single: bool
    ) -> CompiledMutation:
        """The response of a nested insert: its root rows read back by primary key, in input order.

        A separate statement after the inserts, so the rows' nested selections see the rows the
        later inserts added (array relationships).
        """
        pk = table.primary_key
        if not pk:
            raise ValidationFailed(f"table '{table.name}' has no primary key to return nested inserts by")
        t = self.alias()
        arrays = ", ".join(f"{self.params.add([k[c] for k in keys])}::text[]" for c in pk)
        names = ", ".join(f"_k{i}" for i in range(len(pk)))
        match = " AND ".join(f"{t}.{ident(c)} = (_u._k{i})::{table.columns[c].sql_type}" for i, c in enumerate(pk))
        cols = ", ".join(f"{t}.{ident(c)}" for c in table.columns if c in self.returnable)
        source = (f"SELECT {cols}, _u._ord FROM {ident(table.name)} {t} "
                  f"JOIN unnest({arrays}) WITH ORDINALITY AS _u({names}, _ord) ON {match}")
        parts = self.reader.child_fields(selected)
        # The count is a literal: a parameter the text does not use would be one too many for Postgres.
        body = self._response(table, parts, single, f"{int(affected)}", ordered=True)
        return CompiledMutation(f"WITH _m AS ({source}) SELECT {body}", self.params.values)

    def insert(
        self, table: Table, selected: Selected, objects: list[dict[str, Any]], on_conflict: dict[str, Any] | None,
        single: bool,
    ) -> CompiledMutation:
        return self._finish(table, selected, self.insert_dml(table, objects, on_conflict), single)

    def insert_dml(self, table: Table, objects: list[dict[str, Any]], on_conflict: dict[str, Any] | None) -> str:
        wanted = {c for obj in objects for c in obj}
        cols = [c for c in table.columns if c in wanted]
        a = self.alias()
        if cols:
            rows = ", ".join(
                "(" + ", ".join(self.params.typed(obj[c], table.columns[c]) if c in obj else "DEFAULT" for c in cols)
                + ")" for obj in objects
            )
            dml = f"INSERT INTO {ident(table.name)} AS {a} ({', '.join(ident(c) for c in cols)}) VALUES {rows}"
        elif len(objects) == 1:
            dml = f"INSERT INTO {ident(table.name)} AS {a} DEFAULT VALUES"
        else:
            raise ValidationFailed("each object of a multi-row insert needs at least one column")
        if on_conflict:
            constraint = on_conflict["constraint"]
            # A column named twice would be "multiple assignments to the same column" in SQL.
            update = list(dict.fromkeys(on_conflict.get("update_columns") or []))
            if update:
                sets = ", ".join(f"{ident(c)} = EXCLUDED.{ident(c)}" for c in update)
                dml += f" ON CONFLICT ON CONSTRAINT {ident(constraint)} DO UPDATE SET {sets}"
                if on_conflict.get("where"):
                    dml += f" WHERE {self.bool_exp(table, a, on_conflict['where'])}"
            else:
                dml += f" ON CONFLICT ON CONSTRAINT {ident(constraint)} DO NOTHING"
        return dml

    def update(
        self, table: Table, selected: Selected, where: dict[str, Any] | None, pk: dict[str, Any] | None,
        changes: dict[str, dict[str, Any] | None], single: bool,
    ) -> CompiledMutation:
        """`changes`: operator (`_set`, `_inc`, `_append`, ...) -> {column: value}, one SET list."""
        a = self.alias()
        sets: list[str] = []
        seen: dict[str, str] = {}
        for op in UPDATE_OPERATORS:
            for c, v in (changes.get(op) or {}).items():
                if c in seen:
                    raise ValidationFailed(f"column '{c}' is in both {seen[c]} and {op}")
                seen[c] = op
                col, current = table.columns[c], f"{a}.{ident(c)}"
                if op == "_set":
                    sets.append(f"{ident(c)} = {self.params.typed(v, col)}")
                elif v is None:
                    raise ValidationFailed(f"unexpected null value for column '{c}' in {op}")
                elif op == "_inc":
                    sets.append(f"{ident(c)} = {current} + {self.params.typed(v, col)}")
                elif op == "_append":
                    sets.append(f"{ident(c)} = {current} || {self.params.typed(v, col)}")
                elif op == "_prepend":
                    sets.append(f"{ident(c)} = {self.params.typed(v, col)} || {current}")
                elif op == "_delete_key":
                    sets.append(f"{ident(c)} = {current} - {self.params.text(v)}")
                elif op == "_delete_elem":
                    sets.append(f"{ident(c)} = {current} - ({self.params.text(v)})::integer")
                else:  # _delete_at_path
                    sets.append(f"{ident(c)} = {current} #- {self.params.text_array(v)}")
        if not sets:
            raise ValidationFailed(f"at least one of {', '.join(UPDATE_OPERATORS)} is expected")
        cond = self.pk_match(table, a, pk) if pk is not None else self.bool_exp(table, a, where or {})
        dml = f"UPDATE {ident(table.name)} AS {a} SET {', '.join(sets)} WHERE {cond}"
        return self._finish(table, selected, dml, single)

    def delete(
        self, table: Table, selected: Selected, where: dict[str, Any] | None, pk: dict[str, Any] | None, single: bool
    ) -> CompiledMutation:
        a = self.alias()
        cond = self.pk_match(table, a, pk) if pk is not None else self.bool_exp(table, a, where or {})
        return self._finish(table, selected, f"DELETE FROM {ident(table.name)} AS {a} WHERE {cond}", single)
