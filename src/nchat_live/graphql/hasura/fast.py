"""The fast path of table-API query documents: one statement, Postgres's JSON text sent as it is.

A query operation whose root fields are all table-API queries (`X`, `X_by_pk`, `X_aggregate`)
compiles into ONE statement that returns the whole `data` object as JSON text; the response is
`{"data":` + that text + `}`, never decoded nor re-completed in Python (as Hasura streams
Postgres's JSON). Anything else (domain fields, `__typename`, introspection, objects too wide for
one `json_build_object`) takes the normal path, and so does any error: the normal path then
answers it, so errors keep one shape whichever path a document took.

Plans are cached per (schema, document, operation, role, limits and the variables that shape the
SQL). String-valued scalar variables (ids, text, timestamps) travel as `$n` parameters of the
cached statement: they are compiled as markers, and the plan maps each marker's parameter back to
the variable, so the SQL text is the same for every value and its per-connection function
(`Database.read_text`: one round trip, a plan Postgres keeps) is reused. Other variables (numbers,
booleans, objects, lists) may change the SQL's shape, so their values are part of the key.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, cast

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    GraphQLBoolean,
    GraphQLError,
    GraphQLFloat,
    GraphQLInt,
    GraphQLScalarType,
    GraphQLSchema,
    OperationDefinitionNode,
    OperationType,
    get_named_type,
    type_from_ast,
)
from graphql.execution.values import VariableValues, get_variable_values

from ...errors import NchatError
from ..context import Context
from .catalog import Catalog
from .compiler.compiler import Compiler, RootField
from .compiler.selection import Reader
from .compiler.sql import literal_key
from .statements import QUERY_KINDS

_CACHE_SIZE = 512
_MARK = "\ue000nchatvar:"
# Failures the normal path would only repeat: they are answered at once.
_FINAL = ("timeout", "too-many-requests")
_SHAPING_SCALARS = (GraphQLBoolean, GraphQLInt, GraphQLFloat)


@dataclass(frozen=True)
class Slot:
    """A parameter that takes the value of the variable `name` (a string) at each run."""

    name: str


@dataclass(frozen=True)
class Plan:
    sql: str
    params: tuple[Any, ...]  # constants, or Slot for a variable's value

    def values(self, variables: dict[str, Any]) -> list[Any]:
        return [variables[p.name] if isinstance(p, Slot) else p for p in self.params]


class Stats:
    """Counters the tests read: plans compiled and served from the cache."""

    compiled = 0
    hits = 0


_plans: OrderedDict[tuple[Any, ...], Plan | None] = OrderedDict()
# Per (schema, document, operation name): may the operation take the fast path at all.
_eligible: OrderedDict[tuple[int, str, str | None], bool] = OrderedDict()


def _remember(cache: OrderedDict[Any, Any], key: Any, value: Any) -> None:
    cache[key] = value
    if len(cache) > _CACHE_SIZE:
        cache.popitem(last=False)


def _may_take(schema: GraphQLSchema, query: str, operation: OperationDefinitionNode) -> bool:
    # `__typename` and introspection are answered by the executor, not by SQL.
    if operation.operation != OperationType.QUERY or "__" in query:
        return False
    query_type = schema.query_type
    return query_type is not None


def plan_for(
    ctx: Context, schema: GraphQLSchema, document: DocumentNode, operation: OperationDefinitionNode,
    query: str, operation_name: str | None, variables: dict[str, Any] | None,
) -> tuple[Plan, dict[str, Any]] | None:
    """The operation's plan and the coerced variables it runs with, or None: the normal path."""
    elig_key = (id(schema), query, operation_name)
    eligible = _eligible.get(elig_key)
    if eligible is None:
        eligible = _may_take(schema, query, operation)
        _remember(_eligible, elig_key, eligible)
    if not eligible:
        return None
    definitions = operation.variable_definitions or ()
    values = get_variable_values(schema, definitions, variables or {})
    if isinstance(values, list):  # a bad variable: the normal path words the error
        return None
    coerced = values.coerced
    slots: set[str] = set()
    for definition in definitions:
        name = definition.variable.name.value
        var_type = type_from_ast(schema, definition.type)
        named = get_named_type(var_type) if var_type is not None else None
        if (isinstance(named, GraphQLScalarType) and named not in _SHAPING_SCALARS
                and isinstance(coerced.get(name), str)):
            slots.add(name)
    shaping = {k: v for k, v in (variables or {}).items() if k not in slots}
    try:
        shape = json.dumps(shaping, separators=(",", ":"), default=str) if shaping else ""
    except (TypeError, ValueError):
        return None
    settings = ctx.runtime.settings
    key = (id(schema), query, operation_name, ctx.claims.role, settings.max_rows, frozenset(slots), shape)
    if key in _plans:
        _plans.move_to_end(key)
        plan = _plans[key]
        Stats.hits += 1
    else:
        plan = _compile(ctx, schema, document, operation, variables, values, slots)
        if plan is None and slots:
            # A marker changed shape on its way into the SQL: this document compiles per request.
            return _uncached(ctx, schema, document, operation, variables, values)
        _remember(_plans, key, plan)
    if plan is None:
        return None
    return plan, coerced


