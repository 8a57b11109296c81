"""Issue 12, the data side: each attack replayed through the table API (and the domain) by the owner
(alice), a channel moderator (mod), an ordinary user (bob), an attacker with her own channel and stream
(carol) and anonymous. Each test failed on the code before migration 0011."""

from __future__ import annotations

import secrets
import uuid
from typing import Any

import pytest

from nchat_live.auth import Claims
from nchat_live.db import Database
from nchat_live.errors import NchatError
from nchat_live.resolvers import chat, qa, streams, viewers
from tests.graphql.conftest import GQL, app, client, code, data  # noqa: F401 - fixtures
from tests.support import World, set_live


@pytest.fixture
def gql(client: Any, world: World) -> GQL:  # noqa: F811
    return GQL(client, world)


async def attacker_stream(db: Database, w: World) -> tuple[str, str]:
    """carol's own channel and live stream."""
    async with db.session(Claims.service()) as s:
        channel = str(await s.fetchval("INSERT INTO nchat_channels (name, slug, owner_id) VALUES ('evil', $1, $2) "
                                       "RETURNING id", f"evil-{uuid.uuid4().hex[:8]}", w.carol))
        await s.fetchval("INSERT INTO nchat_channel_members (channel_id, user_id, role) VALUES ($1, $2, 'owner') "
                         "RETURNING id", channel, w.carol)
        stream = str(await s.fetchval("INSERT INTO nchat_streams (channel_id, broadcaster_id, title, status) "
                                      "VALUES ($1, $2, 'evil', 'live') RETURNING id", channel, w.carol))
    return channel, stream


async def service(db: Database, sql: str, *args: Any) -> Any:
    async with db.session(Claims.service()) as s:
        return await s.fetchval(sql, *args)


BAN = """mutation($o: nchat_stream_bans_insert_input!) { insert_nchat_stream_bans_one(object: $o) { id banned_by } }"""
CHAT = """mutation($s: uuid!, $c: String!) { insert_nchat_stream_chat_messages_one(object: {stream_id: $s,
  content: $c}) { id user_id } }"""


# --- case 2: bans ------------------------------------------------------------------------------------

async def test_a_ban_cannot_name_another_channel(db: Database, world: World, gql: GQL) -> None:
    _, evil = await attacker_stream(db, world)
    await set_live(db, world.public_stream)
    for target in (world.alice, world.bob):
        got = await gql(BAN, {"o": {"stream_id": evil, "channel_id": world.public_channel, "user_id": target}},
                        as_="carol")
        assert code(got) in ("validation-failed", "permission-error")
    assert await service(db, "SELECT count(*) FROM nchat_stream_bans WHERE channel_id = $1", world.public_channel) == 0
    assert data(await gql(CHAT, {"s": world.public_stream, "c": "still here"}, as_="alice"))


async def test_only_channel_moderators_ban_channel_wide(db: Database, world: World, gql: GQL) -> None:
    await attacker_stream(db, world)
    got = await gql(BAN, {"o": {"channel_id": world.public_channel, "user_id": world.bob}}, as_="carol")
    assert code(got) == "permission-error"
    named = {"channel_id": world.public_channel, "user_id": world.bob, "banned_by": world.alice}
    ok = data(await gql(BAN, {"o": named}, as_="mod"))
    assert ok["insert_nchat_stream_bans_one"]["banned_by"] == world.mod  # preset: the caller, not who was named


@pytest.mark.parametrize("scope", ["stream", "channel"])
async def test_the_owner_and_broadcaster_cannot_be_banned_in_their_channel(
    db: Database, world: World, gql: GQL, scope: str
) -> None:
    obj = {"stream_id": world.public_stream} if scope == "stream" else {"channel_id": world.public_channel}
    got = await gql(BAN, {"o": {**obj, "user_id": world.alice}}, as_="mod")
    assert code(got) == "validation-failed"
    assert await service(db, "SELECT count(*) FROM nchat_stream_bans WHERE user_id = $1", world.alice) == 0


