"""Mutation roots: inserts with returning, upserts, _inc, updates, deletes, and their failures."""

from __future__ import annotations

import uuid

import pytest
from starlette.applications import Starlette

from nchat_live.auth import Claims
from nchat_live.db import Database
from nchat_live.graphql.context import Context
from nchat_live.graphql.execution import execute
from tests.graphql.conftest import GQL, code, data
from tests.support import World, set_live

pytestmark = pytest.mark.usefixtures("chat")


@pytest.fixture(scope="module", autouse=True)
async def on_air(db: Database, cast: World) -> None:
    """Chat inserts need a live stream (the insert rules of migration 0009)."""
    await set_live(db, cast.public_stream)

INSERT = """mutation($objects: [nchat_stream_chat_messages_insert_input!]!) {
  insert_nchat_stream_chat_messages(objects: $objects) {
    affected_rows returning { content user { display_name } stream { title } }
  }
}"""


async def test_insert_with_nested_returning_is_one_statement(app: Starlette, cast: World) -> None:
    ctx = Context(app.state.runtime, Claims.user(cast.bob))
    objects = [{"stream_id": cast.public_stream, "user_id": cast.bob, "content": c} for c in ("m1", "m2")]
    result = data(await execute(ctx, INSERT, {"objects": objects}))["insert_nchat_stream_chat_messages"]
    assert result["affected_rows"] == 2
    assert result["returning"] == [
        {"content": c, "user": {"display_name": "Bob"}, "stream": {"title": "public stream"}} for c in ("m1", "m2")
    ]
    assert ctx.statements == 1


async def test_insert_as_someone_else_is_a_permission_error(gql: GQL, cast: World) -> None:
    objects = [{"stream_id": cast.public_stream, "user_id": cast.alice, "content": "spoofed"}]
    result = await gql(INSERT, {"objects": objects}, as_="bob")
    assert code(result) == "permission-error"


async def test_insert_one_on_conflict_and_inc(gql: GQL, cast: World) -> None:
    q = """mutation($o: nchat_channel_members_insert_input!, $c: nchat_channel_members_on_conflict) {
      insert_nchat_channel_members_one(object: $o, on_conflict: $c) { role user { display_name } } }"""
    member = {"channel_id": cast.public_channel, "user_id": cast.carol, "role": "member"}
    first = data(await gql(q, {"o": member}, as_="alice"))
    assert first["insert_nchat_channel_members_one"] == {"role": "member", "user": {"display_name": "Carol"}}
    dup = await gql(q, {"o": member}, as_="alice")
    assert code(dup) == "constraint-violation"
    assert dup["errors"][0]["message"].startswith("Uniqueness violation.")
    upsert = {"constraint": "nchat_channel_members_channel_id_user_id_key", "update_columns": ["role"]}
    second = data(await gql(q, {"o": {**member, "role": "guest"}, "c": upsert}, as_="alice"))
    assert second["insert_nchat_channel_members_one"]["role"] == "guest"
    nothing = {**upsert, "update_columns": []}
    skipped = data(await gql(q, {"o": {**member, "role": "admin"}, "c": nothing}, as_="alice"))
    assert skipped["insert_nchat_channel_members_one"] is None
    # Counters are server-owned (issue 12); _inc works on a setting the broadcaster owns.
    inc = data(await gql(
        """mutation($id: uuid!) { update_nchat_streams_by_pk(pk_columns: {id: $id}, _inc: {slow_mode_seconds: 5},
             _set: {title: "renamed"}) { title slow_mode_seconds } }""", {"id": cast.private_stream}, as_="alice"))
    assert inc["update_nchat_streams_by_pk"]["title"] == "renamed"
    assert inc["update_nchat_streams_by_pk"]["slow_mode_seconds"] >= 5


async def test_update_where_many_and_rls(gql: GQL, cast: World) -> None:
    # Authors edit only the content (issue 12: moderation flags are server-owned).
    q = """mutation($s: uuid!) { update_nchat_stream_chat_messages(where: {stream_id: {_eq: $s},
             content: {_eq: "second"}}, _set: {content: "second!"}) { affected_rows returning { content } } }"""
    # bob wrote "second": he may edit it; carol may not (the row is outside her update rule).
    assert data(await gql(q, {"s": cast.public_stream}, as_="carol")) == {
        "update_nchat_stream_chat_messages": {"affected_rows": 0, "returning": []}}
    assert data(await gql(q, {"s": cast.public_stream}, as_="bob"))["update_nchat_stream_chat_messages"] == {
        "affected_rows": 1, "returning": [{"content": "second!"}]}
    many = data(await gql("""mutation($s: uuid!) { update_nchat_stream_chat_messages_many(updates: [
        {where: {stream_id: {_eq: $s}, content: {_eq: "second!"}}, _set: {content: "second"}},
        {where: {stream_id: {_eq: $s}, content: {_eq: "nothing"}}, _set: {content: "x"}}]) { affected_rows } }""",
        {"s": cast.public_stream}, as_="bob"))
    assert many == {"update_nchat_stream_chat_messages_many": [{"affected_rows": 1}, {"affected_rows": 0}]}