def _uncached(
    ctx: Context, schema: GraphQLSchema, document: DocumentNode, operation: OperationDefinitionNode,
    variables: dict[str, Any] | None, values: VariableValues,
) -> tuple[Plan, dict[str, Any]] | None:
    plan = _compile(ctx, schema, document, operation, variables, values, set())
    return None if plan is None else (plan, values.coerced)


def _compile(
    ctx: Context, schema: GraphQLSchema, document: DocumentNode, operation: OperationDefinitionNode,
    raw_variables: dict[str, Any] | None, values: VariableValues, slots: set[str],
) -> Plan | None:
    Stats.compiled += 1
    catalog: Catalog = schema.extensions["nchat_catalog"]
    query_type = schema.query_type
    assert query_type is not None
    marked = VariableValues(values.sources, {k: (f"{_MARK}{k}\ue000" if k in slots else v)
                                             for k, v in values.coerced.items()})
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    defaults = {d.variable.name.value: d.default_value for d in operation.variable_definitions or ()
                if d.default_value is not None}
    reader = Reader(marked, fragments, raw_variables if isinstance(raw_variables, dict) else None, defaults)
    roots = reader.fields(query_type, [_as_field(operation)])
    if not roots or len(roots) > 50:
        return None
    compiler = Compiler(catalog, reader, ctx.runtime.settings.max_rows)
    parts: list[str] = []
    try:
        for selected in roots:
            meta = selected.meta
            if not isinstance(meta, RootField) or meta.kind not in QUERY_KINDS:
                return None
            table = catalog.tables[meta.table]
            sql = compiler.root(meta.kind, table, selected, reader.args(selected))
            parts.append(f"{literal_key(selected.key)}, ({sql})")
    except (NchatError, GraphQLError):
        return None
    sql = "SELECT json_build_object(" + ", ".join(parts) + ")::text"
    if "jsonb_build_object(" in sql:  # a wide object built as jsonb loses the selection's key order
        return None
    params: list[Any] = []
    for value in compiler.params.values:
        if isinstance(value, str) and value.startswith(_MARK) and value.endswith("\ue000"):
            name = value[len(_MARK):-1]
            if name not in slots:
                return None
            params.append(Slot(name))
        elif slots and _MARK in json.dumps(value, default=str):
            return None  # a marker transformed on its way in (e.g. into a JSON or array value)
        else:
            params.append(value)
    if _MARK in sql:
        return None
    return Plan(sql, tuple(params))


def _as_field(operation: OperationDefinitionNode) -> FieldNode:
    """The operation as the parent node `Reader.fields` walks (it reads only `.selection_set`)."""
    return cast(FieldNode, operation)


async def run_plan(ctx: Context, plan: Plan, coerced: dict[str, Any]) -> bytes | None:
    """The response bytes, or None when the statement failed (the normal path answers then)."""
    try:
        text = await ctx.read_text(plan.sql, plan.values(coerced))
        ctx.statements += 1
    except NchatError as exc:
        if exc.code in _FINAL:
            raise
        return None
    if not isinstance(text, str):
        return None
    return b'{"data":' + text.encode() + b"}"


__all__ = ["Plan", "Slot", "Stats", "plan_for", "run_plan"]
