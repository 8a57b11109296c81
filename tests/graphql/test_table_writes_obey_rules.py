"""Hasura-style table inserts (as the nchat frontend sends them) obey the rules of the domain operations:
the insert triggers of migration 0009 refuse with the same codes, and a refused write stores nothing."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from nchat_live.auth import Claims
from nchat_live.db import Database
from nchat_live.resolvers import reactions
from tests.graphql.conftest import GQL, code, data
from tests.support import World, fold_chat_tallies, set_live

CHAT = """mutation($s: uuid!, $u: uuid!, $c: String!) {
  insert_nchat_stream_chat_messages_one(object: {stream_id: $s, user_id: $u, content: $c}) { id content } }"""
CHAT_MANY = """mutation($o: [nchat_stream_chat_messages_insert_input!]!) {
  insert_nchat_stream_chat_messages(objects: $o) { affected_rows } }"""
REACT = """mutation($s: uuid!, $u: uuid!, $e: String!) {
  insert_nchat_stream_reactions_one(object: {stream_id: $s, user_id: $u, emoji: $e, position_x: 50}) { emoji } }"""
ASK = """mutation($s: uuid!, $u: uuid!, $c: String!) {
  insert_nchat_stream_questions_one(object: {stream_id: $s, user_id: $u, content: $c}) { id content } }"""


@pytest.fixture
def as_user(client: httpx.AsyncClient, world: World) -> GQL:
    return GQL(client, world)


async def stored(db: Database, stream: str) -> tuple[int, int, int, int, int]:
    """Rows of chat, reactions and questions on the stream, and the stream's two counters (chat's folded in
    first, as the scheduler's tick does)."""
    await fold_chat_tallies(db)
    async with db.session(Claims.service()) as s:
        record = await s.fetchrow(
            "SELECT (SELECT count(*) FROM nchat_stream_chat_messages WHERE stream_id = $1) AS chat, "
            "(SELECT count(*) FROM nchat_stream_reactions WHERE stream_id = $1) AS reactions, "
            "(SELECT count(*) FROM nchat_stream_questions WHERE stream_id = $1) AS questions, "
            "total_chat_messages, total_reactions FROM nchat_streams WHERE id = $1", stream)
    assert record is not None
    return tuple(record.values())  # type: ignore[return-value]


async def chat(gql: GQL, w: World, content: str = "hello", user: str = "bob") -> dict[str, Any]:
    return await gql(CHAT, {"s": w.public_stream, "u": getattr(w, user), "c": content}, as_=user)


async def as_service(db: Database, sql: str, *args: Any) -> None:
    async with db.session(Claims.service()) as s:
        await s.fetchval(sql, *args)


async def test_allowed_inserts_work_clean_their_text_and_bump_the_counters(
    db: Database, world: World, as_user: GQL
) -> None:
    await set_live(db, world.public_stream, enable_qa=True)
    sent = data(await chat(as_user, world, "  hi\x01 there\u202e  "))
    assert sent["insert_nchat_stream_chat_messages_one"]["content"] == "hi there"
    reacted = data(await as_user(REACT, {"s": world.public_stream, "u": world.bob, "e": "❤"}, as_="bob"))
    assert reacted == {"insert_nchat_stream_reactions_one": {"emoji": "❤️"}}
    asked = data(await as_user(ASK, {"s": world.public_stream, "u": world.bob, "c": " why? "}, as_="bob"))
    assert asked["insert_nchat_stream_questions_one"]["content"] == "why?"
    assert await stored(db, world.public_stream) == (1, 1, 1, 1, 1)


async def test_a_client_cannot_choose_created_at(db: Database, world: World, as_user: GQL) -> None:
    """Back-dating would slip a message out of the rate window: the column is not the client's."""
    await set_live(db, world.public_stream)
    q = """mutation($s: uuid!, $u: uuid!) { insert_nchat_stream_chat_messages_one(object: {stream_id: $s,
      user_id: $u, content: "old", created_at: "2001-01-01T00:00:00Z"}) { id } }"""
    assert code(await as_user(q, {"s": world.public_stream, "u": world.bob}, as_="bob")) == "validation-failed"
    assert await stored(db, world.public_stream) == (0, 0, 0, 0, 0)


async def _not_live(db: Database, w: World) -> None:
    """The stream stays 'scheduled'."""


async def _chat_disabled(db: Database, w: World) -> None:
    await set_live(db, w.public_stream, enable_chat=False)


async def _banned(db: Database, w: World) -> None:
    await set_live(db, w.public_stream)
    await as_service(db, "INSERT INTO nchat_stream_bans (channel_id, user_id, banned_by) VALUES ($1, $2, $3) "
                         "RETURNING id", w.public_channel, w.bob, w.alice)


async def _timed_out(db: Database, w: World) -> None:
    await set_live(db, w.public_stream)
    await as_service(db, "INSERT INTO nchat_stream_bans (stream_id, user_id, banned_by, expires_at) "
                         "VALUES ($1, $2, $3, now() + interval '60 seconds') RETURNING id",
                     w.public_stream, w.bob, w.mod)