async def test_a_stream_ban_does_not_reach_the_rest_of_the_channel(db: Database, world: World, gql: GQL) -> None:
    """A ban naming a stream of the channel (with the channel) is checked like a stream ban elsewhere."""
    await set_live(db, world.public_stream)
    data(await gql(BAN, {"o": {"stream_id": world.public_stream, "user_id": world.bob}}, as_="mod"))
    assert code(await gql(CHAT, {"s": world.public_stream, "c": "hi"}, as_="bob")) == "banned"


# --- case 3: messages --------------------------------------------------------------------------------

UNDO = """mutation($id: uuid!, $by: uuid!) { update_nchat_stream_chat_messages_by_pk(pk_columns: {id: $id},
  _set: {is_deleted: false, is_pinned: true, pinned_by: $by}) { id } }"""
EDIT = """mutation($id: uuid!, $c: String!) { update_nchat_stream_chat_messages_by_pk(pk_columns: {id: $id},
  _set: {content: $c}) { id content } }"""


async def _deleted_message(db: Database, world: World) -> str:
    await set_live(db, world.public_stream)
    async with db.session(Claims.user(world.bob)) as s:
        message = await chat.send_chat_message(s, world.public_stream, "something nasty")
    async with db.session(Claims.user(world.mod)) as s:
        await chat.delete_chat_message(s, message["id"])
    return str(message["id"])


async def test_the_author_cannot_undo_moderation(db: Database, world: World, gql: GQL) -> None:
    mid = await _deleted_message(db, world)
    assert code(await gql(UNDO, {"id": mid, "by": world.alice}, as_="bob")) == "validation-failed"
    # Editing a deleted message finds no row.
    edited = data(await gql(EDIT, {"id": mid, "c": "back"}, as_="bob"))
    assert edited == {"update_nchat_stream_chat_messages_by_pk": None}
    assert await service(db, "SELECT is_deleted AND NOT is_pinned AND content = '' FROM nchat_stream_chat_messages "
                             "WHERE id = $1", mid) is True


@pytest.mark.parametrize("actor", ["mod", "alice", "carol"])
async def test_nobody_sets_moderation_flags_through_the_table_api(db: Database, world: World, gql: GQL,
                                                                  actor: str) -> None:
    mid = await _deleted_message(db, world)
    assert code(await gql(UNDO, {"id": mid, "by": world.alice}, as_=actor)) == "validation-failed"


async def test_deleted_content_is_hidden_on_every_path(db: Database, world: World, gql: GQL) -> None:
    mid = await _deleted_message(db, world)
    for who in (None, "bob", "carol", "alice"):
        got = data(await gql("""query($id: uuid!, $s: uuid!) { nchat_stream_chat_messages_by_pk(id: $id) { content }
          nchat_stream_chat_messages(where: {stream_id: {_eq: $s}}) { content }
          nchat_stream_chat_messages_aggregate(where: {stream_id: {_eq: $s}}) { aggregate { max { content } } }
          }""", {"id": mid, "s": world.public_stream}, as_=who))
        assert got["nchat_stream_chat_messages_by_pk"]["content"] == ""
        assert all("nasty" not in m["content"] for m in got["nchat_stream_chat_messages"])
        assert "nasty" not in (got["nchat_stream_chat_messages_aggregate"]["aggregate"]["max"]["content"] or "")
    async with db.session(Claims.anonymous()) as s:
        history = await chat.chat_history(s, world.public_stream)
    assert all("nasty" not in m["content"] for m in history["messages"])
    found = await gql("""query($s: uuid!) { nchat_stream_chat_messages(where: {stream_id: {_eq: $s},
      content: {_ilike: "%nasty%"}}) { id } }""", {"s": world.public_stream})
    assert data(found) == {"nchat_stream_chat_messages": []}  # not even searchable


