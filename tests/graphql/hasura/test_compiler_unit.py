"""The SQL compiler on its own: a hand-built catalog, GraphQL documents in, SQL text and parameters out.

No database: each root field's resolver compiles the field and records the statement instead of
running it, so these tests pin what the compiler emits (filters, ordering, limits, nested array
defaults, aggregates, inserts, updates) and that every client value travels as a parameter.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from inspect import isawaitable
from types import SimpleNamespace
from typing import Any, cast

import graphql
import pytest
from graphql import GraphQLResolveInfo, GraphQLSchema

from nchat_live.auth import Claims
from nchat_live.graphql.context import Context
from nchat_live.graphql.hasura.catalog import Catalog, Column, Relationship, Table, TablePermissions
from nchat_live.graphql.hasura.compiler.mutations import UPDATE_OPERATORS, MutationCompiler
from nchat_live.graphql.hasura.compiler.selection import Reader
from nchat_live.graphql.hasura.schema import RoleTypes
from nchat_live.graphql.hasura.statements import QUERY_KINDS, catalog_of, compile_query, selected_of
from nchat_live.runtime import Runtime

MAX_ROWS = 50
USER = "00000000-0000-4000-8000-000000000001"


def _col(name: str, sql_type: str, pg_type: str, category: str, *, nullable: bool = False,
         default: bool = False) -> Column:
    return Column(name, sql_type, pg_type, category, nullable, default)


def catalog() -> Catalog:
    channels = Table(
        "nchat_channels",
        {"id": _col("id", "uuid", "uuid", "U", default=True), "name": _col("name", "text", "text", "S")},
        primary_key=("id",), unique_constraints={"nchat_channels_pkey": ("id",)},
        relationships={"streams": Relationship("streams", "array", "nchat_channels", "nchat_streams",
                                               (("id", "channel_id"),))},
    )
    streams = Table(
        "nchat_streams",
        {
            "id": _col("id", "uuid", "uuid", "U", default=True),
            "channel_id": _col("channel_id", "uuid", "uuid", "U"),
            "title": _col("title", "text", "text", "S"),
            "viewer_count": _col("viewer_count", "integer", "int4", "N", default=True),
        },
        primary_key=("id",), unique_constraints={"nchat_streams_pkey": ("id",)},
        relationships={"channel": Relationship("channel", "object", "nchat_streams", "nchat_channels",
                                               (("channel_id", "id"),))},
    )
    everything = frozenset({"id", "channel_id", "title", "viewer_count", "name"})
    perms = {
        "nchat_channels": TablePermissions(select=frozenset({"id", "name"}), insert=frozenset({"name"}),
                                           update=frozenset({"name"}), delete=False),
        "nchat_streams": TablePermissions(select=everything - {"name"}, insert=frozenset({"channel_id", "title"}),
                                          update=frozenset({"title"}), delete=True),
    }
    return Catalog({t.name: t for t in (channels, streams)}, {"user": perms})


@dataclass
class Compiled:
    sql: str
    params: list[Any]


class _Recorded(Exception):
    """Stops execution once the statement is compiled: the statement is what the test reads."""


def _context() -> Context:
    runtime = cast(Runtime, SimpleNamespace(settings=SimpleNamespace(max_rows=MAX_ROWS)))
    return Context(runtime, Claims.user(USER))


async def compile_document(document: str, variables: dict[str, Any] | None = None) -> list[Compiled]:
    """The statements of the document's root fields, in document order."""
    out: list[Compiled] = []

    async def record(_source: Any, info: GraphQLResolveInfo, **args: Any) -> Any:
        ctx: Context = info.context
        selected, meta = selected_of(info)
        if meta.kind in QUERY_KINDS:
            out.append(Compiled(*compile_query(ctx, info, args)))
            raise _Recorded
        cat = catalog_of(info)
        table = cat.tables[meta.table]
        compiler = MutationCompiler(cat, Reader.of(info, ctx.raw_variables), MAX_ROWS,
                                    cat.permissions["user"][table.name].select)
        changes = {op: args.get(op) for op in UPDATE_OPERATORS}
        if meta.kind == "insert":
            compiled = compiler.insert(table, selected, args["objects"], args.get("on_conflict"), single=False)
        elif meta.kind == "update":
            compiled = compiler.update(table, selected, args["where"], None, changes, False)
        elif meta.kind == "update_by_pk":
            compiled = compiler.update(table, selected, None, args["pk_columns"], changes, True)
        else:
            raise AssertionError(f"not covered here: {meta.kind}")
        out.append(Compiled(compiled.sql, compiled.params))
        raise _Recorded

    types = RoleTypes(catalog(), "user", record, record)
    mutation_fields = types.mutation_fields()
    schema = GraphQLSchema(
        query=graphql.GraphQLObjectType("query_root", types.query_fields()),
        mutation=graphql.GraphQLObjectType("mutation_root", mutation_fields) if mutation_fields else None,
        extensions={"nchat_catalog": catalog(), "nchat_role": "user"},
    )
    parsed = graphql.parse(document)
    assert graphql.validate(schema, parsed) == []
    ctx = _context()
    ctx.raw_variables = variables

    result = graphql.execute(schema, parsed, context_value=ctx, variable_values=variables)
    if isawaitable(result):
        result = await result
    assert isinstance(result, graphql.ExecutionResult)
    for error in result.errors or []:
        assert isinstance(error.original_error, _Recorded), error
    return out


async def only(document: str, variables: dict[str, Any] | None = None) -> Compiled:
    (compiled,) = await compile_document(document, variables)
    return compiled


def squash(sql: str) -> str:
    return re.sub(r"\s+", " ", sql)


