"""Row-level security of the poll and moderation tables (migration 0015), straight in SQL as each request
role: private streams' polls stay private, votes are the voter's and the broadcaster's, counts and status
are never a request role's to write, blocked terms and the moderation log are the channel moderators',
and a held message is hidden from everyone but its author and the stream's managers."""

from __future__ import annotations

from typing import Any

import pytest

from nchat_live.auth import Claims
from nchat_live.db import Database
from nchat_live.db.permissions import POLL_SERVER_OWNED
from nchat_live.errors import NchatError
from nchat_live.resolvers import automod, chat, polls
from tests.support import World, set_live


async def fetch(db: Database, claims: Claims, sql: str, *args: Any) -> list[Any]:
    async with db.session(claims) as s:
        return list(await s.fetch(sql, *args))


async def refused(db: Database, claims: Claims, sql: str, *args: Any) -> str:
    with pytest.raises(NchatError) as info:
        async with db.session(claims) as s:
            await s.fetch(sql, *args)
    return info.value.code


@pytest.fixture
async def poll(db: Database, world: World) -> dict[str, Any]:
    await set_live(db, world.private_stream)
    async with db.session(Claims.user(world.alice)) as s:
        made = await polls.create_poll(s, world.private_stream, "Private?", ["yes", "no"])
        await polls.vote(s, made["id"], [0])
    return made


async def test_a_private_streams_poll_is_invisible_to_outsiders(db: Database, world: World,
                                                                 poll: dict[str, Any]) -> None:
    for claims in (Claims.anonymous(), Claims.user(world.carol), Claims.user(world.bob)):
        assert await fetch(db, claims, "SELECT id FROM nchat_stream_polls WHERE id = $1", poll["id"]) == []
    vote = "INSERT INTO nchat_stream_poll_votes (poll_id, user_id, choices) VALUES ($1, $2, '{0}') RETURNING poll_id"
    assert await refused(db, Claims.user(world.carol), vote, poll["id"], world.carol) == "permission-error"
    assert await refused(db, Claims.anonymous(), "SELECT * FROM nchat_stream_poll_votes") == "permission-error"


@pytest.mark.parametrize("column", sorted(POLL_SERVER_OWNED))
async def test_the_broadcaster_cannot_write_poll_state(db: Database, world: World, poll: dict[str, Any],
                                                      column: str) -> None:
    assert await refused(db, Claims.user(world.alice), f"UPDATE nchat_stream_polls SET {column} = {column} "
                         "WHERE id = $1 RETURNING id", poll["id"]) == "permission-error"
    assert await refused(db, Claims.user(world.alice), "DELETE FROM nchat_stream_poll_votes WHERE poll_id = $1 "
                         "RETURNING poll_id", poll["id"]) == "permission-error"


async def test_a_vote_cannot_move_to_another_user_or_poll(db: Database, world: World, poll: dict[str, Any]) -> None:
    assert await fetch(db, Claims.user(world.alice), "UPDATE nchat_stream_poll_votes SET choices = '{1}' "
                       "WHERE poll_id = $1 RETURNING user_id", poll["id"])
    assert await refused(db, Claims.user(world.alice), "UPDATE nchat_stream_poll_votes SET user_id = $2 "
                         "WHERE poll_id = $1 RETURNING user_id", poll["id"], world.bob) == "permission-error"
    async with db.session(Claims.service()) as s:
        assert await s.fetchval("SELECT vote_counts FROM nchat_stream_polls WHERE id = $1", poll["id"]) == [0, 1]


async def test_moderation_tables_are_the_channel_moderators(db: Database, world: World) -> None:
    await set_live(db, world.public_stream)
    async with db.session(Claims.user(world.mod)) as s:
        await automod.add_blocked_term(s, world.public_channel, "spoiler", action="hold")
        await automod.update_chat_settings(s, world.public_channel, automod.ChatSettings(link_filter=False))
    for claims in (Claims.user(world.bob), Claims.user(world.carol)):
        assert await fetch(db, claims, "SELECT term FROM nchat_channel_blocked_terms") == []
        assert await fetch(db, claims, "SELECT action FROM nchat_moderation_log WHERE channel_id = $1",
                           world.public_channel) == []
        assert await refused(db, claims, "INSERT INTO nchat_channel_chat_settings (channel_id, emote_only) "
                             "VALUES ($1, true) RETURNING 1", world.public_channel) == "permission-error"
        assert await fetch(db, claims, "UPDATE nchat_channel_chat_settings SET emote_only = true RETURNING 1") == []
    assert await refused(db, Claims.anonymous(), "SELECT term FROM nchat_channel_blocked_terms") == "permission-error"
    log = await fetch(db, Claims.user(world.alice), "SELECT action FROM nchat_moderation_log "
                      "WHERE channel_id = $1 ORDER BY created_at", world.public_channel)
    assert [r["action"] for r in log] == ["term-added", "settings-changed"]
    async with db.session(Claims.user(world.bob)) as s:
        held = await chat.send_chat_message(s, world.public_stream, "spoiler")
    for claims, sees in ((Claims.anonymous(), False), (Claims.user(world.carol), False), (Claims.user(world.bob), True),
                         (Claims.user(world.mod), True), (Claims.user(world.alice), True)):
        rows = await fetch(db, claims, "SELECT id FROM nchat_stream_chat_messages WHERE id = $1", held["id"])
        assert bool(rows) is sees
