"""Row-level security matrix: table x role x operation, each case permitted or refused as the rule says.

Every case runs the SQL inside `Database.session(claims)`, the same path resolvers use, so what is
checked here is Postgres' own enforcement (grants + policies), not application code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from nchat_live.auth import Claims
from nchat_live.db import Database
from nchat_live.errors import NchatError
from tests.support import World

DENIED = "denied"


@dataclass(frozen=True)
class Case:
    name: str
    actor: str  # anon | alice | bob | carol | chanmod | moderator | admin
    sql: str
    params: Callable[[World], tuple[object, ...]]
    expect: object  # DENIED, or the number of rows returned


def claims_for(actor: str, w: World) -> Claims:
    return {
        "anon": Claims.anonymous(),
        "alice": Claims.user(w.alice),
        "bob": Claims.user(w.bob),
        "carol": Claims.user(w.carol),
        "chanmod": Claims.user(w.mod),
        "moderator": Claims.user(w.carol, role="moderator"),
        "admin": Claims.admin(),
    }[actor]


def c(name: str, actor: str, sql: str, params: Callable[[World], tuple[object, ...]], expect: object) -> Case:
    return Case(name, actor, sql, params, expect)


PUB = lambda w: (w.public_stream,)  # noqa: E731 - tiny parameter builders read better inline
PRIV = lambda w: (w.private_stream,)  # noqa: E731

CASES = [
    # --- streams: select ---------------------------------------------------------------------
    c("anon reads a public stream", "anon", "SELECT id FROM nchat_streams WHERE id = $1", PUB, 1),
    c("anon cannot see a private channel's stream", "anon", "SELECT id FROM nchat_streams WHERE id = $1", PRIV, 0),
    c("non-member cannot see a private channel's stream", "carol",
      "SELECT id FROM nchat_streams WHERE id = $1", PRIV, 0),
    c("member of the public channel cannot see the private stream", "bob",
      "SELECT id FROM nchat_streams WHERE id = $1", PRIV, 0),
    c("owner sees the private stream", "alice", "SELECT id FROM nchat_streams WHERE id = $1", PRIV, 1),
    c("platform moderator sees the private stream", "moderator",
      "SELECT id FROM nchat_streams WHERE id = $1", PRIV, 1),
    c("admin sees the private stream", "admin", "SELECT id FROM nchat_streams WHERE id = $1", PRIV, 1),
    # --- streams: the key --------------------------------------------------------------------
    c("another user cannot select stream_key", "bob", "SELECT stream_key FROM nchat_streams WHERE id = $1", PUB,
      DENIED),
    c("anon cannot select stream_key", "anon", "SELECT stream_key FROM nchat_streams WHERE id = $1", PUB, DENIED),
    c("even the broadcaster cannot select the column directly", "alice",
      "SELECT stream_key FROM nchat_streams WHERE id = $1", PUB, DENIED),
    c("broadcaster reads their key through nchat.stream_key", "alice",
      "SELECT 1 WHERE nchat.stream_key($1) IS NOT NULL", PUB, 1),
    c("another user gets NULL from nchat.stream_key", "bob",
      "SELECT 1 WHERE nchat.stream_key($1) IS NULL", PUB, 1),
    c("channel moderator gets NULL from nchat.stream_key", "chanmod",
      "SELECT 1 WHERE nchat.stream_key($1) IS NULL", PUB, 1),
    c("admin selects stream_key", "admin", "SELECT stream_key FROM nchat_streams WHERE id = $1", PUB, 1),
    # --- streams: insert ---------------------------------------------------------------------
    c("member creates a stream in their channel as broadcaster", "bob",
      "INSERT INTO nchat_streams (channel_id, broadcaster_id, title) VALUES ($1, $2, 't') RETURNING id",
      lambda w: (w.public_channel, w.bob), 1),
    c("non-member cannot create a stream in the channel", "carol",
      "INSERT INTO nchat_streams (channel_id, broadcaster_id, title) VALUES ($1, $2, 't') RETURNING id",
      lambda w: (w.public_channel, w.carol), DENIED),
    c("member cannot create a stream as someone else", "bob",
      "INSERT INTO nchat_streams (channel_id, broadcaster_id, title) VALUES ($1, $2, 't') RETURNING id",
      lambda w: (w.public_channel, w.alice), DENIED),
    c("anon cannot create a stream", "anon",
      "INSERT INTO nchat_streams (channel_id, broadcaster_id, title) VALUES ($1, $2, 't') RETURNING id",
      lambda w: (w.public_channel, w.alice), DENIED),
    # --- streams: update / delete ------------------------------------------------------------
    c("broadcaster updates their stream", "alice",
      "UPDATE nchat_streams SET title = 'x' WHERE id = $1 RETURNING id", PUB, 1),
    c("channel moderator updates the stream", "chanmod",
      "UPDATE nchat_streams SET title = 'x' WHERE id = $1 RETURNING id", PUB, 1),
    c("plain member cannot update the stream (no rows)", "bob",
      "UPDATE nchat_streams SET title = 'x' WHERE id = $1 RETURNING id", PUB, 0),
    # Status is server-owned (issue 12): changed only through nchat.stream_transition (endStream).
    c("outsider cannot set a stream's status", "carol",
      "UPDATE nchat_streams SET status = 'ended' WHERE id = $1 RETURNING id", PUB, DENIED),
    c("anon cannot update a stream", "anon",
      "UPDATE nchat_streams SET title = 'x' WHERE id = $1 RETURNING id", PUB, DENIED),
    c("platform moderator sets no status directly (endStream does)", "moderator",
      "UPDATE nchat_streams SET status = 'ended' WHERE id = $1 RETURNING id", PRIV, DENIED),
    c("platform moderator ends any stream through the domain function", "moderator",
      "SELECT id FROM nchat.stream_transition($1, 'cancelled', 'moderated')", PRIV, 1),
    c("member cannot delete the stream (no rows)", "bob", "DELETE FROM nchat_streams WHERE id = $1 RETURNING id",
      PUB, 0),
    c("broadcaster deletes their stream", "alice", "DELETE FROM nchat_streams WHERE id = $1 RETURNING id", PUB, 1),
    # --- chat --------------------------------------------------------------------------------
    c("user posts chat as themself", "bob",
      "INSERT INTO nchat_stream_chat_messages (stream_id, user_id, content) VALUES ($1, $2, 'hi') RETURNING id",
      lambda w: (w.public_stream, w.bob), 1),
    c("user cannot post chat as someone else", "bob",
      "INSERT INTO nchat_stream_chat_messages (stream_id, user_id, content) VALUES ($1, $2, 'hi') RETURNING id",
      lambda w: (w.public_stream, w.alice), DENIED),
    c("outsider cannot post in a private stream", "carol",
      "INSERT INTO nchat_stream_chat_messages (stream_id, user_id, content) VALUES ($1, $2, 'hi') RETURNING id",
      lambda w: (w.private_stream, w.carol), DENIED),
    c("anon cannot post chat", "anon",
      "INSERT INTO nchat_stream_chat_messages (stream_id, user_id, content) VALUES ($1, $2, 'hi') RETURNING id",
      lambda w: (w.public_stream, w.bob), DENIED),
    c("anon reads public chat", "anon", "SELECT id FROM nchat_stream_chat_messages WHERE stream_id = $1", PUB, 1),
    c("outsider reads no private chat", "carol",
      "SELECT id FROM nchat_stream_chat_messages WHERE stream_id = $1", PRIV, 0),
    c("owner reads the private chat", "alice",
      "SELECT id FROM nchat_stream_chat_messages WHERE stream_id = $1", PRIV, 1),
    # Moderation flags are server-owned (issue 12): deleteChatMessage goes through nchat.chat_delete.
    c("another user cannot soft-delete someone's message", "carol",
      "UPDATE nchat_stream_chat_messages SET is_deleted = true WHERE stream_id = $1 RETURNING id", PUB, DENIED),
    c("channel moderator sets no flag directly", "chanmod",
      "UPDATE nchat_stream_chat_messages SET is_deleted = true WHERE stream_id = $1 RETURNING id", PUB, DENIED),
    c("channel moderator soft-deletes through the domain function", "chanmod",
      "SELECT m.id FROM nchat_stream_chat_messages m, nchat.chat_delete(m.id, now()) d WHERE m.stream_id = $1",
      PUB, 1),
    c("nobody below admin hard-deletes chat", "alice",
      "DELETE FROM nchat_stream_chat_messages WHERE stream_id = $1 RETURNING id", PUB, DENIED),
    # --- reactions ---------------------------------------------------------------------------
    c("user reacts as themself", "bob",
      "INSERT INTO nchat_stream_reactions (stream_id, user_id, emoji, position_x) VALUES ($1, $2, '🔥', 50) "
      "RETURNING id", lambda w: (w.public_stream, w.bob), 1),
    c("user cannot react as someone else", "bob",
      "INSERT INTO nchat_stream_reactions (stream_id, user_id, emoji) VALUES ($1, $2, '🔥') RETURNING id",
      lambda w: (w.public_stream, w.carol), DENIED),
    c("reaction position outside 0..100 is refused", "bob",
      "INSERT INTO nchat_stream_reactions (stream_id, user_id, emoji, position_x) VALUES ($1, $2, '🔥', 150) "
      "RETURNING id", lambda w: (w.public_stream, w.bob), DENIED),
    # --- viewers -----------------------------------------------------------------------------
    c("viewer rows: the owner sees their own", "bob",
      "SELECT id FROM nchat_stream_viewers WHERE stream_id = $1 AND user_id = $2",
      lambda w: (w.public_stream, w.bob), 1),
    c("viewer rows: the broadcaster sees their audience", "alice",
      "SELECT id FROM nchat_stream_viewers WHERE stream_id = $1", PUB, 1),
    c("viewer rows: another user sees none", "carol",
      "SELECT id FROM nchat_stream_viewers WHERE stream_id = $1", PUB, 0),
    # Viewer sessions are written only by nchat.viewer_join/viewer_touch (issue 12).
    c("viewer rows: anon reads none", "anon", "SELECT id FROM nchat_stream_viewers WHERE stream_id = $1", PUB,
      DENIED),
    c("anon inserts no viewer row directly", "anon",
      "INSERT INTO nchat_stream_viewers (stream_id, viewer_session_id) VALUES ($1, 'anon-1')", PUB, DENIED),
    c("anon cannot join a private stream", "anon",
      "INSERT INTO nchat_stream_viewers (stream_id, viewer_session_id) VALUES ($1, 'anon-2')", PRIV, DENIED),
    # --- quality metrics ---------------------------------------------------------------------
    c("broadcaster writes quality metrics", "alice",
      "INSERT INTO nchat_stream_quality_metrics (stream_id, bitrate_kbps) VALUES ($1, 2500) RETURNING id", PUB, 1),
    c("another user cannot write quality metrics", "bob",
      "INSERT INTO nchat_stream_quality_metrics (stream_id, bitrate_kbps) VALUES ($1, 2500) RETURNING id", PUB,
      DENIED),
    c("the server (admin) writes quality metrics", "admin",
      "INSERT INTO nchat_stream_quality_metrics (stream_id, bitrate_kbps) VALUES ($1, 2500) RETURNING id", PUB, 1),
    c("metrics are not public", "anon", "SELECT id FROM nchat_stream_quality_metrics WHERE stream_id = $1", PUB,
      DENIED),
    # --- channels and members ----------------------------------------------------------------
    c("outsider cannot see the private channel", "carol", "SELECT id FROM nchat_channels WHERE id = $1",
      lambda w: (w.private_channel,), 0),
    c("outsider cannot add themself to a private channel", "carol",
      "INSERT INTO nchat_channel_members (channel_id, user_id, role) VALUES ($1, $2, 'member') RETURNING id",
      lambda w: (w.private_channel, w.carol), DENIED),
    c("user joins a public channel as member", "carol",
      "INSERT INTO nchat_channel_members (channel_id, user_id, role) VALUES ($1, $2, 'member') RETURNING id",
      lambda w: (w.public_channel, w.carol), 1),
    c("user cannot make themself owner of a public channel", "carol",
      "INSERT INTO nchat_channel_members (channel_id, user_id, role) VALUES ($1, $2, 'owner') RETURNING id",
      lambda w: (w.public_channel, w.carol), DENIED),
    # --- users -------------------------------------------------------------------------------
    c("anon cannot read emails", "anon", "SELECT email FROM nchat_users WHERE id = $1", lambda w: (w.bob,), DENIED),
    c("user edits their own profile", "bob",
      "UPDATE nchat_users SET display_name = 'B' WHERE id = $1 RETURNING id", lambda w: (w.bob,), 1),
    c("user cannot edit another profile (no rows)", "bob",
      "UPDATE nchat_users SET display_name = 'B' WHERE id = $1 RETURNING id", lambda w: (w.alice,), 0),
    # --- bans, Q&A, recordings ---------------------------------------------------------------
    c("channel moderator bans a user from the stream", "chanmod",
      "INSERT INTO nchat_stream_bans (stream_id, user_id, banned_by, reason) VALUES ($1, $2, $3, 'spam') "
      "RETURNING id", lambda w: (w.public_stream, w.bob, w.mod), 1),
    c("plain member cannot ban", "bob",
      "INSERT INTO nchat_stream_bans (stream_id, user_id, banned_by) VALUES ($1, $2, $3) RETURNING id",
      lambda w: (w.public_stream, w.carol, w.bob), DENIED),
    c("user asks a question as themself", "bob",
      "INSERT INTO nchat_stream_questions (stream_id, user_id, content) VALUES ($1, $2, 'why?') RETURNING id",
      lambda w: (w.public_stream, w.bob), 1),
    c("user cannot answer questions", "bob",
      "UPDATE nchat_stream_questions SET status = 'answered' WHERE stream_id = $1 RETURNING id", PUB, 0),
    c("broadcaster answers questions", "alice",
      "UPDATE nchat_stream_questions SET status = 'answered' WHERE stream_id = $1 RETURNING id", PUB, 1),
    c("outsider cannot delete a recording (no rows)", "carol",
      "DELETE FROM nchat_stream_recordings WHERE stream_id = $1 RETURNING id", PUB, 0),
    c("broadcaster deletes a recording", "alice",
      "DELETE FROM nchat_stream_recordings WHERE stream_id = $1 RETURNING id", PUB, 1),
]


async def _seed_rows(db: Database, w: World) -> None:
    """One row per child table so that reads and updates have something to find."""
    async with db.session(Claims.service()) as s:
        # Chat and reactions need a live stream, questions Q&A (the insert rules of migration 0009).
        await s.fetchval("UPDATE nchat_streams SET status = 'live', enable_qa = true WHERE id = $1 RETURNING id",
                         w.public_stream)
        for stream in (w.public_stream, w.private_stream):
            await s.fetchval(
                "INSERT INTO nchat_stream_chat_messages (stream_id, user_id, content) VALUES ($1, $2, 'seed')",
                stream, w.alice,
            )
        await s.fetchval(
            "INSERT INTO nchat_stream_viewers (stream_id, user_id, viewer_session_id) VALUES ($1, $2, 'bob-1')",
            w.public_stream, w.bob,
        )
        await s.fetchval(
            "INSERT INTO nchat_stream_questions (stream_id, user_id, content) VALUES ($1, $2, 'seed?')",
            w.public_stream, w.bob,
        )
        await s.fetchval(
            "INSERT INTO nchat_stream_recordings (stream_id, url) VALUES ($1, '/r/master.m3u8')", w.public_stream
        )


def test_matrix_is_large_enough() -> None:
    assert len(CASES) >= 40
    assert len({case.name for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
async def test_rls(case: Case, db: Database, world: World) -> None:
    await _seed_rows(db, world)
    claims = claims_for(case.actor, world)
    if case.expect == DENIED:
        with pytest.raises(NchatError) as info:
            async with db.session(claims) as s:
                await s.fetch(case.sql, *case.params(world))
        assert info.value.code in ("permission-error", "access-denied"), info.value
        return
    async with db.session(claims) as s:
        if case.sql.lstrip().upper().startswith("INSERT") and "RETURNING" not in case.sql.upper():
            await s.fetch(case.sql, *case.params(world))
            rows: list[object] = []
        else:
            rows = list(await s.fetch(case.sql, *case.params(world)))
    assert len(rows) == case.expect