async def test_a_banned_author_cannot_edit(db: Database, world: World, gql: GQL) -> None:
    await set_live(db, world.public_stream)
    sent = data(await gql(CHAT, {"s": world.public_stream, "c": "fine"}, as_="bob"))
    mid = sent["insert_nchat_stream_chat_messages_one"]["id"]
    data(await gql(BAN, {"o": {"stream_id": world.public_stream, "user_id": world.bob}}, as_="mod"))
    assert code(await gql(EDIT, {"id": mid, "c": "now rude"}, as_="bob")) == "banned"
    assert await service(db, "SELECT content FROM nchat_stream_chat_messages WHERE id = $1", mid) == "fine"


# --- case 4: stream rows -----------------------------------------------------------------------------

SET_STREAM = """mutation($id: uuid!, $set: nchat_streams_set_input!) { update_nchat_streams_by_pk(
  pk_columns: {id: $id}, _set: $set) { id } }"""


@pytest.mark.parametrize(("actor", "changes"), [
    ("mod", {"stream_key": "attacker-key-attacker-key-attacker-key"}),
    ("alice", {"status": "live", "current_viewers": 999999}),
    ("alice", {"hls_manifest_url": "https://evil.example/x.m3u8"}),
    ("alice", {"recording_url": "https://evil.example/r.m3u8"}),
    ("alice", {"started_at": "2001-01-01T00:00:00Z"}),
    ("alice", {"total_views": 1}),
    ("carol", {"title": "pwned"}),
])
async def test_stream_server_state_is_not_writable(db: Database, world: World, gql: GQL, actor: str,
                                                  changes: dict[str, Any]) -> None:
    before = await service(db, "SELECT row_to_json(s)::text FROM nchat_streams s WHERE id = $1", world.public_stream)
    got = await gql(SET_STREAM, {"id": world.public_stream, "set": changes}, as_=actor)
    if "errors" not in got:
        assert got["data"]["update_nchat_streams_by_pk"] is None
    else:
        assert code(got) in ("validation-failed", "permission-error")
    assert await service(db, "SELECT row_to_json(s)::text FROM nchat_streams s WHERE id = $1",
                         world.public_stream) == before


async def test_an_ended_stream_cannot_be_revived(db: Database, world: World, gql: GQL) -> None:
    await set_live(db, world.public_stream)
    async with db.session(Claims.user(world.alice)) as s:
        await streams.end_stream(s, world.public_stream)
    assert code(await gql(SET_STREAM, {"id": world.public_stream, "set": {"status": "live"}}, as_="alice")) \
        == "validation-failed"
    with pytest.raises(NchatError) as info:
        async with db.session(Claims.user(world.alice)) as s:
            await s.fetch("SELECT id FROM nchat.stream_transition($1, 'live', NULL)", world.public_stream)
    assert info.value.code == "invalid-transition"
    assert code(await gql(CHAT, {"s": world.public_stream, "c": "hello?"}, as_="bob")) == "stream-not-live"


async def test_a_channel_moderator_cannot_take_the_key(db: Database, world: World, gql: GQL) -> None:
    with pytest.raises(NchatError) as info:
        async with db.session(Claims.user(world.mod)) as s:
            await s.fetchval("SELECT nchat.stream_rotate_key($1, $2)", world.public_stream, "k" * 40) \
                or (_ for _ in ()).throw(NchatError("refused", code="permission-error"))
    assert info.value.code == "permission-error"
    assert await service(db, "SELECT stream_key FROM nchat_streams WHERE id = $1", world.public_stream) == \
        world.public_key