async def test_where_values_travel_as_parameters_never_in_the_text() -> None:
    compiled = await only('{ nchat_streams(where: {title: {_eq: "x\'; DROP TABLE nchat_streams; --"}}) { id } }')
    assert "DROP TABLE" not in compiled.sql
    assert "x'; DROP TABLE nchat_streams; --" in compiled.params
    assert '_t1."title" = (SELECT ($1::text)::text)' in compiled.sql, compiled.sql
    assert compiled.params == ["x'; DROP TABLE nchat_streams; --", MAX_ROWS]


async def test_compared_values_are_cast_once_per_statement() -> None:
    """A scalar sub-select (an InitPlan) around each cast: a generic plan would otherwise parse the text
    again for every row a filter tests."""
    compiled = await only('{ nchat_streams(where: {channel_id: {_in: ["00000000-0000-4000-8000-000000000002"]}, '
                          'viewer_count: {_gt: 3}}) { id } }')
    assert '_t1."channel_id" = ANY((SELECT ($1::text[])::uuid[])::uuid[])' in compiled.sql, compiled.sql
    assert '_t1."viewer_count" > (SELECT ($2::text)::integer)' in compiled.sql, compiled.sql


async def test_boolean_operators_and_comparisons_compile_to_sql_operators() -> None:
    compiled = await only('{ nchat_streams(where: {_or: [{viewer_count: {_gt: 10}}, {title: {_ilike: "%live%"}}]}) '
                    '{ id } }')
    sql = squash(compiled.sql)
    assert " OR " in sql and ">" in sql and "ILIKE" in sql
    assert "10" in compiled.params and "%live%" in compiled.params


async def test_order_by_follows_the_document_order_of_its_keys() -> None:
    first = squash((await only("{ nchat_streams(order_by: {viewer_count: desc, title: asc}) { id } }")).sql)
    second = squash((await only("{ nchat_streams(order_by: {title: asc, viewer_count: desc}) { id } }")).sql)
    assert re.search(r'"viewer_count" DESC.*"title" ASC', first), first
    assert re.search(r'"title" ASC.*"viewer_count" DESC', second), second


async def test_order_by_key_order_from_the_raw_variables() -> None:
    document = "query($o: [nchat_streams_order_by!]) { nchat_streams(order_by: $o) { id } }"
    compiled = await only(document, {"o": [{"title": "desc", "viewer_count": "asc"}]})
    assert re.search(r'"title" DESC.*"viewer_count" ASC', squash(compiled.sql)), compiled.sql


async def test_limit_is_capped_by_max_rows_and_offset_is_a_parameter() -> None:
    small = await only("{ nchat_streams(limit: 5, offset: 2) { id } }")
    assert "LIMIT" in small.sql and "OFFSET" in small.sql
    assert 5 in small.params or "5" in small.params
    assert 2 in small.params or "2" in small.params
    big = await only("{ nchat_streams(limit: 100000) { id } }")
    assert MAX_ROWS in big.params or str(MAX_ROWS) in big.params
    assert 100000 not in big.params and "100000" not in big.params


async def test_nested_array_relationships_get_max_rows_as_default_limit() -> None:
    compiled = await only("{ nchat_channels { name streams { title } } }")
    sql = squash(compiled.sql)
    assert sql.count("LIMIT") >= 2, sql  # the root list and the nested array
    assert compiled.params.count(MAX_ROWS) + compiled.params.count(str(MAX_ROWS)) >= 2, compiled.params
    assert '"channel_id"' in sql  # joined on the relationship's mapping


async def test_object_relationship_is_a_join_on_its_mapping() -> None:
    sql = squash((await only("{ nchat_streams { title channel { name } } }")).sql)
    assert '"channel_id"' in sql and '"nchat_channels"' in sql


async def test_by_pk_matches_the_primary_key() -> None:
    compiled = await only(f'{{ nchat_streams_by_pk(id: "{USER}") {{ title }} }}')
    assert USER in compiled.params
    assert '"id"' in compiled.sql


async def test_aggregate_counts_and_sums() -> None:
    compiled = await only("{ nchat_streams_aggregate(where: {viewer_count: {_gte: 1}}) "
                    "{ aggregate { count sum { viewer_count } } } }")
    sql = squash(compiled.sql)
    assert "count(" in sql.lower() and "sum(" in sql.lower()
    assert "1" in compiled.params or 1 in compiled.params


async def test_insert_lists_only_the_given_columns_and_returns_the_selection() -> None:
    compiled = await only(f'mutation {{ insert_nchat_streams(objects: [{{title: "a", channel_id: "{USER}"}}]) '
                          "{ affected_rows returning { id title } } }")
    sql = squash(compiled.sql)
    assert "INSERT INTO" in sql and '"title"' in sql and '"channel_id"' in sql
    assert '"viewer_count"' not in sql.split("RETURNING")[0]
    assert "a" in compiled.params and USER in compiled.params


async def test_update_sets_and_increments_under_the_where_clause() -> None:
    compiled = await only(f'mutation {{ update_nchat_streams(where: {{id: {{_eq: "{USER}"}}}}, _set: {{title: "b"}}) '
                          "{ affected_rows } }")
    sql = squash(compiled.sql)
    assert "UPDATE" in sql and '"title"' in sql
    assert "b" in compiled.params and USER in compiled.params


async def test_update_by_pk_matches_the_key() -> None:
    compiled = await only(f'mutation {{ update_nchat_streams_by_pk(pk_columns: {{id: "{USER}"}}, _set: {{title: "c"}}) '
                          "{ id } }")
    assert "UPDATE" in compiled.sql and USER in compiled.params and "c" in compiled.params


async def test_columns_the_role_cannot_read_are_not_in_the_schema() -> None:
    with pytest.raises(AssertionError):
        await only("{ nchat_channels { id owner_secret } }")
