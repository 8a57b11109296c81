"""Migration 0028: a chat insert's rules ask one query of the stream (readability, management, whether the
sender has a ban at all, automod) and the generic triggers fire only when they can change the row. Each case
drives a path that query or a trigger's WHEN now decides, and pins the answer 0026's helpers gave."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from nchat_live.auth import Claims
from nchat_live.db import Database
from nchat_live.errors import NchatError
from nchat_live.resolvers import automod, chat, moderation
from nchat_live.resolvers.automod import ChatSettings
from tests.support import World, set_live

INSERT = "INSERT INTO nchat_stream_chat_messages (stream_id, user_id, content) VALUES ($1, $2, $3) RETURNING id"


async def _send(db: Database, claims: Claims, stream: str, text: str, now: datetime | None = None) -> dict[str, Any]:
    async with db.session(claims) as s:
        return await chat.send_chat_message(s, stream, text, now=now)


async def _refused(db: Database, claims: Claims, stream: str, text: str, now: datetime | None = None) -> NchatError:
    with pytest.raises(NchatError) as info:
        await _send(db, claims, stream, text, now)
    return info.value


async def _message(db: Database, message_id: str) -> dict[str, Any]:
    async with db.session(Claims.service()) as s:
        record = await s.fetchrow("SELECT user_id, content, status, in_private_channel, is_deleted "
                                  "FROM nchat_stream_chat_messages WHERE id = $1", message_id)
    assert record is not None
    return dict(record)


async def _second_stream(db: Database, world: World) -> str:
    async with db.session(Claims.service()) as s:
        stream = str(await s.fetchval("INSERT INTO nchat_streams (channel_id, broadcaster_id, title) "
                                      "VALUES ($1, $2, 'second') RETURNING id", world.public_channel, world.alice))
    await set_live(db, stream)
    return stream


async def test_a_members_message_in_a_private_channel_carries_the_flag(db: Database, world: World) -> None:
    await set_live(db, world.private_stream)
    await set_live(db, world.public_stream)
    private = await _send(db, Claims.user(world.alice), world.private_stream, "members only")
    public = await _send(db, Claims.user(world.bob), world.public_stream, "everyone")
    assert (await _message(db, private["id"]))["in_private_channel"] is True
    assert (await _message(db, public["id"]))["in_private_channel"] is False
    async with db.session(Claims.user(world.carol)) as s:
        seen = await s.fetchval("SELECT count(*) FROM nchat_stream_chat_messages WHERE id = $1", private["id"])
    assert seen == 0


async def test_a_stream_the_sender_may_not_read_is_refused_by_the_policy_before_any_rule(
    db: Database, world: World
) -> None:
    """The rules apply only to a stream the sender may read: content the rules would refuse as empty is
    refused by insert_self's policy instead, in a channel the sender is not a member of."""
    await set_live(db, world.private_stream)
    for content in ("   ", "hello"):
        with pytest.raises(NchatError) as info:
            async with db.session(Claims.user(world.carol)) as s:
                await s.fetchval(INSERT, world.private_stream, world.carol, content)
        assert info.value.code == "permission-error", content
    with pytest.raises(NchatError) as info:
        async with db.session(Claims.user(world.alice)) as s:
            await s.fetchval(INSERT, world.private_stream, world.alice, "   ")
    assert info.value.code == "validation-failed"


async def test_platform_moderators_read_and_manage_every_stream(db: Database, world: World) -> None:
    """Staff (the moderator role) read a private channel's stream they are no member of, and are exempt
    from its chat mode and slow mode."""
    await set_live(db, world.private_stream, slow_mode_seconds=30, chat_mode="followers_only")
    staff = Claims.user(world.carol, role="moderator")
    ids = []
    for text in ("one", "two"):
        async with db.session(staff) as s:
            ids.append(str(await s.fetchval(INSERT, world.private_stream, world.carol, text)))
    assert [(await _message(db, i))["in_private_channel"] for i in ids] == [True, True]
    await set_live(db, world.public_stream, slow_mode_seconds=30)
    await _send(db, Claims.user(world.bob), world.public_stream, "one")
    assert (await _refused(db, Claims.user(world.bob), world.public_stream, "two")).code == "slow-mode"


