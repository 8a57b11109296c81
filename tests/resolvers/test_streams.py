"""createStream, updateStream, start/end/cancel, rotateStreamKey and the stream queries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from nchat_live.auth import Claims
from nchat_live.config import Settings
from nchat_live.db import Database
from nchat_live.errors import AccessDenied, NchatError, NotFound, PermissionDenied, ValidationFailed
from nchat_live.resolvers import streams
from nchat_live.resolvers.lifecycle import IllegalTransition
from nchat_live.resolvers.streams import StreamInput
from tests.support import World

from .conftest import Events, set_status


async def create(db: Database, settings: Settings, user: str, **fields: object) -> dict:
    async with db.session(Claims.user(user)) as s:
        return await streams.create_stream(s, settings, StreamInput(**fields))  # type: ignore[arg-type]


async def test_create_returns_a_secret_key_and_urls(db: Database, settings: Settings, world: World,
                                                     events: Events) -> None:
    settings = settings.model_copy(update={"rtmp_port": 1935})
    created = await create(db, settings, world.bob, channel_id=world.public_channel, title="  Hello  ",
                           tags=["a", "a", "b"], max_resolution="720p", chat_mode="followers_only")
    sid = created["id"]
    assert created["title"] == "Hello" and created["status"] == "preparing"
    assert created["tags"] == ["a", "b"] and created["max_resolution"] == "720p"
    assert len(created["stream_key"]) >= 43  # 32 bytes urlsafe-base64
    assert created["whip_url"] == f"http://testserver/whip/{sid}" == created["ingest_url"]
    assert created["rtmp_url"] == "rtmp://testserver:1935/live"
    assert created["playback_url"] == f"http://testserver/hls/{sid}/master.m3u8"
    async with db.session(Claims.service()) as s:
        assert await s.fetchval("SELECT stream_key FROM nchat_streams WHERE id = $1", sid) == created["stream_key"]
    assert [t for t, _ in events] == ["stream.created"]
    assert "stream_key" not in str(events)
    assert events[0][1] == {"stream_id": sid, "channel_id": world.public_channel, "status": "preparing",
                            "title": "Hello"}


async def test_create_in_the_future_is_scheduled(db: Database, settings: Settings, world: World) -> None:
    at = datetime.now(UTC) + timedelta(hours=2)
    created = await create(db, settings, world.alice, channel_id=world.public_channel, title="Later", scheduled_at=at)
    assert created["status"] == "scheduled" and created["scheduled_at"] == at


@pytest.mark.parametrize(("fields", "message"), [
    ({"title": "   "}, "title is empty"),
    ({"title": "x" * 201}, "at most 200"),
    ({"title": "ok", "max_resolution": "4k"}, "maxResolution '4k'"),
    ({"title": "ok", "chat_mode": "friends"}, "chatMode 'friends'"),
    ({"title": "ok", "slow_mode_seconds": 4000}, "slowModeSeconds 4000"),
    ({"title": "ok", "thumbnail_url": "javascript:alert(1)"}, "thumbnailUrl"),
    ({"title": "ok", "scheduled_at": datetime(2030, 1, 1)}, "time zone"),
    ({"title": "ok", "tags": ["t"] * 21}, "at most 20"),
])
async def test_create_refuses_bad_input_and_stores_nothing(
    db: Database, settings: Settings, world: World, fields: dict, message: str
) -> None:
    with pytest.raises(ValidationFailed, match=message) as info:
        await create(db, settings, world.alice, channel_id=world.public_channel, **fields)
    assert info.value.code == "validation-failed"
    async with db.session(Claims.service()) as s:
        assert await s.fetchval("SELECT count(*) FROM nchat_streams WHERE channel_id = $1",
                                world.public_channel) == 1


async def test_create_needs_membership_and_a_user(db: Database, settings: Settings, world: World) -> None:
    with pytest.raises(PermissionDenied, match="only members"):
        await create(db, settings, world.carol, channel_id=world.public_channel, title="Nope")
    with pytest.raises(AccessDenied):
        async with db.session(Claims.anonymous()) as s:
            await streams.create_stream(s, settings, StreamInput(channel_id=world.public_channel, title="x"))


async def test_update_changes_given_fields_only_for_managers(db: Database, world: World, events: Events) -> None:
    async with db.session(Claims.user(world.mod)) as s:
        updated = await streams.update_stream(s, world.public_stream, StreamInput(title="New", slow_mode_seconds=5))
    assert updated["title"] == "New" and updated["slow_mode_seconds"] == 5 and updated["enable_chat"] is True
    assert events.of("stream.updated")[0]["changes"] == {"title": "New", "slow_mode_seconds": 5}
    with pytest.raises(PermissionDenied, match="only the broadcaster or a moderator"):
        async with db.session(Claims.user(world.bob)) as s:
            await streams.update_stream(s, world.public_stream, StreamInput(title="Hijack"))
    with pytest.raises(NotFound) as info:
        async with db.session(Claims.user(world.carol)) as s:
            await streams.update_stream(s, world.private_stream, StreamInput(title="x"))
    assert info.value.code == "stream-not-found"


async def test_start_end_and_cancel(db: Database, world: World, events: Events) -> None:
    async with db.session(Claims.user(world.alice)) as s:
        live = await streams.start_stream(s, world.public_stream)
    assert live["status"] == "live" and live["started_at"] is not None
    async with db.session(Claims.user(world.alice)) as s:
        ended = await streams.end_stream(s, world.public_stream)
    assert ended["status"] == "ended" and ended["ended_at"] is not None and ended["duration_seconds"] >= 0
    assert [t for t, _ in events] == ["stream.started", "stream.ended"]
    with pytest.raises(IllegalTransition):
        async with db.session(Claims.user(world.alice)) as s:
            await streams.start_stream(s, world.public_stream)
    async with db.session(Claims.user(world.alice)) as s:
        cancelled = await streams.cancel_stream(s, world.private_stream)
    assert cancelled["status"] == "cancelled"


async def test_only_managers_change_status(db: Database, world: World) -> None:
    with pytest.raises(PermissionDenied):
        async with db.session(Claims.user(world.bob)) as s:
            await streams.start_stream(s, world.public_stream)
    async with db.session(Claims.service()) as s:
        assert await s.fetchval("SELECT status FROM nchat_streams WHERE id = $1", world.public_stream) == "scheduled"


async def test_rotate_key_replaces_it_for_the_broadcaster_only(
    db: Database, settings: Settings, world: World
) -> None:
    async with db.session(Claims.user(world.alice)) as s:
        rotated = await streams.rotate_stream_key(s, settings, world.public_stream)
    assert rotated["stream_key"] != world.public_key
    async with db.session(Claims.service()) as s:
        assert await s.fetchval("SELECT stream_key FROM nchat_streams WHERE id = $1",
                                world.public_stream) == rotated["stream_key"]
    with pytest.raises(PermissionDenied):
        async with db.session(Claims.user(world.mod)) as s:
            await streams.rotate_stream_key(s, settings, world.public_stream)


async def test_queries_list_by_status(db: Database, settings: Settings, world: World) -> None:
    soon = datetime.now(UTC) + timedelta(days=1)
    later = await create(db, settings, world.alice, channel_id=world.public_channel, title="T", scheduled_at=soon)
    await set_status(db, world.private_stream, "ended")
    async with db.session(Claims.user(world.alice)) as s:
        await streams.start_stream(s, world.public_stream)
    # Full recordings are the server's to write (issue 12).
    async with db.session(Claims.service()) as s:
        await s.fetchval("INSERT INTO nchat_stream_recordings (stream_id, url) VALUES ($1, '/vod/x.m3u8') "
                         "RETURNING id", world.private_stream)
    async with db.session(Claims.user(world.alice)) as s:
        live = await streams.live_streams(s, world.public_channel)
        scheduled = await streams.scheduled_streams(s, world.public_channel, soon - timedelta(hours=1),
                                                    soon + timedelta(hours=1))
        none_scheduled = await streams.scheduled_streams(s, world.public_channel, soon + timedelta(hours=1))
        past = await streams.past_streams(s, world.private_channel)
        hls = await streams.hls_manifest(s, settings, world.public_stream)
        count = await streams.viewer_count(s, world.public_stream)
    assert [x["id"] for x in live] == [world.public_stream]
    assert [x["id"] for x in scheduled] == [later["id"]] and none_scheduled == []
    assert [x["id"] for x in past] == [world.private_stream] and past[0]["recording"]["url"] == "/vod/x.m3u8"
    assert hls["manifest_url"] == f"http://testserver/hls/{world.public_stream}/master.m3u8"
    assert hls["available"] is False and count == 0
    async with db.session(Claims.user(world.carol)) as s:
        assert await streams.past_streams(s, world.private_channel) == []


async def test_unknown_stream_is_not_found(db: Database, world: World) -> None:
    with pytest.raises(NchatError) as info:
        async with db.session(Claims.user(world.alice)) as s:
            await streams.get_stream(s, "00000000-0000-0000-0000-000000000000")
    assert info.value.code == "stream-not-found"
    with pytest.raises(ValidationFailed, match="not a UUID"):
        async with db.session(Claims.user(world.alice)) as s:
            await streams.get_stream(s, "nope")
