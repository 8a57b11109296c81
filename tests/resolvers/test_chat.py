"""Chat: every rule of sendChatMessage, moderation, pinning, history pages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from nchat_live.auth import Claims
from nchat_live.db import Database
from nchat_live.errors import NchatError
from nchat_live.resolvers import chat, moderation
from nchat_live.resolvers.streams import StreamInput, update_stream
from tests.support import World, fold_chat_tallies

from .conftest import Clock, Events, go_live


async def send(db: Database, user: str, stream: str, text: str, now: datetime | None = None) -> dict:
    async with db.session(Claims.user(user)) as s:
        return await chat.send_chat_message(s, stream, text, now=now)


async def stored(db: Database, stream: str) -> list[str]:
    async with db.session(Claims.service()) as s:
        rows = await s.fetch("SELECT content FROM nchat_stream_chat_messages WHERE stream_id = $1 "
                             "ORDER BY created_at", stream)
    return [r["content"] for r in rows]


async def refused(db: Database, user: str, stream: str, text: str, now: datetime | None = None) -> NchatError:
    before = await stored(db, stream)
    with pytest.raises(NchatError) as info:
        await send(db, user, stream, text, now)
    assert await stored(db, stream) == before
    return info.value


async def test_message_is_cleaned_stored_counted_and_published(db: Database, world: World, events: Events) -> None:
    await go_live(db, world.public_stream)
    message = await send(db, world.bob, world.public_stream, "  hi\x00 there\u202e  ")
    assert message["content"] == "hi there" and message["is_pinned"] is False
    event = events.of("chat.message")[0]
    assert event["id"] == message["id"] and event["content"] == "hi there" and event["user_id"] == world.bob
    assert event["stream_id"] == world.public_stream and event["channel_id"] == world.public_channel
    await fold_chat_tallies(db)
    async with db.session(Claims.service()) as s:
        assert await s.fetchval("SELECT total_chat_messages FROM nchat_streams WHERE id = $1", world.public_stream) == 1


@pytest.mark.parametrize(("text", "code"), [("   ", "validation-failed"), ("x" * 501, "validation-failed"),
                                            ("\x01\x02", "validation-failed")])
async def test_bad_content_is_refused(db: Database, world: World, text: str, code: str) -> None:
    await go_live(db, world.public_stream)
    assert (await refused(db, world.bob, world.public_stream, text)).code == code


async def test_500_characters_is_the_limit(db: Database, world: World) -> None:
    await go_live(db, world.public_stream)
    assert len((await send(db, world.bob, world.public_stream, "é" * 500))["content"]) == 500


async def test_stream_must_be_live_with_chat_enabled(db: Database, world: World) -> None:
    assert (await refused(db, world.bob, world.public_stream, "early")).code == "stream-not-live"
    await go_live(db, world.public_stream)
    async with db.session(Claims.user(world.alice)) as s:
        await update_stream(s, world.public_stream, StreamInput(enable_chat=False))
    assert (await refused(db, world.bob, world.public_stream, "x")).code == "chat-disabled"


async def test_anonymous_cannot_chat(db: Database, world: World) -> None:
    await go_live(db, world.public_stream)
    with pytest.raises(NchatError) as info:
        async with db.session(Claims.anonymous()) as s:
            await chat.send_chat_message(s, world.public_stream, "hi")
    assert info.value.code == "access-denied"


async def test_chat_modes(db: Database, world: World) -> None:
    await go_live(db, world.public_stream)
    async with db.session(Claims.user(world.alice)) as s:
        await update_stream(s, world.public_stream, StreamInput(chat_mode="followers_only"))
    assert (await refused(db, world.bob, world.public_stream, "x")).code == "chat-mode-followers-only"
    async with db.session(Claims.user(world.bob)) as s:
        await s.fetchval("INSERT INTO nchat_user_follows (follower_id, following_id) VALUES ($1, $2) "
                         "RETURNING follower_id", world.bob, world.alice)
    await send(db, world.bob, world.public_stream, "following now")
    async with db.session(Claims.user(world.alice)) as s:
        await update_stream(s, world.public_stream, StreamInput(chat_mode="subscribers_only"))
    assert (await refused(db, world.bob, world.public_stream, "x")).code == "chat-mode-subscribers-only"
    async with db.session(Claims.service()) as s:
        await s.fetchval("INSERT INTO nchat_channel_subscriptions (channel_id, user_id) VALUES ($1, $2) RETURNING id",
                         world.public_channel, world.bob)
    await send(db, world.bob, world.public_stream, "subscribed")
    await send(db, world.alice, world.public_stream, "the broadcaster is exempt")


async def test_rate_limit_five_per_ten_seconds(db: Database, world: World, clock: Clock) -> None:
    await go_live(db, world.public_stream)
    for i in range(5):
        await send(db, world.bob, world.public_stream, f"m{i}", clock.advance(1))
    error = await refused(db, world.bob, world.public_stream, "too many", clock.advance(1))
    assert error.code == "rate-limited" and "at most 5 messages per 10 s" in error.message
    assert error.extensions["retryAfterSeconds"] == 5.0
    await send(db, world.mod, world.public_stream, "others are not limited", clock())
    clock.advance(5.5)  # the first message is now more than 10 s old
    await send(db, world.bob, world.public_stream, "again", clock())


async def test_slow_mode_per_user_with_managers_exempt(db: Database, world: World, clock: Clock) -> None:
    await go_live(db, world.public_stream)
    async with db.session(Claims.user(world.alice)) as s:
        await update_stream(s, world.public_stream, StreamInput(slow_mode_seconds=30))
    await send(db, world.bob, world.public_stream, "one", clock())
    error = await refused(db, world.bob, world.public_stream, "two", clock.advance(29))
    assert error.code == "slow-mode" and "every 30 s" in error.message
    await send(db, world.carol, world.public_stream, "another user may", clock())
    await send(db, world.mod, world.public_stream, "mod 1", clock())
    await send(db, world.mod, world.public_stream, "mod 2", clock())
    await send(db, world.bob, world.public_stream, "two", clock.advance(1.5))


async def test_bans_and_timeouts(db: Database, world: World, clock: Clock, events: Events) -> None:
    await go_live(db, world.public_stream)
    async with db.session(Claims.user(world.mod)) as s:
        await moderation.timeout_user(s, world.public_stream, world.bob, 60, "calm down", now=clock())
    error = await refused(db, world.bob, world.public_stream, "x", clock.advance(10))
    assert error.code == "timed-out" and "another 51 s" in error.message
    await send(db, world.bob, world.public_stream, "back", clock.advance(51))
    async with db.session(Claims.user(world.alice)) as s:
        await moderation.ban_user(s, world.public_stream, world.carol, channel_wide=True)
    assert (await refused(db, world.carol, world.public_stream, "x", clock())).code == "banned"
    async with db.session(Claims.user(world.alice)) as s:
        assert await moderation.unban_user(s, world.public_stream, world.carol) == 1
    await send(db, world.carol, world.public_stream, "unbanned", clock.advance(1))
    assert [p["user_id"] for p in events.of("chat.banned")] == [world.bob, world.carol]


async def test_only_managers_moderate(db: Database, world: World) -> None:
    with pytest.raises(NchatError) as info:
        async with db.session(Claims.user(world.bob)) as s:
            await moderation.ban_user(s, world.public_stream, world.carol)
    assert info.value.code == "permission-error"
    with pytest.raises(NchatError, match="yourself") as info:
        async with db.session(Claims.user(world.mod)) as s:
            await moderation.ban_user(s, world.public_stream, world.mod)
    with pytest.raises(NchatError, match="broadcaster cannot be banned"):
        async with db.session(Claims.user(world.mod)) as s:
            await moderation.ban_user(s, world.public_stream, world.alice)
    with pytest.raises(NchatError, match="durationSeconds 0"):
        async with db.session(Claims.user(world.mod)) as s:
            await moderation.timeout_user(s, world.public_stream, world.bob, 0)


async def test_delete_is_soft_and_for_author_or_moderator(db: Database, world: World, events: Events) -> None:
    await go_live(db, world.public_stream)
    first = await send(db, world.bob, world.public_stream, "secret")
    second = await send(db, world.bob, world.public_stream, "other")
    with pytest.raises(NchatError) as info:
        async with db.session(Claims.user(world.carol)) as s:
            await chat.delete_chat_message(s, first["id"])
    assert info.value.code == "permission-error"
    async with db.session(Claims.user(world.bob)) as s:
        deleted = await chat.delete_chat_message(s, first["id"])
    async with db.session(Claims.user(world.mod)) as s:
        await chat.delete_chat_message(s, second["id"])
    assert deleted["is_deleted"] is True and deleted["content"] == ""
    assert events.of("chat.deleted")[0] == {"stream_id": world.public_stream, "channel_id": world.public_channel,
                                            "id": first["id"]}
    # Soft: the rows stay; their text is kept server-side only and blank on every read path (issue 12).
    assert await stored(db, world.public_stream) == ["", ""]
    async with db.session(Claims.service()) as s:
        kept = await s.fetch("SELECT content FROM nchat.chat_removed_content WHERE message_id = ANY($1::uuid[]) "
                             "ORDER BY content DESC", [first["id"], second["id"]])
    assert [r["content"] for r in kept] == ["secret", "other"]
    async with db.session(Claims.user(world.carol)) as s:
        page = await chat.chat_history(s, world.public_stream)
    assert [(m["content"], m["is_deleted"]) for m in page["messages"]] == [("", True), ("", True)]


async def test_pin_unpin_one_at_a_time(db: Database, world: World, events: Events) -> None:
    await go_live(db, world.public_stream)
    a = await send(db, world.bob, world.public_stream, "a")
    b = await send(db, world.bob, world.public_stream, "b")
    with pytest.raises(NchatError) as info:
        async with db.session(Claims.user(world.bob)) as s:
            await chat.pin_chat_message(s, a["id"])
    assert info.value.code == "permission-error"
    async with db.session(Claims.user(world.mod)) as s:
        assert (await chat.pin_chat_message(s, a["id"]))["is_pinned"] is True
    async with db.session(Claims.user(world.alice)) as s:
        await chat.pin_chat_message(s, b["id"])
        history = await chat.chat_history(s, world.public_stream)
    assert history["pinned"]["id"] == b["id"]
    assert [m["is_pinned"] for m in history["messages"]] == [False, True]
    async with db.session(Claims.user(world.alice)) as s:
        assert (await chat.unpin_chat_message(s, b["id"]))["is_pinned"] is False
    assert [t for t, _ in events if t.startswith("chat.") and "pin" in t] == [
        "chat.pinned", "chat.unpinned", "chat.pinned", "chat.unpinned"]


async def test_history_pages_with_a_cursor(db: Database, world: World, clock: Clock) -> None:
    await go_live(db, world.public_stream)
    base = datetime.now(UTC)
    async with db.session(Claims.service()) as s:
        await s.executemany(
            "INSERT INTO nchat_stream_chat_messages (stream_id, user_id, content, created_at) VALUES ($1, $2, $3, $4)",
            [(world.public_stream, world.bob, f"m{i}", base + timedelta(seconds=i)) for i in range(7)],
        )
    seen: list[str] = []
    cursor = None
    async with db.session(Claims.anonymous()) as s:
        while True:
            page = await chat.chat_history(s, world.public_stream, limit=3, before=cursor)
            seen = [m["content"] for m in page["messages"]] + seen
            cursor = page["next_cursor"]
            if not page["has_more"]:
                break
    assert seen == [f"m{i}" for i in range(7)]
    with pytest.raises(NchatError, match="cursor 'junk'"):
        async with db.session(Claims.anonymous()) as s:
            await chat.chat_history(s, world.public_stream, before="junk")
