"""Follow-ups to issues 12 and 13 on the data side (migration 0013): metrics bounded on the domain and the
table API, clip URLs the server's, email readable by its owner alone, stream-creation rates that deletes
do not undo, and one user's many watchStream subscriptions counted once."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest

from nchat_live.auth import Claims
from nchat_live.config import Settings
from nchat_live.db import Database
from nchat_live.errors import NchatError
from nchat_live.resolvers import quality, streams, viewers
from nchat_live.resolvers.limits import limit_values, write_limits
from nchat_live.resolvers.quality import QualityReport
from nchat_live.resolvers.streams import StreamInput
from tests.graphql.conftest import GQL, app, client, code, data  # noqa: F401 - fixtures
from tests.subscriptions.conftest import open_socket, recv_json, serve
from tests.support import World, set_live


@pytest.fixture
def gql(client: Any, world: World) -> GQL:  # noqa: F811
    return GQL(client, world)


async def service(db: Database, sql: str, *args: Any) -> Any:
    async with db.session(Claims.service()) as s:
        return await s.fetchval(sql, *args)


METRIC = """mutation($o: nchat_stream_quality_metrics_insert_input!) {
  insert_nchat_stream_quality_metrics_one(object: $o) { id } }"""

ABSURD: list[tuple[str, str, Any]] = [
    ("bitrate_kbps", "bitrateKbps", 2_000_000_000),
    ("upload_bitrate_kbps", "uploadBitrateKbps", 2_000_000_000),
    ("fps", "fps", 100000),
    ("packet_loss_percent", "packetLossPercent", 250),
    ("packet_loss_percent", "packetLossPercent", -1),
    ("rtt_ms", "rttMs", 1e12),
    ("jitter_ms", "jitterMs", 1e9),
    ("latency_ms", "latencyMs", 2_000_000_000),
    ("dropped_frames", "droppedFrames", 2_000_000_000),
    ("encoder_speed", "encoderSpeed", 1e9),
    ("health_score", "healthScore", 5000),
    ("current_viewer_count", "currentViewerCount", -5),
    ("resolution", "resolution", "99999x99999"),
]


@pytest.mark.parametrize(("column", "field", "value"), ABSURD, ids=[f"{c}={v}" for c, _, v in ABSURD])
async def test_absurd_quality_metrics_are_refused_on_the_table_api(
    db: Database, world: World, gql: GQL, column: str, field: str, value: Any
) -> None:
    await set_live(db, world.public_stream)
    got = await gql(METRIC, {"o": {"stream_id": world.public_stream, column: value}}, as_="alice")
    assert code(got) == "validation-failed", got
    assert field in got["errors"][0]["message"]
    assert await service(db, "SELECT count(*) FROM nchat_stream_quality_metrics WHERE stream_id = $1",
                         world.public_stream) == 0


@pytest.mark.parametrize(("column", "field", "value"),
                         [a for a in ABSURD if a[0] not in ("health_score", "current_viewer_count")],
                         ids=[f"{c}={v}" for c, _, v in ABSURD if c not in ("health_score", "current_viewer_count")])
async def test_absurd_quality_metrics_are_refused_by_report_quality_metrics(
    db: Database, world: World, column: str, field: str, value: Any
) -> None:
    await set_live(db, world.public_stream)
    with pytest.raises(NchatError) as info:
        async with db.session(Claims.user(world.alice)) as s:
            await quality.report_quality_metrics(s, world.public_stream, QualityReport(**{column: value}))
    assert info.value.code == "validation-failed"
    assert field in info.value.message or column in info.value.message
    # A plausible report still goes through.
    async with db.session(Claims.user(world.alice)) as s:
        ok = await quality.report_quality_metrics(s, world.public_stream, QualityReport(
            bitrate_kbps=4500, fps=30, resolution="1920x1080", packet_loss_percent=0.5, rtt_ms=40, jitter_ms=3))
    assert 0 <= ok["health_score"] <= 100


async def test_absurd_heartbeat_buffering_is_refused(db: Database, world: World) -> None:
    await set_live(db, world.public_stream)
    async with db.session(Claims.user(world.bob)) as s:
        viewer = await viewers.join_stream(s, world.public_stream)
    for buffering in (2_000_000_000, -1):
        with pytest.raises(NchatError) as info:
            async with db.session(Claims.user(world.bob)) as s:
                await viewers.viewer_heartbeat(s, viewer["session_id"], buffering_ms=buffering)
        assert info.value.code == "validation-failed" and "bufferingMs" in info.value.message


CLIP = """mutation($o: nchat_stream_recordings_insert_input!) {
  insert_nchat_stream_recordings_one(object: $o) { id } }"""


@pytest.mark.parametrize("column", ["url", "thumbnail_url"])
async def test_a_clip_url_is_the_servers(db: Database, world: World, gql: GQL, column: str) -> None:
    evil = "https://evil.example/steal.m3u8"
    got = await gql(CLIP, {"o": {"stream_id": world.public_stream, "kind": "clip", column: evil}}, as_="alice")
    assert code(got) in ("validation-failed", "permission-error"), got
    assert await service(db, "SELECT count(*) FROM nchat_stream_recordings WHERE url = $1 OR thumbnail_url = $1",
                         evil) == 0
    # The statement createClip runs in the caller's session cannot carry a URL either.
    with pytest.raises(NchatError):
        async with db.session(Claims.user(world.alice)) as s:
            await s.fetchval(f"INSERT INTO nchat_stream_recordings (stream_id, kind, {column}) "
                             "VALUES ($1, 'clip', $2) RETURNING id", world.public_stream, evil)


async def test_only_the_server_sets_a_clip_url_to_that_clips_own_path(db: Database, world: World) -> None:
    async with db.session(Claims.user(world.alice)) as s:
        clip = str(await s.fetchval("INSERT INTO nchat_stream_recordings (stream_id, kind) VALUES ($1, 'clip') "
                                    "RETURNING id", world.public_stream))
    for bad in ("https://evil.example/x.m3u8", f"https://evil.example/recordings/{world.public_stream}/clips/x/a",
                f"/recordings/{world.public_stream}/clips/{uuid.uuid4()}/master.m3u8"):
        with pytest.raises(NchatError) as info:
            async with db.session(Claims.user(world.alice)) as s:
                await s.fetchval("SELECT nchat.clip_set_url($1, $2)", clip, bad)
        assert info.value.code == "validation-failed"
    good = f"http://testserver/recordings/{world.public_stream}/clips/{clip}/master.m3u8"
    with pytest.raises(NchatError):  # not hers
        async with db.session(Claims.user(world.bob)) as s:
            await s.fetchval("SELECT nchat.clip_set_url($1, $2)", clip, good)
    async with db.session(Claims.user(world.alice)) as s:
        assert await s.fetchval("SELECT nchat.clip_set_url($1, $2)", clip, good) == good
    with pytest.raises(NchatError):  # once
        async with db.session(Claims.user(world.alice)) as s:
            await s.fetchval("SELECT nchat.clip_set_url($1, $2)", clip, good)


async def test_email_is_readable_by_its_owner_and_admins_only(db: Database, world: World, gql: GQL) -> None:
    for role in ("user", "moderator"):
        got = await gql("query($id: uuid!) { nchat_users_by_pk(id: $id) { email } }", {"id": world.alice},
                        as_="bob", role=role)
        assert code(got) == "validation-failed", got
        got = await gql("{ nchat_users(where: {email: {_like: \"%alice%\"}}) { id } }", as_="bob", role=role)
        assert code(got) == "validation-failed", got
        with pytest.raises(NchatError):
            async with db.session(Claims.user(world.bob, role)) as s:
                await s.fetchval("SELECT email FROM nchat_users WHERE id = $1", world.alice)
    own = data(await gql("{ myEmail }", as_="bob"))
    assert own["myEmail"] == await service(db, "SELECT email FROM nchat_users WHERE id = $1", world.bob)
    assert data(await gql("{ myEmail }"))["myEmail"] is None
    admin = data(await gql("query($id: uuid!) { nchat_users_by_pk(id: $id) { email } }", {"id": world.alice},
                           as_="admin"))
    assert admin["nchat_users_by_pk"]["email"].startswith("alice_")


async def test_deleting_streams_does_not_undo_the_hourly_creation_rate(
    db: Database, settings: Settings, world: World, gql: GQL
) -> None:
    await write_limits(db, {"streams_per_hour": 2})
    try:
        for _ in range(2):
            async with db.session(Claims.user(world.bob)) as s:
                made = await streams.create_stream(s, settings, StreamInput(channel_id=world.public_channel,
                                                                            title="t"))
            deleted = await gql("mutation($id: uuid!) { delete_nchat_streams_by_pk(id: $id) { id } }",
                                {"id": made["id"]}, as_="bob")
            assert data(deleted)["delete_nchat_streams_by_pk"]["id"] == made["id"]
        with pytest.raises(NchatError) as info:
            async with db.session(Claims.user(world.bob)) as s:
                await streams.create_stream(s, settings, StreamInput(channel_id=world.public_channel, title="t"))
        assert info.value.code == "rate-limited"
        got = await gql("mutation($o: nchat_streams_insert_input!) { insert_nchat_streams_one(object: $o) { id } }",
                        {"o": {"channel_id": world.public_channel, "title": "t"}}, as_="bob")
        assert code(got) == "rate-limited"
        # The log is the server's: no request role reads or writes it.
        with pytest.raises(NchatError):
            async with db.session(Claims.user(world.bob)) as s:
                await s.fetchval("DELETE FROM nchat.creation_log RETURNING 1")
    finally:
        await write_limits(db, limit_values(settings))


WATCH = "subscription($s: ID!) { watchStream(streamId: $s) { count } }"


async def test_120_watch_stream_subscriptions_of_one_user_count_once(
    db: Database, settings: Settings, world: World
) -> None:
    await set_live(db, world.public_stream)
    async with serve(settings) as server:
        sockets = [await open_socket(server.url(), world.token(world.bob)) for _ in range(3)]
        try:
            for n, ws in enumerate(sockets):
                for i in range(40):
                    await ws.send(json.dumps({"type": "subscribe", "id": f"w{n}-{i}",
                                              "payload": {"query": WATCH, "variables": {"s": world.public_stream}}}))
            counts: list[int] = []
            for ws in sockets:
                for _ in range(40):
                    msg = await recv_json(ws, within=15)
                    assert msg["type"] == "next", msg
                    counts.append(msg["payload"]["data"]["watchStream"]["count"])
            assert max(counts) == 1, sorted(set(counts))
            row = await service(db, "SELECT current_viewers FROM nchat_streams WHERE id = $1", world.public_stream)
            assert row == 1
            assert await service(db, "SELECT count(*) FROM nchat_stream_viewers WHERE stream_id = $1 AND "
                                     "left_at IS NULL", world.public_stream) == 1
        finally:
            for ws in sockets:
                await ws.close()
        for _ in range(100):
            if await service(db, "SELECT current_viewers FROM nchat_streams WHERE id = $1", world.public_stream) == 0:
                break
            await asyncio.sleep(0.1)
        assert await service(db, "SELECT current_viewers FROM nchat_streams WHERE id = $1", world.public_stream) == 0
