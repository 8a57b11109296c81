"""SQL text building blocks: quoted identifiers, typed parameters, JSON objects."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ....errors import ValidationFailed
from ..catalog import Column

# Postgres functions take at most 100 arguments, so json_build_object holds 50 pairs; wider
# objects are built in chunks and concatenated as jsonb (key order does not matter: GraphQL
# execution orders the response by the selection, not by the JSON).
_MAX_PAIRS = 50


def ident(name: str) -> str:
    if not name:
        # The value of an empty enum (`_PLACEHOLDER`, e.g. update_columns of a role that may
        # update nothing) names no column or constraint.
        raise ValidationFailed("_PLACEHOLDER names no column or constraint")
    return '"' + name.replace('"', '""') + '"'


def literal_key(name: str) -> str:
    """A JSON key as a SQL string literal; keys are GraphQL names ([_A-Za-z][_0-9A-Za-z]*)."""
    return "'" + name.replace("'", "''") + "'"


def json_object(pairs: Sequence[tuple[str, str]]) -> str:
    if len(pairs) <= _MAX_PAIRS:
        return "json_build_object(" + ", ".join(f"{literal_key(k)}, {v}" for k, v in pairs) + ")"
    chunks = [pairs[i:i + _MAX_PAIRS] for i in range(0, len(pairs), _MAX_PAIRS)]
    joined = " || ".join(
        "jsonb_build_object(" + ", ".join(f"{literal_key(k)}, {v}" for k, v in chunk) + ")" for chunk in chunks
    )
    return f"({joined})::json"


def _array_literal(values: list[Any]) -> str:
    items = []
    for v in values:
        if v is None:
            items.append("NULL")
        elif isinstance(v, list):
            items.append(_array_literal(v))
        else:
            text = _scalar_text(v)
            items.append('"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"')
    return "{" + ",".join(items) + "}"


def _scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def as_text(value: Any, column: Column | None = None) -> str | None:
    """The text Postgres parses into the column's type, as Hasura passes values.

    jsonb takes any JSON value (a string becomes a JSON string); an array column takes a JSON
    list or a Postgres array literal; everything else is its text form.
    """
    if value is None:
        return None
    if column is not None and column.is_json:
        return json.dumps(value)
    if column is not None and column.is_array and isinstance(value, list):
        return _array_literal(value)
    return _scalar_text(value)


class Params:
    """The $n parameters of one statement; values always travel as text and are cast in SQL."""

    def __init__(self) -> None:
        self.values: list[Any] = []

    def add(self, value: Any) -> str:
        self.values.append(value)
        return f"${len(self.values)}"

    def typed(self, value: Any, column: Column) -> str:
        return f"({self.add(as_text(value, column))}::text)::{column.sql_type}"

    def compared(self, value: Any, column: Column) -> str:
        """`typed` for a value rows are compared with: cast once per statement, not once per row.

        A generic plan (what Postgres keeps for a prepared statement or a plpgsql function's statement
        after five runs) cannot fold `($n::text)::uuid` into a constant, so a filter that is not an index
        condition parses the text again for every row it tests (500 chat rows: about 40% of the chat
        aggregate's Postgres time). A scalar sub-select is an InitPlan: evaluated once, then a plain value,
        and still an index condition where the column is indexed."""
        return f"(SELECT {self.typed(value, column)})"

    def compared_array(self, values: list[Any], column: Column) -> str:
        """An `_in` list as the column's array type, cast once per statement (see `compared`). The outer cast
        (to the type it already has: no work) keeps `x = ANY(...)` the array form, not ANY (sub-select)."""
        array = f"{column.sql_type}[]"
        return f"(SELECT ({self.text_array(values)})::{array})::{array}"

    def text(self, value: Any) -> str:
        return f"{self.add(None if value is None else _scalar_text(value))}::text"

    def text_array(self, values: list[Any]) -> str:
        return f"{self.add([_scalar_text(v) for v in values])}::text[]"
