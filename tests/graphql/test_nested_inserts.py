"""Nested inserts: object and array relationships inside X_insert_input, with RLS deciding.

One INSERT per relationship path (never per row), then one statement for the response; see
resolvers/hasura/nested.py for why not a single statement (RLS checks would not see the parents).
"""

from __future__ import annotations

import uuid
from typing import Any

from starlette.applications import Starlette

from nchat_live.auth import Claims
from nchat_live.graphql.context import Context
from nchat_live.graphql.execution import execute
from tests.graphql.conftest import GQL, code, data
from tests.support import World

CHANNEL = """mutation($o: nchat_channels_insert_input!) { insert_nchat_channels_one(object: $o) {
  slug members(order_by: {role: asc}) { role user { display_name } }
  streams(order_by: {title: asc}) { title reminders { user_id } } } }"""


def slug() -> str:
    return f"c-{uuid.uuid4().hex[:10]}"


async def channel_count(gql: GQL, s: str) -> int:
    q = """query($s: String!) { nchat_channels_aggregate(where: {slug: {_eq: $s}}) { aggregate { count } } }"""
    return int(data(await gql(q, {"s": s}, as_="admin"))["nchat_channels_aggregate"]["aggregate"]["count"])


async def test_three_levels_as_a_user_one_statement_per_level(app: Starlette, cast: World) -> None:
    """A private channel, its owner membership, two streams and their reminders: RLS of each level
    sees the rows of the levels before it (membership makes the channel and its streams readable)."""
    s = slug()
    obj: dict[str, Any] = {
        "name": "Carol's", "slug": s, "owner_id": cast.carol, "is_private": True,
        "members": {"data": [{"user_id": cast.carol, "role": "owner"}]},
        "streams": {"data": [
            {"title": t, "broadcaster_id": cast.carol, "reminders": {"data": [{"user_id": cast.carol}]}}
            for t in ("first", "second")]},
    }
    ctx = Context(app.state.runtime, Claims.user(cast.carol))
    got = data(await execute(ctx, CHANNEL, {"o": obj}))["insert_nchat_channels_one"]
    assert got == {"slug": s, "members": [{"role": "owner", "user": {"display_name": "Carol"}}],
                   "streams": [{"title": t, "reminders": [{"user_id": cast.carol}]} for t in ("first", "second")]}
    # channels, members, streams, reminders, then the response: not one per row.
    assert ctx.statements == 5


async def test_object_relationship_and_affected_rows(gql: GQL, cast: World) -> None:
    s = slug()
    q = """mutation($o: [nchat_channel_members_insert_input!]!) { insert_nchat_channel_members(objects: $o) {
      affected_rows returning { role channel { slug owner_id } } } }"""
    o = [{"user_id": cast.carol, "role": "owner",
          "channel": {"data": {"name": "via member", "slug": s, "owner_id": cast.carol}}}]
    got = data(await gql(q, {"o": o}, as_="carol"))["insert_nchat_channel_members"]
    # Hasura counts the nested rows too: the channel and the membership.
    assert got == {"affected_rows": 2, "returning": [{"role": "owner", "channel": {"slug": s,
                                                                                  "owner_id": cast.carol}}]}
    # Without returning: no response statement, the count still covers every level.
    q2 = """mutation($o: [nchat_channels_insert_input!]!) { insert_nchat_channels(objects: $o) { affected_rows } }"""
    two = [{"name": "n", "slug": slug(), "owner_id": cast.carol,
            "members": {"data": [{"user_id": cast.carol, "role": "owner"}]}} for _ in range(2)]
    assert data(await gql(q2, {"o": two}, as_="carol")) == {"insert_nchat_channels": {"affected_rows": 4}}


async def test_on_conflict_inside_nested_inserts(gql: GQL, cast: World) -> None:
    s = slug()
    q = """mutation($o: nchat_channel_members_insert_input!) { insert_nchat_channel_members_one(object: $o) {
      role channel { name } } }"""

    def member(name: str, role: str) -> dict[str, Any]:
        return {"user_id": cast.carol, "role": role, "channel": {
            "data": {"name": name, "slug": s, "owner_id": cast.carol},
            "on_conflict": {"constraint": "nchat_channels_slug_key", "update_columns": ["name"]}}}

    assert data(await gql(q, {"o": member("v1", "owner")}, as_="carol"))["insert_nchat_channel_members_one"] == {
        "role": "owner", "channel": {"name": "v1"}}
    upsert = {"constraint": "nchat_channel_members_channel_id_user_id_key", "update_columns": ["role"]}
    again = """mutation($o: nchat_channel_members_insert_input!, $c: nchat_channel_members_on_conflict) {
      insert_nchat_channel_members_one(object: $o, on_conflict: $c) { role channel { name } } }"""
    # The owner stays owner (issue 12: an owner is demoted only by transferring ownership).
    got = data(await gql(again, {"o": member("v2", "owner"), "c": upsert}, as_="carol"))
    assert got["insert_nchat_channel_members_one"] == {"role": "owner", "channel": {"name": "v2"}}
    assert await channel_count(gql, s) == 1


async def test_rls_refusal_stores_nothing(gql: GQL, cast: World) -> None:
    """bob makes a channel and adds carol as its owner: the membership policy refuses (bob holds no
    role in the new channel yet), and the channel inserted before it is rolled back too."""
    s = slug()
    obj = {"name": "bob's", "slug": s, "owner_id": cast.bob,
           "members": {"data": [{"user_id": cast.carol, "role": "owner"}]}}
    assert code(await gql(CHANNEL, {"o": obj}, as_="bob")) == "permission-error"
    assert await channel_count(gql, s) == 0


async def test_refused_by_the_schema(gql: GQL, cast: World) -> None:
    # Channel subscriptions are not insertable by users: the relationship is absent from the input (as Hasura).
    s = slug()
    obj = {"name": "x", "slug": s, "owner_id": cast.carol, "subscriptions": {"data": [{"user_id": cast.carol}]}}
    assert code(await gql(CHANNEL, {"o": obj}, as_="carol")) == "validation-failed"
    # The relationship sets the key: giving it as well is an error.
    obj = {"name": "x", "slug": s, "owner_id": cast.carol,
           "members": {"data": [{"user_id": cast.carol, "role": "owner", "channel_id": cast.public_channel}]}}
    assert code(await gql(CHANNEL, {"o": obj}, as_="carol")) == "validation-failed"
    assert await channel_count(gql, s) == 0


async def test_returning_without_affected_rows(gql: GQL, cast: World) -> None:
    q = """mutation($o: [nchat_channels_insert_input!]!) { insert_nchat_channels(objects: $o) {
      returning { slug members { role } } } }"""
    slugs = [slug(), slug()]
    owner = {"data": [{"user_id": cast.carol, "role": "owner"}]}
    o = [{"name": "n", "slug": s, "owner_id": cast.carol, "members": owner} for s in slugs]
    assert data(await gql(q, {"o": o}, as_="carol")) == {"insert_nchat_channels": {"returning": [
        {"slug": s, "members": [{"role": "owner"}]} for s in slugs]}}
