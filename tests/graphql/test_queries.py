"""Query roots: filters, ordering, pagination, relationships, aggregates, per-role visibility."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.applications import Starlette

from nchat_live.auth import Claims
from nchat_live.graphql.context import Context
from nchat_live.graphql.execution import execute
from tests.graphql.conftest import GQL, code, data
from tests.support import World

pytestmark = pytest.mark.usefixtures("chat")

MESSAGES = """query($s: uuid!, $where: nchat_stream_chat_messages_bool_exp!) {
  nchat_stream_chat_messages(where: {_and: [{stream_id: {_eq: $s}}, $where]}, order_by: {created_at: asc}) { content }
}"""


async def contents(gql: GQL, world: World, where: dict[str, Any], as_: str = "alice") -> list[str]:
    result = data(await gql(MESSAGES, {"s": world.public_stream, "where": where}, as_=as_))
    return [m["content"] for m in result["nchat_stream_chat_messages"]]


@pytest.mark.parametrize(("where", "expected"), [
    ({"content": {"_eq": "second"}}, ["second"]),
    ({"content": {"_neq": "second"}}, ["hello world", "Hello Bob", "be nice", "third one"]),
    ({"content": {"_in": ["second", "be nice"]}}, ["second", "be nice"]),
    ({"content": {"_nin": ["second", "be nice", "third one"]}}, ["hello world", "Hello Bob"]),
    ({"content": {"_like": "hello%"}}, ["hello world"]),
    ({"content": {"_ilike": "hello%"}}, ["hello world", "Hello Bob"]),
    ({"content": {"_nlike": "%e%"}}, ["third one"][:0]),
    ({"content": {"_nilike": "h%"}}, ["second", "be nice", "third one"]),
    ({"content": {"_similar": "(second|third)%"}}, ["second", "third one"]),
    ({"content": {"_regex": "^[A-Z]"}}, ["Hello Bob"]),
    ({"content": {"_iregex": "^h"}}, ["hello world", "Hello Bob"]),
    ({"content": {"_nregex": "o"}}, ["be nice"]),
    ({"pinned_at": {"_is_null": False}}, []),
    ({"is_pinned": {"_eq": True}}, ["be nice"]),
    ({"created_at": {"_gt": "now()"}}, []),
    ({"created_at": {"_lte": "now()"}, "content": {"_gte": "t"}}, ["third one"]),
    ({"created_at": {"_lt": "2000-01-01T00:00:00Z"}}, []),
    ({"_or": [{"content": {"_eq": "second"}}, {"content": {"_eq": "third one"}}]}, ["second", "third one"]),
    ({"_not": {"content": {"_ilike": "%o%"}}}, ["be nice"]),
    ({"_and": []}, ["hello world", "Hello Bob", "second", "be nice", "third one"]),
    ({"_or": []}, []),
    ({"user": {"display_name": {"_eq": "Alice"}}}, ["Hello Bob"]),
    ({"stream": {"status": {"_eq": "scheduled"}}, "user": {"display_name": {"_eq": "Mod"}}}, ["be nice"]),
])
async def test_operators_filter_rows(gql: GQL, cast: World, where: dict[str, Any], expected: list[str]) -> None:
    assert await contents(gql, cast, where) == expected


STREAMS = """query($c: [uuid!]!, $where: nchat_streams_bool_exp!) {
  nchat_streams(where: {_and: [{channel_id: {_in: $c}}, $where]}, order_by: {title: asc}) { title }
}"""


@pytest.mark.parametrize(("where", "expected"), [
    ({"metadata": {"_contains": {"mood": "calm"}}}, ["public stream"]),
    ({"metadata": {"_contained_in": {"mood": "calm", "n": 1, "x": 2}}}, ["private stream", "public stream"]),
    ({"metadata": {"_contained_in": {"mood": "calm"}}}, ["private stream"]),
    ({"metadata": {"_has_key": "mood"}}, ["public stream"]),
    ({"metadata": {"_has_keys_any": ["nope", "n"]}}, ["public stream"]),
    ({"metadata": {"_has_keys_all": ["mood", "nope"]}}, []),
    ({"tags": {"_contains": ["music"]}}, ["public stream"]),
    ({"tags": {"_contains": "{talk}"}}, ["private stream"]),
    ({"tags": {"_eq": ["music", "live"]}}, ["public stream"]),
    ({"language": {"_is_null": True}}, ["private stream"]),
    ({"total_views": {"_gte": 3, "_lt": 10}}, ["private stream"]),
    ({"chat_messages": {"content": {"_eq": "secret chat"}}}, ["private stream"]),
    ({"channel": {"is_private": {"_eq": False}}}, ["public stream"]),
])
async def test_json_array_and_relationship_filters(
    gql: GQL, cast: World, where: dict[str, Any], expected: list[str]
) -> None:
    channels = [cast.public_channel, cast.private_channel]
    result = data(await gql(STREAMS, {"c": channels, "where": where}, as_="alice"))
    assert [s["title"] for s in result["nchat_streams"]] == expected


async def test_nested_relationships_with_arguments_in_one_statement(app: Starlette, cast: World) -> None:
    query = """query($id: uuid!, $bob: uuid!) {
      nchat_streams_by_pk(id: $id) {
        title
        channel { slug owner { username } }
        broadcaster { display_name }
        chat_messages(order_by: {created_at: desc}, limit: 2, where: {user: {display_name: {_eq: "Bob"}}}) {
          content user { display_name }
        }
        latest: chat_messages(order_by: {created_at: desc}, limit: 1) { content }
        chat_messages_aggregate(where: {user_id: {_eq: $bob}}) { aggregate { count } }
        reactions_aggregate { aggregate { count max { position_x } } nodes { emoji } }
      }
    }"""
    ctx = Context(app.state.runtime, Claims.user(cast.alice))
    result = data(await execute(ctx, query, {"id": cast.public_stream, "bob": cast.bob}))
    stream = result["nchat_streams_by_pk"]
    assert stream["channel"]["owner"]["username"].startswith("alice_")
    assert stream["broadcaster"] == {"display_name": "Alice"}
    assert stream["chat_messages"] == [
        {"content": "third one", "user": {"display_name": "Bob"}},
        {"content": "second", "user": {"display_name": "Bob"}},
    ]
    assert stream["latest"] == [{"content": "third one"}]
    assert stream["chat_messages_aggregate"] == {"aggregate": {"count": 3}}
    assert stream["reactions_aggregate"]["aggregate"] == {"count": 3, "max": {"position_x": 30}}
    assert len(stream["reactions_aggregate"]["nodes"]) == 3
    assert ctx.statements == 1


async def test_two_root_fields_are_two_statements(app: Starlette, cast: World) -> None:
    ctx = Context(app.state.runtime, Claims.anonymous())
    result = data(await execute(ctx, "{ a: nchat_streams(limit: 1) { id } b: nchat_users(limit: 1) { username } }"))
    assert set(result) == {"a", "b"}
    assert ctx.statements == 2


async def test_ordering_directions_relationships_and_aggregates(gql: GQL, cast: World) -> None:
    q = """query($s: uuid!, $o: [nchat_stream_chat_messages_order_by!]) {
      nchat_stream_chat_messages(where: {stream_id: {_eq: $s}}, order_by: $o) { content } }"""

    async def order(o: Any) -> list[str]:
        rows = data(await gql(q, {"s": cast.public_stream, "o": o}, as_="bob"))["nchat_stream_chat_messages"]
        return [r["content"] for r in rows]

    assert await order({"created_at": "desc"}) == ["third one", "be nice", "second", "Hello Bob", "hello world"]
    assert await order([{"user": {"display_name": "asc"}}, {"created_at": "asc"}]) == [
        "Hello Bob", "hello world", "second", "third one", "be nice"]
    assert (await order([{"pinned_at": "asc_nulls_first"}, {"content": "desc"}]))[0] == "third one"
    assert (await order([{"is_pinned": "desc_nulls_last"}, {"content": "asc"}]))[0] == "be nice"
    channels = [cast.public_channel, cast.private_channel]
    by_count = data(await gql(
        """query($c: [uuid!]!) { nchat_streams(where: {channel_id: {_in: $c}},
             order_by: {chat_messages_aggregate: {count: desc}}) { title } }""", {"c": channels}, as_="alice"))
    assert [s["title"] for s in by_count["nchat_streams"]] == ["public stream", "private stream"]
    by_channel = data(await gql(
        """query($c: [uuid!]!) { nchat_streams(where: {channel_id: {_in: $c}},
             order_by: {channel: {name: desc}}) { title } }""", {"c": channels}, as_="alice"))
    assert [s["title"] for s in by_channel["nchat_streams"]] == ["public stream", "private stream"]


async def test_pagination_and_distinct_on(gql: GQL, cast: World) -> None:
    q = """query($s: uuid!, $limit: Int, $offset: Int) { nchat_stream_chat_messages(where: {stream_id: {_eq: $s}},
             order_by: {created_at: asc}, limit: $limit, offset: $offset) { content } }"""
    page = data(await gql(q, {"s": cast.public_stream, "limit": 2, "offset": 1}, as_="bob"))
    assert [m["content"] for m in page["nchat_stream_chat_messages"]] == ["Hello Bob", "second"]
    distinct = data(await gql(
        """query($s: uuid!) { nchat_stream_reactions(where: {stream_id: {_eq: $s}}, distinct_on: emoji,
             order_by: [{emoji: asc}, {position_x: desc}]) { emoji position_x } }""",
        {"s": cast.public_stream}, as_="bob"))["nchat_stream_reactions"]
    assert sorted((r["emoji"], r["position_x"]) for r in distinct) == [("❤️", 30), ("🔥", 20)]
    mismatch = await gql(
        """{ nchat_stream_reactions(distinct_on: emoji, order_by: {position_x: asc}) { emoji } }""", as_="bob")
    assert code(mismatch) == "validation-failed"
    assert "distinct_on" in mismatch["errors"][0]["message"]


async def test_aggregates(gql: GQL, cast: World) -> None:
    result = data(await gql("""query($s: uuid!) {
      nchat_stream_reactions_aggregate(where: {stream_id: {_eq: $s}}) {
        aggregate {
          count
          users: count(columns: [user_id], distinct: true)
          emojis: count(columns: emoji, distinct: true)
          sum { position_x } avg { position_x } min { position_x emoji } max { position_x }
        }
        nodes { emoji }
      }
    }""", {"s": cast.public_stream}, as_="bob"))["nchat_stream_reactions_aggregate"]
    agg = result["aggregate"]
    assert (agg["count"], agg["users"], agg["emojis"]) == (3, 2, 2)
    assert agg["sum"] == {"position_x": 60}
    assert agg["avg"] == {"position_x": 20}
    assert agg["min"]["position_x"] == 10 and agg["max"] == {"position_x": 30}
    assert len(result["nodes"]) == 3


async def test_by_pk_miss_is_null(gql: GQL) -> None:
    result = await gql('{ nchat_streams_by_pk(id: "00000000-0000-0000-0000-000000000000") { id } }', as_="bob")
    assert data(result) == {"nchat_streams_by_pk": None}


async def test_rows_outside_the_select_rule_are_absent(gql: GQL, cast: World) -> None:
    q = """query($c: [uuid!]!) { nchat_streams(where: {channel_id: {_in: $c}}) { title } }"""
    channels = {"c": [cast.public_channel, cast.private_channel]}
    assert len(data(await gql(q, channels, as_="alice"))["nchat_streams"]) == 2
    assert [s["title"] for s in data(await gql(q, channels, as_="carol"))["nchat_streams"]] == ["public stream"]
    assert [s["title"] for s in data(await gql(q, channels))["nchat_streams"]] == ["public stream"]
    assert len(data(await gql(q, channels, as_="admin"))["nchat_streams"]) == 2


async def test_stream_key_reads_per_role(gql: GQL, cast: World) -> None:
    q = """query($id: uuid!) { nchat_streams_by_pk(id: $id) { stream_key } }"""
    stream = {"id": cast.public_stream}
    assert data(await gql(q, stream, as_="alice"))["nchat_streams_by_pk"]["stream_key"] == cast.public_key
    assert data(await gql(q, stream, as_="bob"))["nchat_streams_by_pk"]["stream_key"] is None
    assert data(await gql(q, stream, as_="mod", role="moderator"))["nchat_streams_by_pk"]["stream_key"] is None
    assert data(await gql(q, stream, as_="admin"))["nchat_streams_by_pk"]["stream_key"] == cast.public_key
    anonymous = await gql(q, stream)
    assert code(anonymous) == "validation-failed"
    assert anonymous["errors"][0]["message"] == "field 'stream_key' not found in type: 'nchat_streams'"
    assert anonymous["errors"][0]["extensions"]["path"] == "$.selectionSet.nchat_streams_by_pk.selectionSet.stream_key"


async def test_columns_follow_grants(gql: GQL) -> None:
    assert code(await gql("{ nchat_users(limit: 1) { email } }")) == "validation-failed"
    # Nobody's email but your own (myEmail), and admins' (migration 0013).
    assert code(await gql("{ nchat_users(limit: 1) { email } }", as_="bob")) == "validation-failed"
    assert "nchat_users" in data(await gql("{ nchat_users(limit: 1) { email } }", as_="admin"))
    hidden_where = await gql('{ nchat_users(where: {email: {_eq: "x"}}) { id } }')
    assert code(hidden_where) == "validation-failed"
    # Tables a role holds no grant on do not exist for it.
    assert code(await gql("{ nchat_stream_bans { id } }")) == "validation-failed"


async def test_scalars_are_parsed_by_postgres(gql: GQL, cast: World) -> None:
    q = """query($s: uuid!, $t: timestamptz!, $n: numeric!) {
      nchat_stream_reactions(where: {stream_id: {_eq: $s}, created_at: {_lte: $t}, position_x: {_gt: $n}},
                             order_by: {position_x: asc}) { position_x } }"""
    rows = data(await gql(q, {"s": cast.public_stream, "t": "now()", "n": "15.5"}, as_="bob"))
    assert [r["position_x"] for r in rows["nchat_stream_reactions"]] == [20, 30]
    iso = data(await gql(q, {"s": cast.public_stream, "t": "2999-01-01 10:00:00+02", "n": 25}, as_="bob"))
    assert [r["position_x"] for r in iso["nchat_stream_reactions"]] == [30]
    bad = await gql(q, {"s": "not-a-uuid", "t": "now()", "n": 1}, as_="bob")
    assert code(bad) == "data-exception"