async def test_hasura_clients_still_create_a_stream_with_their_key(db: Database, world: World, gql: GQL) -> None:
    key = secrets.token_urlsafe(32)
    q = """mutation($c: uuid!, $k: String!) { insert_nchat_streams_one(object: {channel_id: $c, title: "mine",
      stream_key: $k}) { id broadcaster_id stream_key } }"""
    created = data(await gql(q, {"c": world.public_channel, "k": key}, as_="bob"))["insert_nchat_streams_one"]
    assert created["stream_key"] == key and created["broadcaster_id"] == world.bob  # preset
    read = """query($id: uuid!) { nchat_streams_by_pk(id: $id) { stream_key } }"""
    for who in ("mod", "carol", "alice"):
        got = await gql(read, {"id": created["id"]}, as_=who)
        assert "errors" in got or got["data"]["nchat_streams_by_pk"]["stream_key"] is None
    assert data(await gql(read, {"id": created["id"]}, as_="bob"))["nchat_streams_by_pk"]["stream_key"] == key


# --- case 5 and 9: viewers, counts, metrics, Q&A -----------------------------------------------------

async def test_viewer_rows_are_not_insertable_and_private_fields_unreadable(
    db: Database, world: World, gql: GQL
) -> None:
    await set_live(db, world.public_stream)
    ins = """mutation($s: uuid!) { insert_nchat_stream_viewers(objects: [{stream_id: $s,
      viewer_session_id: "x"}]) { affected_rows } }"""
    for who in (None, "bob", "alice"):
        assert code(await gql(ins, {"s": world.public_stream}, as_=who)) == "validation-failed"
    async with db.session(Claims.user(world.bob)) as s:
        await viewers.join_stream(s, world.public_stream, ip="10.0.0.9", user_agent="secret-agent")
    for field in ("ip_address", "user_agent", "viewer_session_id"):
        q = f"""query($s: uuid!) {{ nchat_stream_viewers(where: {{stream_id: {{_eq: $s}}}}) {{ {field} }} }}"""
        got = await gql(q, {"s": world.public_stream}, as_="alice")
        assert code(got) == "validation-failed"


async def _counts(db: Database, stream: str) -> tuple[int, int, int]:
    async with db.session(Claims.service()) as s:
        r = await s.fetchrow("SELECT current_viewers, peak_viewers, total_views FROM nchat_streams WHERE id = $1",
                             stream)
    assert r is not None
    return (r["current_viewers"], r["peak_viewers"], r["total_views"])


async def test_one_user_joining_120_times_counts_once(db: Database, world: World) -> None:
    await set_live(db, world.public_stream)
    tokens = set()
    for _ in range(120):
        async with db.session(Claims.user(world.bob)) as s:
            tokens.add((await viewers.join_stream(s, world.public_stream))["session_id"])
    assert await _counts(db, world.public_stream) == (1, 1, 1)
    # Every holder of the shared session must leave before the person stops counting.
    (token,) = tokens
    async with db.session(Claims.user(world.bob)) as s:
        await viewers.leave_stream(s, token)
    assert (await _counts(db, world.public_stream))[0] == 1


async def test_anonymous_joins_count_per_client_and_are_bounded_per_address(db: Database, world: World) -> None:
    await set_live(db, world.public_stream)
    for _ in range(60):
        async with db.session(Claims.anonymous()) as s:
            await viewers.join_stream(s, world.public_stream, ip="198.51.100.7", user_agent="same-browser")
    assert await _counts(db, world.public_stream) == (1, 1, 1)
    for i in range(4):
        async with db.session(Claims.anonymous()) as s:
            await viewers.join_stream(s, world.public_stream, ip="198.51.100.7", user_agent=f"ua-{i}")
    with pytest.raises(NchatError) as info:
        async with db.session(Claims.anonymous()) as s:
            await viewers.join_stream(s, world.public_stream, ip="198.51.100.7", user_agent="ua-many")
    assert info.value.code == "too-many-viewer-sessions"
    assert (await _counts(db, world.public_stream))[0] == 5


