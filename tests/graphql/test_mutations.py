"""Mutation roots: inserts with returning, upserts, _inc, updates, deletes, and their failures."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from starlette.applications import Starlette

from nchat_live.auth import Claims
from nchat_live.db import Database
from nchat_live.graphql import execution
from nchat_live.graphql.context import Context
from nchat_live.graphql.execution import execute
from nchat_live.graphql.operations import ONE_STATEMENT_MUTATIONS
from nchat_live.resolvers import automod, moderation
from tests.graphql.conftest import GQL, code, data
from tests.support import World, make_world, set_live

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


# The direct path of graphql/direct.py against graphql-core's executor: the same documents, the same bytes.
_WAIT = re.compile(rb"wait \d+(\.\d+)? s|\"retryAfterSeconds\":\d+(\.\d+)?")


async def _post(client: httpx.AsyncClient, world: World, query: str, variables: Any, as_: str) -> bytes:
    token = world.token(getattr(world, as_))
    response = await client.post("/v1/graphql", json={"query": query, "variables": variables},
                                 headers={"authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    return response.content


async def _both_ways(client: httpx.AsyncClient, world: World, monkeypatch: pytest.MonkeyPatch, query: str,
                     variables: Any, as_: str, *, direct: bool = True) -> tuple[bytes, bytes]:
    """The answer by the direct path (asserting it took it, or not when `direct` is False), then by the
    executor."""
    calls: list[str] = []
    run_direct = execution.run_direct

    async def counted(*args: Any) -> Any:
        calls.append(query)
        return await run_direct(*args)

    with monkeypatch.context() as m:
        m.setattr(execution, "run_direct", counted)
        first = await _post(client, world, query, variables, as_)
    assert calls == ([query] if direct else [])
    with monkeypatch.context() as m:
        m.setattr(execution, "plan_for_direct", lambda schema, operation: None)
        second = await _post(client, world, query, variables, as_)
    return first, second


SEND_ALL = """mutation($s: ID!, $c: String!) { sendChatMessage(streamId: $s, content: $c) {
  id streamId userId content isPinned pinnedAt isDeleted deletedAt createdAt status } }"""


async def test_direct_mutations_answer_as_the_executor(
        client: httpx.AsyncClient, db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    world = await make_world(db)
    await set_live(db, world.public_stream)
    counted = {"operation": "sendChatMessage", "outcome": "ok"}
    ok = REGISTRY.get_sample_value("nchat_graphql_operations_total", counted) or 0.0
    # Every field: the same keys, order and serialisation; the ids and times are the rows' own.
    first, second = await _both_ways(client, world, monkeypatch, SEND_ALL,
                                     {"s": world.public_stream, "c": "  all\x00 fields "}, "bob")
    assert REGISTRY.get_sample_value("nchat_graphql_operations_total", counted) == ok + 2  # counted both ways
    a, b = json.loads(first)["data"]["sendChatMessage"], json.loads(second)["data"]["sendChatMessage"]
    assert a["id"] != b["id"] and a["content"] == "all fields"
    assert first.replace(a["id"].encode(), b"ID").replace(a["createdAt"].encode(), b"AT") == \
        second.replace(b["id"].encode(), b"ID").replace(b["createdAt"].encode(), b"AT")
    async with db.session(Claims.service()) as s:
        created = await s.fetchval("SELECT created_at FROM nchat_stream_chat_messages WHERE id = $1", a["id"])
    assert a["createdAt"] == created.isoformat()
    # Callers of their own for the documents that send twice (5 messages per 10 s each).
    other = await make_world(db)
    cases: list[tuple[str, Any, str, bool]] = [
        # aliases and __typename
        ("mutation($s: ID!) { m: sendChatMessage(streamId: $s, content: \"hi\") { __typename t: __typename "
         "c: content status isDeleted pinnedAt } }", {"s": world.public_stream}, "carol", True),
        # a literal argument, no variables
        (f"mutation {{ sendChatMessage(streamId: \"{world.public_stream}\", content: \"lit\") {{ content }} }}",
         None, "mod", True),
        ("mutation($s: ID!, $e: String!) { sendReaction(streamId: $s, emoji: $e, positionX: 1.5) "
         "{ __typename emoji positionX positionY streamId } }", {"s": world.public_stream, "e": "🔥"}, "bob", True),
        # variables missing, of the wrong type, null for a non-null one
        ("mutation($s: ID!, $c: String!) { sendChatMessage(streamId: $s, content: $c) { content } }",
         {"s": world.public_stream}, "bob", True),
        ("mutation($s: ID!, $c: String!) { sendChatMessage(streamId: $s, content: $c) { content } }",
         {"s": world.public_stream, "c": 12}, "bob", True),
        ("mutation($s: ID!, $c: String!) { sendChatMessage(streamId: $s, content: $c) { content } }",
         {"s": None, "c": "x"}, "bob", True),
        # refusals of the resolver and of the insert rules
        ("mutation($s: ID!) { sendChatMessage(streamId: $s, content: \"x\") { content } }",
         {"s": "not-a-uuid"}, "bob", True),
        ("mutation($s: ID!) { sendChatMessage(streamId: $s, content: \"x\") { content } }",
         {"s": world.private_stream}, "carol", True),  # not readable: stream-not-found
        ("mutation($s: ID!) { sendChatMessage(streamId: $s, content: \"x\") { content } }",
         {"s": world.private_stream}, "alice", True),  # not live
        ("mutation($s: ID!) { sendChatMessage(streamId: $s, content: \"   \") { content } }",
         {"s": world.public_stream}, "bob", True),  # empty once cleaned
        # validation: both paths share it; the executor serves what the direct path does not plan
        ("mutation($s: ID!) { sendChatMessage(streamId: $s, content: \"x\") { nope } }",
         {"s": world.public_stream}, "bob", False),
        ("mutation($s: ID!) { sendChatMessage(streamId: $s) { content } }", {"s": world.public_stream}, "bob", False),
        ("mutation($s: ID!) { a: sendChatMessage(streamId: $s, content: \"a\") { content } "
         "b: sendChatMessage(streamId: $s, content: \"b\") { content } }", {"s": world.public_stream},
         "other.bob", False),
        ("mutation($s: ID!) { sendChatMessage(streamId: $s, content: \"f\") { ...F } } "
         "fragment F on ChatMessage { content }", {"s": world.public_stream}, "other.carol", False),
        ("mutation($s: ID!) { sendChatMessage(streamId: $s, content: \"d\") { content @include(if: true) } }",
         {"s": world.public_stream}, "other.mod", False),
    ]
    for query, variables, as_, direct in cases:
        caller = (other, as_.removeprefix("other.")) if as_.startswith("other.") else (world, as_)
        first, second = await _both_ways(client, caller[0], monkeypatch, query, variables, caller[1], direct=direct)
        assert first == second, query
    # The rules of the channel and the chat: a ban, a blocked term, the rate limit.
    async with db.session(Claims.user(world.alice)) as s:
        await moderation.ban_user(s, world.public_stream, world.carol, "spam")
        await automod.add_blocked_term(s, world.public_channel, "badword")
    send = "mutation($s: ID!, $c: String!) { sendChatMessage(streamId: $s, content: $c) { content } }"
    banned = await _both_ways(client, world, monkeypatch, send, {"s": world.public_stream, "c": "hi"}, "carol")
    assert banned[0] == banned[1] and json.loads(banned[0])["errors"][0]["extensions"]["code"] == "banned"
    blocked = await _both_ways(client, world, monkeypatch, send, {"s": world.public_stream, "c": "a BADWORD"}, "bob")
    assert blocked[0] == blocked[1] and json.loads(blocked[0])["errors"][0]["extensions"]["code"] == "blocked-term"
    for i in range(6):
        await _post(client, world, send, {"s": world.public_stream, "c": f"flood {i}"}, "mod")
    limited = await _both_ways(client, world, monkeypatch, send, {"s": world.public_stream, "c": "more"}, "mod")
    # The wait it quotes is the time left, which moves between the two requests.
    assert _WAIT.sub(b"W", limited[0]) == _WAIT.sub(b"W", limited[1])
    assert json.loads(limited[0])["errors"][0]["extensions"]["code"] == "rate-limited"


async def test_send_chat_message_commits_in_its_statements_round_trip(
        app: Starlette, client: httpx.AsyncClient, db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """Once its statement has earned a function (Database.write_once), sendChatMessage (and sendReaction)
    opens no session (set-up, statement, COMMIT): one call commits it, and its event is published after
    that, once; a refused send publishes nothing and writes nothing."""
    world = await make_world(db)
    await set_live(db, world.public_stream)
    database: Database = app.state.runtime.database
    opened: list[Claims] = []
    published: list[tuple[str, dict[str, Any]]] = []
    session, publisher = database.session, database.publisher
    assert publisher is not None

    def counted(claims: Claims, **kwargs: Any) -> Any:
        if not claims.is_admin:  # the app's own background sessions (the scheduler's duties) are not sends
            opened.append(claims)
        return session(claims, **kwargs)

    async def kept(topic: str, payload: dict[str, Any]) -> None:
        published.append((topic, payload))
        await publisher(topic, payload)

    live = app.state.runtime.live
    signal = live.signal
    signalled: list[list[str]] = []

    def spied(tables: Any) -> None:  # the engine's own method still runs: only the calls are kept
        signalled.append(list(tables))
        signal(tables)

    monkeypatch.setattr(database, "session", counted)
    monkeypatch.setattr(database, "publisher", kept)
    monkeypatch.setattr(live, "signal", spied)
    send = "mutation($s: ID!, $c: String!) { sendChatMessage(streamId: $s, content: $c) { id content } }"
    answers = [json.loads(await _post(client, world, send, {"s": world.public_stream, "c": f"once {i}"}, "bob"))
               for i in range(5)]
    sent = [a["data"]["sendChatMessage"] for a in answers]
    assert [m["content"] for m in sent] == [f"once {i}" for i in range(5)]
    assert len(opened) < 3  # the statement's first sightings only (READER_AFTER); none from then on
    assert [(t, p["id"]) for t, p in published if t == "chat.message"] == [("chat.message", m["id"]) for m in sent]
    # Each committed send signals its tables' live queries itself (migration 0031), once.
    assert signalled == [list(ONE_STATEMENT_MUTATIONS["sendChatMessage"])] * 5
    async with db.session(Claims.service()) as s:
        stored = await s.fetch("SELECT id::text FROM nchat_stream_chat_messages WHERE stream_id = $1 AND "
                               "content LIKE 'once %'", world.public_stream)
    assert sorted(r["id"] for r in stored) == sorted(m["id"] for m in sent)
    # The sixth within the window: refused by the insert rules, nothing published or written.
    published.clear()
    refused = json.loads(await _post(client, world, send, {"s": world.public_stream, "c": "once more"}, "bob"))
    assert refused["errors"][0]["extensions"]["code"] == "rate-limited" and "data" not in refused
    assert published == [] and len(opened) < 3 and len(signalled) == 5
    async with db.session(Claims.service()) as s:
        assert await s.fetchval("SELECT count(*) FROM nchat_stream_chat_messages WHERE content = 'once more'") == 0
    # sendReaction: the same, its insert's rules included (the emoji normalised by its trigger).
    opened.clear()
    published.clear()
    signalled.clear()
    react = "mutation($s: ID!, $e: String!) { sendReaction(streamId: $s, emoji: $e, positionX: 50) { id emoji } }"
    reacted = [json.loads(await _post(client, world, react, {"s": world.public_stream, "e": "🔥"}, "bob"))
               ["data"]["sendReaction"] for _ in range(5)]
    assert [r["emoji"] for r in reacted] == ["🔥"] * 5 and len(opened) < 3
    assert [(t, p["id"], p["position_x"]) for t, p in published] == [("reaction", r["id"], 50.0) for r in reacted]
    assert signalled == [list(ONE_STATEMENT_MUTATIONS["sendReaction"])] * 5
    wrong = json.loads(await _post(client, world, react, {"s": world.public_stream, "e": "x"}, "bob"))
    assert wrong["errors"][0]["extensions"]["code"] == "invalid-emoji" and len(published) == 5
    hidden = json.loads(await _post(client, world, react, {"s": world.private_stream, "e": "🔥"}, "carol"))
    assert hidden["errors"][0]["extensions"]["code"] == "stream-not-found" and len(published) == 5
    assert len(signalled) == 5  # a refused or hidden send changed nothing, so signals nothing
