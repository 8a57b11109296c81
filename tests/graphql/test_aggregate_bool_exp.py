"""Filtering by array-relationship aggregates: `where: {chat_messages_aggregate: {count: {...}}}`."""

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

# The chat fixture: the public stream has 5 messages (bob 3, alice 1, mod 1; one pinned), the
# private one 1 (alice's).
# Limited to this cast's two streams: other tests' public streams share the database.
Q = """query($agg: nchat_stream_chat_messages_aggregate_bool_exp!, $ids: [uuid!]!) {
  nchat_streams(where: {id: {_in: $ids}, chat_messages_aggregate: $agg}) { id } }"""


async def matching(gql: GQL, agg: dict[str, Any], cast: World, as_: str = "alice") -> set[str]:
    ids = [cast.public_stream, cast.private_stream]
    return {r["id"] for r in data(await gql(Q, {"agg": agg, "ids": ids}, as_=as_))["nchat_streams"]}


async def test_count_predicate_filter_and_distinct(gql: GQL, cast: World) -> None:
    both = {cast.public_stream, cast.private_stream}
    by_bob = {"user_id": {"_eq": cast.bob}}
    assert await matching(gql, {"count": {"predicate": {"_gt": 3}}}, cast) == {cast.public_stream}
    assert await matching(gql, {"count": {"predicate": {"_gte": 1}}}, cast) == both
    assert await matching(gql, {"count": {"predicate": {"_eq": 3}, "filter": by_bob}}, cast) == {cast.public_stream}
    assert await matching(gql, {"count": {"predicate": {"_in": [0, 1]}, "filter": by_bob}}, cast) == {
        cast.private_stream}
    distinct = {"count": {"arguments": ["user_id"], "distinct": True, "predicate": {"_eq": 3}}}
    assert await matching(gql, distinct, cast) == {cast.public_stream}
    every = {"count": {"arguments": ["user_id"], "predicate": {"_eq": 5}}}
    assert await matching(gql, every, cast) == {cast.public_stream}


async def test_bool_and_bool_or(gql: GQL, cast: World) -> None:
    pinned = {"bool_or": {"arguments": "is_pinned", "predicate": {"_eq": True}}}
    assert await matching(gql, pinned, cast) == {cast.public_stream}
    kept = {"bool_and": {"arguments": "is_deleted", "predicate": {"_eq": False},
                         "filter": {"content": {"_ilike": "%hello%"}}}}
    assert await matching(gql, kept, cast) == {cast.public_stream}


async def test_literal_nested_and_one_statement(app: Starlette, cast: World) -> None:
    """In a literal, under _not, and inside a relationship's own where; still one statement."""
    q = """query { nchat_channels(where: {streams: {chat_messages_aggregate: {count: {predicate: {_gt: 3}}}}}) {
        id streams(where: {_not: {chat_messages_aggregate: {count: {predicate: {_gt: 3}}}}}) { id } } }"""
    ctx = Context(app.state.runtime, Claims.user(cast.alice))
    got = data(await execute(ctx, q))["nchat_channels"]
    # Other modules' channels share the database (and may have chatty streams): this cast's only.
    ours = [c for c in got if c["id"] in (cast.public_channel, cast.private_channel)]
    assert ours == [{"id": cast.public_channel, "streams": []}]
    assert ctx.statements == 1


async def test_rls_decides_what_is_counted(gql: GQL, cast: World) -> None:
    """bob cannot read the private stream's chat: for him it is not there to count."""
    q = """query($u: uuid!) { nchat_users(where: {id: {_eq: $u},
      stream_chat_messages_aggregate: {count: {predicate: {_eq: 2}}}}) { id } }"""
    # alice wrote one public and one private message.
    assert data(await gql(q, {"u": cast.alice}, as_="alice")) == {"nchat_users": [{"id": cast.alice}]}
    assert data(await gql(q, {"u": cast.alice}, as_="bob")) == {"nchat_users": []}


async def test_refusals(gql: GQL) -> None:
    # predicate is required; bool_and names one boolean column.
    assert code(await gql("query { nchat_streams(where: {chat_messages_aggregate: {count: {}}}) { id } }",
                          as_="bob")) == "validation-failed"
    assert code(await gql("""query { nchat_streams(where: {chat_messages_aggregate: {bool_and: {
      arguments: content, predicate: {_eq: true}}}}) { id } }""", as_="bob")) == "validation-failed"