async def _followers_only(db: Database, w: World) -> None:
    await set_live(db, w.public_stream, chat_mode="followers_only")


async def _subscribers_only(db: Database, w: World) -> None:
    await set_live(db, w.public_stream, chat_mode="subscribers_only")


Setup = Callable[[Database, World], Awaitable[None]]


@pytest.mark.parametrize(("setup", "expected", "message"), [
    (_not_live, "stream-not-live", "cannot chat: the stream is 'scheduled', not 'live'"),
    (_chat_disabled, "chat-disabled", "chat is disabled for this stream"),
    (_banned, "banned", "you are banned from this stream's chat"),
    (_timed_out, "timed-out", "you are timed out for another"),
    (_followers_only, "chat-mode-followers-only", "chat is for followers of the broadcaster only"),
    (_subscribers_only, "chat-mode-subscribers-only", "chat is for subscribers of the channel only"),
], ids=lambda v: v.__name__.strip("_") if callable(v) else None)
async def test_chat_insert_is_refused_and_stores_nothing(
    db: Database, world: World, as_user: GQL, setup: Setup, expected: str, message: str
) -> None:
    await setup(db, world)
    result = await chat(as_user, world)
    assert code(result) == expected and result["errors"][0]["message"].startswith(message)
    if expected == "timed-out":
        assert 55 <= result["errors"][0]["extensions"]["retryAfterSeconds"] <= 61
    assert await stored(db, world.public_stream) == (0, 0, 0, 0, 0)
    # The broadcaster is exempt from the chat mode, not from the stream's state.
    if expected.startswith("chat-mode"):
        data(await chat(as_user, world, "host", user="alice"))


async def test_following_opens_followers_only_chat(db: Database, world: World, as_user: GQL) -> None:
    await _followers_only(db, world)
    await as_service(db, "INSERT INTO nchat_user_follows (follower_id, following_id) VALUES ($1, $2) "
                         "RETURNING follower_id", world.bob, world.alice)
    data(await chat(as_user, world))
    assert (await stored(db, world.public_stream))[0] == 1


async def test_slow_mode(db: Database, world: World, as_user: GQL) -> None:
    await set_live(db, world.public_stream, slow_mode_seconds=30)
    data(await chat(as_user, world, "one"))
    result = await chat(as_user, world, "two")
    assert code(result) == "slow-mode" and "one message every 30 s" in result["errors"][0]["message"]
    assert 29 <= result["errors"][0]["extensions"]["retryAfterSeconds"] <= 30
    assert await stored(db, world.public_stream) == (1, 0, 0, 1, 0)


async def test_rate_limit_holds_across_requests_and_within_one_batch(
    db: Database, world: World, as_user: GQL
) -> None:
    await set_live(db, world.public_stream)
    # Six rows in one statement: the sixth is over the limit, and the whole insert is refused.
    batch = [{"stream_id": world.public_stream, "user_id": world.bob, "content": f"b{i}"} for i in range(6)]
    assert code(await as_user(CHAT_MANY, {"o": batch}, as_="bob")) == "rate-limited"
    assert await stored(db, world.public_stream) == (0, 0, 0, 0, 0)
    for i in range(5):
        data(await chat(as_user, world, f"m{i}"))
    result = await chat(as_user, world, "too many")
    assert code(result) == "rate-limited" and "at most 5 messages per 10 s" in result["errors"][0]["message"]
    assert 0 < result["errors"][0]["extensions"]["retryAfterSeconds"] <= 10
    assert await stored(db, world.public_stream) == (5, 0, 0, 5, 0)


@pytest.mark.parametrize(("emoji", "enabled", "expected"), [
    ("💩", True, "invalid-emoji"), ("👍", False, "reactions-disabled"),
])
async def test_reaction_insert_is_refused_and_stores_nothing(
    db: Database, world: World, as_user: GQL, emoji: str, enabled: bool, expected: str
) -> None:
    await set_live(db, world.public_stream, enable_reactions=enabled)
    result = await as_user(REACT, {"s": world.public_stream, "u": world.bob, "e": emoji}, as_="bob")
    assert code(result) == expected
    assert await stored(db, world.public_stream) == (0, 0, 0, 0, 0)


async def test_question_insert_needs_qa_enabled(db: Database, world: World, as_user: GQL) -> None:
    await set_live(db, world.public_stream)
    result = await as_user(ASK, {"s": world.public_stream, "u": world.bob, "c": "why?"}, as_="bob")
    assert code(result) == "qa-disabled"
    assert await stored(db, world.public_stream) == (0, 0, 0, 0, 0)


async def test_the_emoji_list_is_one_list(db: Database) -> None:
    async with db.session(Claims.anonymous()) as s:
        assert tuple(await s.fetchval("SELECT nchat.allowed_emojis()")) == reactions.ALLOWED_EMOJIS
