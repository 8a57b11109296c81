"""The Hasura-style part of one role's schema, generated from the catalog.

Type and field names follow Hasura (`nchat_streams_bool_exp`, `insert_nchat_streams_one`, ...), so
documents written against Hasura validate here. A role sees only the columns Postgres grants it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from graphql import (
    GraphQLArgument,
    GraphQLBoolean,
    GraphQLEnumType,
    GraphQLEnumValue,
    GraphQLField,
    GraphQLFloat,
    GraphQLInputField,
    GraphQLInputObjectType,
    GraphQLInt,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLResolveInfo,
    GraphQLScalarType,
    GraphQLString,
)

from .catalog import Catalog, Column, Table, TablePermissions
from .compiler.compiler import (
    AGGREGATE_COUNT,
    BOOL_AGGREGATES,
    NUMERIC_AGGREGATES,
    ORDER_AGGREGATES,
    ColumnField,
    ComputedField,
    RelationshipField,
    RootField,
    RootKind,
)

# Columns a role may write but not read, answered through a SECURITY DEFINER function that decides
# per row (the broadcaster reads their stream key; everyone else gets null).
SECRET_COLUMNS = {("nchat_streams", "stream_key"): "nchat.stream_key({alias}.id)"}

_BUILTINS: dict[str, GraphQLScalarType] = {
    "Int": GraphQLInt, "Float": GraphQLFloat, "String": GraphQLString, "Boolean": GraphQLBoolean,
}
_SCALARS: dict[str, GraphQLScalarType] = {}
_COMPARISONS: dict[str, GraphQLInputObjectType] = {}

ORDER_BY = GraphQLEnumType(
    "order_by",
    {
        "asc": GraphQLEnumValue("ASC NULLS LAST", description="in ascending order, nulls last"),
        "asc_nulls_first": GraphQLEnumValue("ASC NULLS FIRST", description="in ascending order, nulls first"),
        "asc_nulls_last": GraphQLEnumValue("ASC NULLS LAST", description="in ascending order, nulls last"),
        "desc": GraphQLEnumValue("DESC NULLS FIRST", description="in descending order, nulls first"),
        "desc_nulls_first": GraphQLEnumValue("DESC NULLS FIRST", description="in descending order, nulls first"),
        "desc_nulls_last": GraphQLEnumValue("DESC NULLS LAST", description="in descending order, nulls last"),
    },
    description="column ordering options",
)
CURSOR_ORDERING = GraphQLEnumType(
    "cursor_ordering", {"ASC": GraphQLEnumValue("ASC"), "DESC": GraphQLEnumValue("DESC")},
    description="ordering argument of a cursor",
)

Resolver = Callable[..., Any]


def by_key(source: Any, info: GraphQLResolveInfo[Any], **_: Any) -> Any:
    """Fields of compiled results: the SQL built each object keyed by response key (alias)."""
    return source.get(info.path.key) if isinstance(source, dict) else None


def scalar(name: str) -> GraphQLScalarType:
    if name in _BUILTINS:
        return _BUILTINS[name]
    if name not in _SCALARS:
        # Values pass through untouched; Postgres parses them (as Hasura lets it), so "now()" is a
        # timestamptz and "{a,b}" a _text.
        _SCALARS[name] = GraphQLScalarType(name)
    return _SCALARS[name]


def comparison_exp(column: Column) -> GraphQLInputObjectType:
    name = column.scalar
    if name in _COMPARISONS:
        return _COMPARISONS[name]
    t = scalar(name)
    ops = ("_eq", "_gt", "_gte", "_lt", "_lte", "_neq")
    fields: dict[str, GraphQLInputField] = {op: GraphQLInputField(t) for op in ops}
    fields["_is_null"] = GraphQLInputField(GraphQLBoolean)
    if not column.is_array:
        fields["_in"] = GraphQLInputField(GraphQLList(GraphQLNonNull(t)))
        fields["_nin"] = GraphQLInputField(GraphQLList(GraphQLNonNull(t)))
    if column.category == "S":
        for op in ("_like", "_nlike", "_ilike", "_nilike", "_similar", "_nsimilar", "_regex", "_nregex",
                   "_iregex", "_niregex"):
            fields[op] = GraphQLInputField(GraphQLString)
    if column.is_json or column.is_array:
        fields["_contains"] = GraphQLInputField(t)
        fields["_contained_in"] = GraphQLInputField(t)
    if column.pg_type == "jsonb":
        fields["_has_key"] = GraphQLInputField(GraphQLString)
        fields["_has_keys_all"] = GraphQLInputField(GraphQLList(GraphQLNonNull(GraphQLString)))
        fields["_has_keys_any"] = GraphQLInputField(GraphQLList(GraphQLNonNull(GraphQLString)))
    _COMPARISONS[name] = GraphQLInputObjectType(
        f"{name}_comparison_exp", dict(sorted(fields.items())),
        description=f"Boolean expression to compare columns of type \"{name}\". "
                    "All fields are combined with logical 'AND'.",
    )
    return _COMPARISONS[name]


def _nn(t: Any) -> Any:
    return GraphQLNonNull(t)


class RoleTypes:
    """Builds (once each) the types of one role; the root fields come from `roots()`."""

    def __init__(self, catalog: Catalog, role: str, resolve_root: Resolver, subscribe_root: Resolver) -> None:
        self.catalog = catalog
        self.role = role
        self.perms = catalog.permissions[role]
        self.resolve_root = resolve_root
        self.subscribe_root = subscribe_root
        self.cache: dict[str, Any] = {}

    # -- helpers ---------------------------------------------------------------------------------

    def _once(self, name: str, make: Callable[[], Any]) -> Any:
        if name not in self.cache:
            self.cache[name] = make()
        return self.cache[name]

    def _selectable(self, table: Table) -> list[Column]:
        perms = self.perms[table.name]
        return [c for c in table.columns.values() if c.name in perms.select]

    def _visible_relationships(self, table: Table) -> list[Any]:
        perms = self.perms[table.name]
        rels = []
        for rel in table.relationships.values():
            remote = self.perms.get(rel.remote_table)
            if remote is None:
                continue
            if all(lc in perms.select and rc in remote.select for lc, rc in rel.mapping):
                rels.append(rel)
        return rels

    def _select_args(self, table: Table) -> dict[str, GraphQLArgument]:
        return {
            "distinct_on": GraphQLArgument(GraphQLList(_nn(self.select_column(table))),
                                           description="distinct select on columns"),
            "limit": GraphQLArgument(GraphQLInt, description="limit the number of rows returned"),
            "offset": GraphQLArgument(GraphQLInt, description="skip the first n rows. Use only with order_by"),
            "order_by": GraphQLArgument(GraphQLList(_nn(self.order_by(table))),
                                        description="sort the rows by one or more columns"),
            "where": GraphQLArgument(self.bool_exp(table), description="filter the rows returned"),
        }

    # -- output types ----------------------------------------------------------------------------

    def object(self, table: Table) -> GraphQLObjectType:
        def fields() -> dict[str, GraphQLField]:
            out: dict[str, GraphQLField] = {}
            perms = self.perms[table.name]
            for col in table.columns.values():
                if col.name in perms.select:
                    t: Any = scalar(col.scalar)
                    out[col.name] = GraphQLField(t if col.nullable else _nn(t), resolve=by_key,
                                                 extensions={"nchat": ColumnField(col)})
                elif (table.name, col.name) in SECRET_COLUMNS and col.name in perms.insert | perms.update:
                    out[col.name] = GraphQLField(
                        scalar(col.scalar), resolve=by_key,
                        description="readable by the stream's broadcaster and admins only (null otherwise)",
                        extensions={"nchat": ComputedField(SECRET_COLUMNS[(table.name, col.name)])},
                    )
            for rel in self._visible_relationships(table):
                remote = self.catalog.tables[rel.remote_table]
                if rel.kind == "object":
                    out[rel.name] = GraphQLField(self.object(remote), resolve=by_key,
                                                 description="An object relationship",
                                                 extensions={"nchat": RelationshipField(rel)})
                else:
                    out[rel.name] = GraphQLField(
                        _nn(GraphQLList(_nn(self.object(remote)))), args=self._select_args(remote), resolve=by_key,
                        description="An array relationship", extensions={"nchat": RelationshipField(rel)},
                    )
                    out[f"{rel.name}_aggregate"] = GraphQLField(
                        _nn(self.aggregate(remote)), args=self._select_args(remote), resolve=by_key,
                        description="An aggregate relationship", extensions={"nchat": RelationshipField(rel, True)},
                    )
            return out

        return self._once(table.name, lambda: GraphQLObjectType(
            table.name, fields, description=f'columns and relationships of "{table.name}"'))

    def aggregate(self, table: Table) -> GraphQLObjectType:
        name = f"{table.name}_aggregate"
        return self._once(name, lambda: GraphQLObjectType(name, lambda: {
            "aggregate": GraphQLField(self.aggregate_fields(table), resolve=by_key),
            "nodes": GraphQLField(_nn(GraphQLList(_nn(self.object(table)))), resolve=by_key),
        }, description=f'aggregated selection of "{table.name}"'))

    def aggregate_fields(self, table: Table) -> GraphQLObjectType:
        name = f"{table.name}_aggregate_fields"

        def make() -> GraphQLObjectType:
            cols = self._selectable(table)
            fields: dict[str, GraphQLField] = {
                "count": GraphQLField(_nn(GraphQLInt), args={
                    "columns": GraphQLArgument(GraphQLList(_nn(self.select_column(table)))),
                    "distinct": GraphQLArgument(GraphQLBoolean),
                }, resolve=by_key),
            }
            numeric = [c for c in cols if c.is_numeric]
            orderable = [c for c in cols if c.is_orderable]
            for fn in NUMERIC_AGGREGATES:
                if numeric:
                    fields[fn] = GraphQLField(self._fn_fields(table, fn, numeric), resolve=by_key)
            for fn in ORDER_AGGREGATES:
                if orderable:
                    fields[fn] = GraphQLField(self._fn_fields(table, fn, orderable), resolve=by_key)
            return GraphQLObjectType(name, dict(sorted(fields.items())),
                                     description=f'aggregate fields of "{table.name}"')

        return self._once(name, make)

    def _fn_fields(self, table: Table, fn: str, cols: list[Column]) -> GraphQLObjectType:
        def out_type(col: Column) -> GraphQLOutputType:
            if fn in ORDER_AGGREGATES or fn == "sum":
                return scalar(col.scalar)
            return GraphQLFloat

        return GraphQLObjectType(
            f"{table.name}_{fn}_fields",
            {c.name: GraphQLField(out_type(c), resolve=by_key) for c in cols},
            description=f"aggregate {fn} on columns",
        )

    def mutation_response(self, table: Table) -> GraphQLObjectType:
        name = f"{table.name}_mutation_response"
        return self._once(name, lambda: GraphQLObjectType(name, lambda: {
            "affected_rows": GraphQLField(_nn(GraphQLInt), description="number of rows affected by the mutation",
                                          resolve=by_key),
            "returning": GraphQLField(_nn(GraphQLList(_nn(self.object(table)))),
                                      description="data from the rows affected by the mutation", resolve=by_key),
        }, description=f'response of any mutation on the table "{table.name}"'))

    # -- input types -----------------------------------------------------------------------------

    def select_column(self, table: Table) -> GraphQLEnumType:
        name = f"{table.name}_select_column"
        return self._once(name, lambda: GraphQLEnumType(
            name, {c.name: GraphQLEnumValue(c.name, description="column name") for c in self._selectable(table)},
            description=f'select columns of table "{table.name}"'))

    def bool_exp(self, table: Table) -> GraphQLInputObjectType:
        name = f"{table.name}_bool_exp"

        def fields() -> dict[str, GraphQLInputField]:
            me = self.bool_exp(table)
            out: dict[str, GraphQLInputField] = {
                "_and": GraphQLInputField(GraphQLList(_nn(me))),
                "_not": GraphQLInputField(me),
                "_or": GraphQLInputField(GraphQLList(_nn(me))),
            }
            for col in self._selectable(table):
                out[col.name] = GraphQLInputField(comparison_exp(col))
            for rel in self._visible_relationships(table):
                remote = self.catalog.tables[rel.remote_table]
                out[rel.name] = GraphQLInputField(self.bool_exp(remote))
                if rel.kind == "array":
                    out[f"{rel.name}_aggregate"] = GraphQLInputField(self.aggregate_bool_exp(remote))
            return dict(sorted(out.items()))

        return self._once(name, lambda: GraphQLInputObjectType(
            name, fields,
            description=f'Boolean expression to filter rows from the table "{table.name}". '
                        "All fields are combined with a logical 'AND'."))

    def aggregate_bool_exp(self, table: Table) -> GraphQLInputObjectType:
        """Filters on an array relationship's aggregates: count, and bool_and/bool_or of boolean columns."""
        name = f"{table.name}_aggregate_bool_exp"

        def make() -> GraphQLInputObjectType:
            t = table.name
            count = GraphQLInputObjectType(f"{name}_count", lambda: {
                "arguments": GraphQLInputField(GraphQLList(_nn(self.select_column(table)))),
                "distinct": GraphQLInputField(GraphQLBoolean),
                "filter": GraphQLInputField(self.bool_exp(table)),
                "predicate": GraphQLInputField(_nn(comparison_exp(AGGREGATE_COUNT))),
            })
            fields: dict[str, GraphQLInputField] = {"count": GraphQLInputField(count)}
            booleans = [c for c in self._selectable(table) if c.pg_type == "bool"]
            for fn in BOOL_AGGREGATES if booleans else ():
                columns = GraphQLEnumType(
                    f"{t}_select_column_{name}_{fn}_arguments_columns",
                    {c.name: GraphQLEnumValue(c.name, description="column name") for c in booleans},
                    description=f'select "{name}_{fn}_arguments_columns" columns of table "{t}"')
                def bool_fields(c: GraphQLEnumType = columns, b: list[Column] = booleans) -> dict[str, Any]:
                    return {
                        "arguments": GraphQLInputField(_nn(c)),
                        "distinct": GraphQLInputField(GraphQLBoolean),
                        "filter": GraphQLInputField(self.bool_exp(table)),
                        "predicate": GraphQLInputField(_nn(comparison_exp(b[0]))),
                    }

                fields[fn] = GraphQLInputField(GraphQLInputObjectType(f"{name}_{fn}", bool_fields))
            return GraphQLInputObjectType(name, dict(sorted(fields.items())))

        return self._once(name, make)

    def order_by(self, table: Table) -> GraphQLInputObjectType:
        name = f"{table.name}_order_by"

        def fields() -> dict[str, GraphQLInputField]:
            out: dict[str, GraphQLInputField] = {c.name: GraphQLInputField(ORDER_BY) for c in self._selectable(table)}
            for rel in self._visible_relationships(table):
                remote = self.catalog.tables[rel.remote_table]
                if rel.kind == "object":
                    out[rel.name] = GraphQLInputField(self.order_by(remote))
                else:
                    out[f"{rel.name}_aggregate"] = GraphQLInputField(self.aggregate_order_by(remote))
            return dict(sorted(out.items()))

        return self._once(name, lambda: GraphQLInputObjectType(
            name, fields, description=f'Ordering options when selecting data from "{table.name}".'))

    def aggregate_order_by(self, table: Table) -> GraphQLInputObjectType:
        name = f"{table.name}_aggregate_order_by"

        def make() -> GraphQLInputObjectType:
            cols = self._selectable(table)
            out: dict[str, GraphQLInputField] = {"count": GraphQLInputField(ORDER_BY)}
            groups = [(fn, [c for c in cols if c.is_numeric]) for fn in NUMERIC_AGGREGATES]
            groups += [(fn, [c for c in cols if c.is_orderable]) for fn in ORDER_AGGREGATES]
            for fn, fcols in groups:
                if fcols:
                    out[fn] = GraphQLInputField(GraphQLInputObjectType(
                        f"{table.name}_{fn}_order_by", {c.name: GraphQLInputField(ORDER_BY) for c in fcols}))
            return GraphQLInputObjectType(name, dict(sorted(out.items())),
                                          description=f'order by aggregate values of table "{table.name}"')

        return self._once(name, make)

    def _columns_input(
        self, table: Table, suffix: str, cols: list[Column], required: bool = False
    ) -> GraphQLInputObjectType:
        name = f"{table.name}_{suffix}"
        return self._once(name, lambda: GraphQLInputObjectType(name, {
            c.name: GraphQLInputField(_nn(scalar(c.scalar)) if required else scalar(c.scalar)) for c in cols
        }))

    def insert_input(self, table: Table) -> GraphQLInputObjectType:
        """Columns the role may insert, and relationships into tables it may insert into (nested inserts)."""
        name = f"{table.name}_insert_input"

        def fields() -> dict[str, GraphQLInputField]:
            perms = self.perms[table.name]
            out = {c.name: GraphQLInputField(scalar(c.scalar))
                   for c in table.columns.values() if c.name in perms.insert}
            for rel in self._visible_relationships(table):
                remote = self.catalog.tables[rel.remote_table]
                if self.perms[remote.name].insert:
                    out[rel.name] = GraphQLInputField(self._rel_insert_input(remote, rel.kind))
            return dict(sorted(out.items()))

        return self._once(name, lambda: GraphQLInputObjectType(
            name, fields, description=f'input type for inserting data into table "{table.name}"'))

    def _rel_insert_input(self, table: Table, kind: str) -> GraphQLInputObjectType:
        short = "obj" if kind == "object" else "arr"
        name = f"{table.name}_{short}_rel_insert_input"

        def fields() -> dict[str, GraphQLInputField]:
            row = _nn(self.insert_input(table))
            return {
                "data": GraphQLInputField(row if kind == "object" else _nn(GraphQLList(row))),
                "on_conflict": GraphQLInputField(self.on_conflict(table), description="upsert condition"),
            }

        return self._once(name, lambda: GraphQLInputObjectType(
            name, fields, description=f'input type for inserting {kind} relation for remote table "{table.name}"'))

    def _jsonb_operators(self, table: Table, cols: list[Column]) -> dict[str, GraphQLArgument]:
        """Hasura's jsonb update operators, each an input object over the updatable jsonb columns."""
        jsonb, key, index = scalar("jsonb"), GraphQLString, GraphQLInt
        path = GraphQLList(_nn(GraphQLString))
        out: dict[str, GraphQLArgument] = {}
        for op, t, doc in (
            ("append", jsonb, "append existing jsonb value of filtered columns with new jsonb value"),
            ("delete_at_path", path, "delete the field or element with specified path (for JSON arrays, "
                                     "negative integers count from the end)"),
            ("delete_elem", index, "delete the array element with specified index (negative integers count from "
                                   "the end). throws an error if top level container is not an array"),
            ("delete_key", key, "delete key/value pair or string element. key/value pairs are matched based on "
                                "their key value"),
            ("prepend", jsonb, "prepend existing jsonb value of filtered columns with new jsonb value"),
        ):
            name = f"{table.name}_{op}_input"

            def make_input(n: str = name, t: Any = t, d: str = doc, cols: list[Column] = cols) -> Any:
                return GraphQLInputObjectType(n, {c.name: GraphQLInputField(t) for c in cols}, description=d)

            input_type = self._once(name, make_input)
            out[f"_{op}"] = GraphQLArgument(input_type, description=doc)
        return out

    def _enum(self, name: str, values: list[str], description: str) -> GraphQLEnumType:
        # An enum needs a value; Hasura fills an empty one with _PLACEHOLDER.
        return self._once(name, lambda: GraphQLEnumType(
            name, {v: GraphQLEnumValue(v) for v in values} if values else {"_PLACEHOLDER": GraphQLEnumValue("")},
            description=description))

    def on_conflict(self, table: Table) -> GraphQLInputObjectType:
        name = f"{table.name}_on_conflict"
        perms = self.perms[table.name]
        constraint = self._enum(f"{table.name}_constraint", list(table.unique_constraints),
                                f'unique or primary key constraints on table "{table.name}"')
        update = self._enum(f"{table.name}_update_column", [c for c in table.columns if c in perms.update],
                            f'update columns of table "{table.name}"')
        return self._once(name, lambda: GraphQLInputObjectType(name, {
            "constraint": GraphQLInputField(_nn(constraint)),
            "update_columns": GraphQLInputField(_nn(GraphQLList(_nn(update))), default_value=[]),
            "where": GraphQLInputField(self.bool_exp(table)),
        }, description=f'on_conflict condition type for table "{table.name}"'))

    # -- root fields -----------------------------------------------------------------------------

    def _root(self, kind: RootKind, table: Table, type_: Any, args: dict[str, GraphQLArgument], description: str,
              subscription: bool = False) -> GraphQLField:
        meta = {"nchat": RootField(kind, table.name)}
        if subscription:
            return GraphQLField(type_, args=args, subscribe=self.subscribe_root, resolve=_payload,
                                description=description, extensions=meta)
        return GraphQLField(type_, args=args, resolve=self.resolve_root, description=description, extensions=meta)

    def _pk_args(self, table: Table, perms: TablePermissions) -> dict[str, GraphQLArgument] | None:
        if not table.primary_key or not all(c in perms.select for c in table.primary_key):
            return None
        return {c: GraphQLArgument(_nn(scalar(table.columns[c].scalar))) for c in table.primary_key}

    def query_fields(self, subscription: bool = False) -> dict[str, GraphQLField]:
        out: dict[str, GraphQLField] = {}
        for name, perms in self.perms.items():
            table = self.catalog.tables[name]
            obj = self.object(table)
            out[name] = self._root("select", table, _nn(GraphQLList(_nn(obj))), self._select_args(table),
                                   f'fetch data from the table: "{name}"', subscription)
            out[f"{name}_aggregate"] = self._root("aggregate", table, _nn(self.aggregate(table)),
                                                  self._select_args(table),
                                                  f'fetch aggregated fields from the table: "{name}"', subscription)
            pk = self._pk_args(table, perms)
            if pk is not None:
                out[f"{name}_by_pk"] = self._root("by_pk", table, obj, pk,
                                                  f'fetch data from the table: "{name}" using primary key columns',
                                                  subscription)
            if subscription:
                out[f"{name}_stream"] = self._root("stream", table, _nn(GraphQLList(_nn(obj))), {
                    "batch_size": GraphQLArgument(_nn(GraphQLInt),
                                                  description="maximum number of rows returned in a single batch"),
                    "cursor": GraphQLArgument(_nn(GraphQLList(self.stream_cursor(table))),
                                              description="cursor to stream the results returned by the query"),
                    "where": GraphQLArgument(self.bool_exp(table), description="filter the rows returned"),
                }, f'fetch data from the table in a streaming manner: "{name}"', subscription)
        return dict(sorted(out.items()))

    def stream_cursor(self, table: Table) -> GraphQLInputObjectType:
        name = f"{table.name}_stream_cursor_input"
        value = self._columns_input(table, "stream_cursor_value_input", self._selectable(table))
        return self._once(name, lambda: GraphQLInputObjectType(name, {
            "initial_value": GraphQLInputField(_nn(value), description="Stream column input with initial value"),
            "ordering": GraphQLInputField(CURSOR_ORDERING, description="cursor ordering"),
        }, description=f'Streaming cursor of the table "{table.name}"'))

    def mutation_fields(self) -> dict[str, GraphQLField]:
        out: dict[str, GraphQLField] = {}
        for name, perms in self.perms.items():
            table = self.catalog.tables[name]
            obj = self.object(table)
            response = self.mutation_response(table)
            pk = self._pk_args(table, perms)
            if perms.insert:
                insert_input = self.insert_input(table)
                conflict = {"on_conflict": GraphQLArgument(self.on_conflict(table), description="upsert condition")}
                out[f"insert_{name}"] = self._root("insert", table, response, {
                    "objects": GraphQLArgument(_nn(GraphQLList(_nn(insert_input))),
                                               description="the rows to be inserted"), **conflict,
                }, f'insert data into the table: "{name}"')
                out[f"insert_{name}_one"] = self._root("insert_one", table, obj, {
                    "object": GraphQLArgument(_nn(insert_input), description="the row to be inserted"), **conflict,
                }, f'insert a single row into the table: "{name}"')
            updatable = [c for c in table.columns.values() if c.name in perms.update]
            if updatable:
                set_input = self._columns_input(table, "set_input", updatable)
                numeric = [c for c in updatable if c.is_numeric]
                changes: dict[str, GraphQLArgument] = {
                    "_set": GraphQLArgument(set_input,
                                            description="sets the columns of the filtered rows to the given values"),
                }
                if numeric:
                    changes["_inc"] = GraphQLArgument(self._columns_input(table, "inc_input", numeric),
                                                      description="increments the numeric columns of the filtered rows")
                jsonb = [c for c in updatable if c.pg_type == "jsonb"]
                if jsonb:
                    changes.update(self._jsonb_operators(table, jsonb))
                changes = dict(sorted(changes.items()))
                out[f"update_{name}"] = self._root("update", table, response, {
                    **changes, "where": GraphQLArgument(_nn(self.bool_exp(table)),
                                                        description="filter the rows which have to be updated"),
                }, f'update data of the table: "{name}"')
                if pk is not None:
                    pk_input = self._columns_input(table, "pk_columns_input",
                                                   [table.columns[c] for c in table.primary_key], required=True)
                    out[f"update_{name}_by_pk"] = self._root("update_by_pk", table, obj, {
                        **changes, "pk_columns": GraphQLArgument(_nn(pk_input)),
                    }, f'update single row of the table: "{name}"')
                def make_updates(t: Table = table, c: dict[str, GraphQLArgument] = changes) -> Any:
                    return GraphQLInputObjectType(f"{t.name}_updates", {
                        **{k: GraphQLInputField(v.type, description=v.description) for k, v in c.items()},
                        "where": GraphQLInputField(_nn(self.bool_exp(t)),
                                                   description="filter the rows which have to be updated"),
                    })

                updates = self._once(f"{name}_updates", make_updates)
                out[f"update_{name}_many"] = self._root("update_many", table, GraphQLList(response), {
                    "updates": GraphQLArgument(_nn(GraphQLList(_nn(updates))),
                                               description="updates to execute, in order"),
                }, f'update multiples rows of table: "{name}"')
            if perms.delete:
                out[f"delete_{name}"] = self._root("delete", table, response, {
                    "where": GraphQLArgument(_nn(self.bool_exp(table)),
                                             description="filter the rows which have to be deleted"),
                }, f'delete data from the table: "{name}"')
                if pk is not None:
                    out[f"delete_{name}_by_pk"] = self._root("delete_by_pk", table, obj, pk,
                                                             f'delete single row from the table: "{name}"')
        return dict(sorted(out.items()))


def _payload(payload: Any, info: GraphQLResolveInfo[Any], **_: Any) -> Any:
    """Subscription events are already the field's value (the live-query engine ran the SQL)."""
    return payload