async def test_the_ban_in_force_is_the_longest_and_scoped_as_before(db: Database, world: World) -> None:
    await set_live(db, world.public_stream)
    other = await _second_stream(db, world)
    now = datetime.now(UTC)
    bob = Claims.user(world.bob)
    async with db.session(Claims.user(world.mod)) as s:
        await moderation.timeout_user(s, world.public_stream, world.bob, 60, now=now - timedelta(seconds=120))
    await _send(db, bob, world.public_stream, "an expired timeout does not count", now)
    async with db.session(Claims.user(world.mod)) as s:
        await moderation.timeout_user(s, world.public_stream, world.bob, 60, now=now)
    error = await _refused(db, bob, world.public_stream, "x", now + timedelta(seconds=10))
    assert error.code == "timed-out" and error.extensions["retryAfterSeconds"] == 51
    # A stream's timeout is that stream's; a channel-wide ban is every stream's, and outlasts the timeout.
    await _send(db, bob, other, "another stream of the channel", now + timedelta(seconds=10))
    async with db.session(Claims.user(world.alice)) as s:
        await moderation.ban_user(s, world.public_stream, world.bob, channel_wide=True)
    for stream in (world.public_stream, other):
        assert (await _refused(db, bob, stream, "x", now + timedelta(seconds=11))).code == "banned"
    # A row naming both a stream and its channel bans the channel's other streams too.
    async with db.session(Claims.service()) as s:
        await s.fetchval("INSERT INTO nchat_stream_bans (stream_id, channel_id, user_id, expires_at) "
                         "VALUES ($1, $2, $3, $4) RETURNING id", world.public_stream, world.public_channel,
                         world.carol, now + timedelta(seconds=100))
    error = await _refused(db, Claims.user(world.carol), other, "x", now)
    assert error.code == "timed-out" and "another 101 s" in error.message


async def test_a_deleted_message_keeps_its_text_aside_and_gets_it_back(db: Database, world: World) -> None:
    """chat_removed_content fires on an insert of a deleted message and on an update from or to deleted."""
    await set_live(db, world.public_stream)
    async with db.session(Claims.service()) as s:
        gone = str(await s.fetchval(
            "INSERT INTO nchat_stream_chat_messages (stream_id, user_id, content, is_deleted) "
            "VALUES ($1, $2, 'gone', true) RETURNING id", world.public_stream, world.bob))
    assert (await _message(db, gone))["content"] == ""
    async with db.session(Claims.service()) as s:
        assert await s.fetchval("SELECT content FROM nchat.chat_removed_content WHERE message_id = $1",
                                gone) == "gone"
        await s.fetchval("UPDATE nchat_stream_chat_messages SET is_pinned = true WHERE id = $1 RETURNING id", gone)
    assert (await _message(db, gone))["content"] == ""
    async with db.session(Claims.service()) as s:
        await s.fetchval("UPDATE nchat_stream_chat_messages SET is_deleted = false WHERE id = $1 RETURNING id", gone)
        kept = await s.fetchval("SELECT count(*) FROM nchat.chat_removed_content WHERE message_id = $1", gone)
    assert (await _message(db, gone))["content"] == "gone" and kept == 0


async def test_a_table_insert_without_user_id_is_in_the_callers_name(db: Database, world: World) -> None:
    await set_live(db, world.public_stream)
    async with db.session(Claims.user(world.bob)) as s:
        message = str(await s.fetchval("INSERT INTO nchat_stream_chat_messages (stream_id, content) "
                                       "VALUES ($1, 'no user id') RETURNING id", world.public_stream))
    assert str((await _message(db, message))["user_id"]) == world.bob


async def test_automod_with_only_terms_or_only_settings(db: Database, world: World) -> None:
    """The channel's verdict is asked when it has a settings row or a term, either one alone."""
    await set_live(db, world.public_stream)
    bob = Claims.user(world.bob)
    async with db.session(Claims.user(world.alice)) as s:
        await automod.add_blocked_term(s, world.public_channel, "spoiler")
        await automod.add_blocked_term(s, world.public_channel, "maybe", action="hold")
    assert (await _refused(db, bob, world.public_stream, "a spoiler")).code == "blocked-term"
    assert (await _send(db, bob, world.public_stream, "maybe so"))["status"] == "held"
    async with db.session(Claims.user(world.alice)) as s:
        for term in await automod.blocked_terms(s, world.public_channel):
            await automod.remove_blocked_term(s, term["id"])
        await automod.update_chat_settings(s, world.public_channel, ChatSettings(emote_only=True))
    assert (await _refused(db, bob, world.public_stream, "words")).code == "emote-only"
