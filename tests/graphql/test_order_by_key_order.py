"""Several columns in ONE order_by object sort in the order the client wrote them (as Hasura does).

graphql-core builds input objects in the schema's (sorted) field order, so without reading the
document `{is_pinned: desc, created_at: asc}` would sort by created_at first.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.graphql.conftest import GQL, data
from tests.support import World

pytestmark = pytest.mark.usefixtures("chat")

# The chat fixture's messages, oldest first; only "be nice" is pinned.
PINNED_FIRST = ["be nice", "hello world", "Hello Bob", "second", "third one"]
CHRONOLOGICAL = ["hello world", "Hello Bob", "second", "be nice", "third one"]

ROOT = """query($s: uuid!) { nchat_stream_chat_messages(where: {stream_id: {_eq: $s}}, order_by: %s) { content } }"""


def contents(rows: list[dict[str, Any]]) -> list[str]:
    return [r["content"] for r in rows]


async def test_literal_object_keeps_written_order(gql: GQL, cast: World) -> None:
    pinned = data(await gql(ROOT % "{is_pinned: desc, created_at: asc}", {"s": cast.public_stream}, as_="bob"))
    assert contents(pinned["nchat_stream_chat_messages"]) == PINNED_FIRST
    dated = data(await gql(ROOT % "{created_at: asc, is_pinned: desc}", {"s": cast.public_stream}, as_="bob"))
    assert contents(dated["nchat_stream_chat_messages"]) == CHRONOLOGICAL


async def test_variable_keeps_json_key_order(gql: GQL, cast: World) -> None:
    q = """query($s: uuid!, $o: [nchat_stream_chat_messages_order_by!]) {
      nchat_stream_chat_messages(where: {stream_id: {_eq: $s}}, order_by: $o) { content } }"""
    for order, expected in (({"is_pinned": "desc", "created_at": "asc"}, PINNED_FIRST),
                            ([{"is_pinned": "desc", "created_at": "asc"}], PINNED_FIRST),
                            ({"created_at": "asc", "is_pinned": "desc"}, CHRONOLOGICAL)):
        got = data(await gql(q, {"s": cast.public_stream, "o": order}, as_="bob"))
        assert contents(got["nchat_stream_chat_messages"]) == expected, order


async def test_nested_relationship_and_variable_default(gql: GQL, cast: World) -> None:
    q = """query($s: uuid!, $o: [nchat_stream_chat_messages_order_by!] = {is_pinned: desc, created_at: asc}) {
      nchat_streams_by_pk(id: $s) { chat_messages(order_by: $o) { content }
                                    literal: chat_messages(order_by: [{is_pinned: desc, created_at: asc}]) {
                                      content } } }"""
    got = data(await gql(q, {"s": cast.public_stream}, as_="bob"))["nchat_streams_by_pk"]
    assert contents(got["chat_messages"]) == PINNED_FIRST
    assert contents(got["literal"]) == PINNED_FIRST


async def test_object_relationship_order_keeps_written_order(gql: GQL, cast: World) -> None:
    """Keys inside a relationship's order object: user.username before created_at."""
    q = """query($s: uuid!) { nchat_stream_chat_messages(where: {stream_id: {_eq: $s}},
      order_by: {user: {username: desc}, created_at: desc}) { content user { username } } }"""
    rows = data(await gql(q, {"s": cast.public_stream}, as_="bob"))["nchat_stream_chat_messages"]
    names = [r["user"]["username"] for r in rows]
    assert names == sorted(names, reverse=True)
    # Within one user (bob: three messages) the newest comes first.
    bobs = [r["content"] for r in rows if r["user"]["username"] == rows[0]["user"]["username"]]
    assert len(rows) == 5 and bobs == sorted(bobs, key=CHRONOLOGICAL.index, reverse=True)