async def test_heartbeat_metrics_are_bounded(db: Database, world: World) -> None:
    await set_live(db, world.public_stream)
    async with db.session(Claims.user(world.bob)) as s:
        joined = await viewers.join_stream(s, world.public_stream)
    with pytest.raises(NchatError) as info:
        async with db.session(Claims.user(world.bob)) as s:
            await viewers.viewer_heartbeat(s, joined["session_id"], buffering_ms=2_000_000_000)
    assert info.value.code == "validation-failed"
    async with db.session(Claims.user(world.bob)) as s:
        beat = await viewers.viewer_heartbeat(s, joined["session_id"], buffering_ms=100)
    assert beat["buffering_ms"] == 100


async def test_nobody_upvotes_their_own_question(db: Database, world: World, gql: GQL) -> None:
    await set_live(db, world.public_stream, enable_qa=True)
    async with db.session(Claims.user(world.bob)) as s:
        question = await qa.ask_question(s, world.public_stream, "mine?")
    with pytest.raises(NchatError) as info:
        async with db.session(Claims.user(world.bob)) as s:
            await qa.upvote_question(s, question["id"])
    assert info.value.code == "own-question"
    vote = """mutation($q: uuid!) { insert_nchat_stream_question_votes_one(object: {question_id: $q}) { user_id } }"""
    assert code(await gql(vote, {"q": question["id"]}, as_="bob")) == "own-question"
    assert data(await gql(vote, {"q": question["id"]}, as_="carol"))
    assert await service(db, "SELECT upvotes FROM nchat_stream_questions WHERE id = $1", question["id"]) == 1


# --- case 6: channel roles ---------------------------------------------------------------------------

ROLE = """mutation($c: uuid!, $u: uuid!, $r: String!) { update_nchat_channel_members(
  where: {channel_id: {_eq: $c}, user_id: {_eq: $u}}, _set: {role: $r}) { affected_rows } }"""


async def test_a_channel_admin_cannot_take_the_channel(db: Database, world: World, gql: GQL) -> None:
    await service(db, "UPDATE nchat_channel_members SET role = 'admin' WHERE channel_id = $1 AND user_id = $2 "
                      "RETURNING id", world.public_channel, world.mod)
    c = world.public_channel
    assert code(await gql(ROLE, {"c": c, "u": world.alice, "r": "guest"}, as_="mod")) == "permission-error"
    assert code(await gql(ROLE, {"c": c, "u": world.mod, "r": "owner"}, as_="mod")) == "permission-error"
    delete = """mutation($c: uuid!, $u: uuid!) { delete_nchat_channel_members(where: {channel_id: {_eq: $c},
      user_id: {_eq: $u}}) { affected_rows } }"""
    assert code(await gql(delete, {"c": c, "u": world.alice}, as_="mod")) == "permission-error"
    add = """mutation($c: uuid!, $u: uuid!) { insert_nchat_channel_members_one(object: {channel_id: $c, user_id: $u,
      role: "owner"}) { id } }"""
    assert code(await gql(add, {"c": c, "u": world.carol}, as_="mod")) == "permission-error"
    assert await service(db, "SELECT owner_id FROM nchat_channels WHERE id = $1", c) == uuid.UUID(world.alice)
    assert await service(db, "SELECT role FROM nchat_channel_members WHERE channel_id = $1 AND user_id = $2",
                         c, world.alice) == "owner"


async def test_the_owner_transfers_ownership_and_is_not_demoted_otherwise(db: Database, world: World,
                                                                          gql: GQL) -> None:
    c = world.public_channel
    assert code(await gql(ROLE, {"c": c, "u": world.alice, "r": "member"}, as_="alice")) == "permission-error"
    assert data(await gql(ROLE, {"c": c, "u": world.bob, "r": "owner"}, as_="alice"))
    async with db.session(Claims.service()) as s:
        roles = dict(await s.fetch("SELECT user_id::text, role FROM nchat_channel_members WHERE channel_id = $1", c))
        owner = await s.fetchval("SELECT owner_id::text FROM nchat_channels WHERE id = $1", c)
    assert roles[world.bob] == "owner" and roles[world.alice] == "admin" and owner == world.bob