async def test_deletes(gql: GQL, cast: World) -> None:
    objects = [{"stream_id": cast.public_stream, "user_id": cast.bob}]
    # Reminders: the role may insert and delete its own.
    q = """mutation($o: [nchat_stream_reminders_insert_input!]!) { insert_nchat_stream_reminders(objects: $o) {
      affected_rows } }"""
    assert data(await gql(q, {"o": objects}, as_="bob")) == {"insert_nchat_stream_reminders": {"affected_rows": 1}}
    by_pk = """mutation($s: uuid!, $u: uuid!) { delete_nchat_stream_reminders_by_pk(stream_id: $s, user_id: $u) {
      user_id } }"""
    args = {"s": cast.public_stream, "u": cast.bob}
    assert data(await gql(by_pk, args, as_="bob")) == {"delete_nchat_stream_reminders_by_pk": {"user_id": cast.bob}}
    assert data(await gql(by_pk, args, as_="bob")) == {"delete_nchat_stream_reminders_by_pk": None}
    await gql(q, {"o": objects}, as_="bob")
    where = """mutation($s: uuid!) { delete_nchat_stream_reminders(where: {stream_id: {_eq: $s}}) {
      affected_rows returning { user_id } } }"""
    assert data(await gql(where, {"s": cast.public_stream}, as_="bob")) == {
        "delete_nchat_stream_reminders": {"affected_rows": 1, "returning": [{"user_id": cast.bob}]}}


async def test_anonymous_cannot_insert_viewer_rows(gql: GQL, cast: World) -> None:
    """Viewer sessions are written only by joinStream (issue 12): the insert is not in anonymous' schema."""
    q = """mutation($o: nchat_stream_viewers_insert_input!) { insert_nchat_stream_viewers(objects: [$o]) {
      affected_rows } }"""
    o = {"stream_id": cast.public_stream, "viewer_session_id": uuid.uuid4().hex, "ip_address": "10.0.0.1"}
    assert code(await gql(q, {"o": o})) == "validation-failed"


async def test_database_errors_map_to_hasura_codes(gql: GQL, cast: World) -> None:
    q = """mutation($o: nchat_stream_chat_messages_insert_input!) {
      insert_nchat_stream_chat_messages_one(object: $o) { id } }"""
    fk = await gql(q, {"o": {"stream_id": str(uuid.uuid4()), "user_id": cast.bob, "content": "x"}}, as_="admin")
    assert code(fk) == "constraint-violation" and fk["errors"][0]["message"].startswith("Foreign key violation.")
    check = await gql(q, {"o": {"stream_id": cast.public_stream, "user_id": cast.bob, "content": ""}}, as_="admin")
    assert code(check) == "permission-error"
    not_null = await gql(q, {"o": {"stream_id": cast.public_stream, "user_id": cast.bob, "content": None}},
                         as_="admin")
    assert code(not_null) == "constraint-violation"
    bad_uuid = await gql(q, {"o": {"stream_id": "nope", "user_id": cast.bob, "content": "x"}}, as_="bob")
    assert code(bad_uuid) == "data-exception"


async def test_a_failing_field_rolls_back_the_whole_mutation(gql: GQL, cast: World) -> None:
    q = """mutation($s: uuid!, $u: uuid!) {
      ok: insert_nchat_stream_chat_messages_one(object: {stream_id: $s, user_id: $u, content: "rolled back"}) { id }
      bad: insert_nchat_stream_chat_messages_one(object: {stream_id: $s, user_id: $u, content: ""}) { id }
    }"""
    result = await gql(q, {"s": cast.public_stream, "u": cast.bob}, as_="bob")
    assert code(result) == "validation-failed" and len(result["errors"]) == 1
    left = data(await gql("""query($s: uuid!) { nchat_stream_chat_messages_aggregate(where: {stream_id: {_eq: $s},
      content: {_eq: "rolled back"}}) { aggregate { count } } }""", {"s": cast.public_stream}, as_="bob"))
    assert left["nchat_stream_chat_messages_aggregate"]["aggregate"]["count"] == 0


async def test_scalar_inputs_as_hasura_accepts_them(gql: GQL, cast: World) -> None:
    q = """mutation($id: uuid!, $set: nchat_streams_set_input!) { update_nchat_streams_by_pk(pk_columns: {id: $id},
      _set: $set) { tags scheduled_at metadata } }"""
    literal = data(await gql(q, {"id": cast.private_stream, "set": {"tags": "{a,b}", "scheduled_at": "now()",
                                                                     "metadata": "text"}}, as_="alice"))
    row = literal["update_nchat_streams_by_pk"]
    assert row["tags"] == ["a", "b"] and row["metadata"] == "text" and row["scheduled_at"].startswith("20")
    listed = data(await gql(q, {"id": cast.private_stream, "set": {"tags": ["x, y", 'q"z'], "metadata": {"k": [1]}}},
                            as_="alice"))
    assert listed["update_nchat_streams_by_pk"]["tags"] == ["x, y", 'q"z']
    assert listed["update_nchat_streams_by_pk"]["metadata"] == {"k": [1]}
