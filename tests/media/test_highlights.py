"""Highlights and chapters on a recorded synthetic stream: a short RTMP stream is published and recorded,
chat and reaction bursts are placed at known times of it, and detection suggests a highlight there
(a clip of the recording, titled from the chat), which only the stream's managers keep or discard (domain
operation and table API alike); its chapter shows in the VOD playlists (EXT-X-DATERANGE) and chapters.vtt."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from nchat_live.app import create_app
from nchat_live.auth import Claims
from nchat_live.config import Settings
from nchat_live.db import Database
from nchat_live.errors import PermissionDenied
from nchat_live.media.extras.highlights import HighlightParams, detect_highlights
from nchat_live.media.hls.playlists import program_date_time
from nchat_live.resolvers import engagement
from nchat_live.resolvers.engagement import PeakParams
from nchat_live.runtime import Runtime
from tests.support import World

from .rtmp_client import run_publisher
from .test_recording import eventually

BURST = ["GOAL goal what a goal ⚽"] * 8 + ["penalty was clear"] * 4 + ["penalty goal 🔥"] * 2


@pytest.fixture(scope="module")
async def stack(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Runtime]:
    root = tmp_path_factory.mktemp("highlights")
    runtime = Runtime(settings.model_copy(update={
        "media_dir": root / "live", "recording_dir": root / "recordings", "rtmp_port": 0,
        "publisher_grace_seconds": 1.0, "media_cleanup_delay_seconds": 0.5, "rtmp_media_timeout_seconds": 3.0,
    }))
    await runtime.start()
    assert runtime.highlights is not None
    # Live engagement counted every second here (15 s by default).
    await runtime.highlights.stop()
    runtime.highlights.refresh_seconds = 1.0
    runtime.highlights.start()
    yield runtime
    await runtime.stop()


async def _recording(db: Database, stream_id: str) -> dict[str, Any] | None:
    async with db.session(Claims.service()) as s:
        row = await s.fetchrow("SELECT * FROM nchat_stream_recordings WHERE stream_id = $1 AND kind = 'full' "
                               "AND status = 'ready'", stream_id)
    return None if row is None else dict(row)


async def _started_at(db: Database, stream_id: str) -> Any:
    async with db.session(Claims.service()) as s:
        return await s.fetchval("SELECT started_at FROM nchat_streams WHERE id = $1 AND status = 'live'", stream_id)


async def _live_engagement(db: Database, stream_id: str) -> bool:
    async with db.session(Claims.service()) as s:
        return bool(await s.fetchval(
            "SELECT count(*) FROM nchat_stream_engagement e JOIN nchat_streams s ON s.id = e.stream_id "
            "WHERE e.stream_id = $1 AND s.status = 'live' AND e.chat_messages > 0", stream_id))


async def _suggested(db: Database, stream_id: str) -> list[dict[str, Any]]:
    async with db.session(Claims.service()) as s:
        rows = await s.fetch("SELECT * FROM nchat_stream_highlights WHERE stream_id = $1", stream_id)
    return [dict(r) for r in rows]


async def _gql(http: httpx.AsyncClient, token: str | None, query: str, **variables: Any) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    answer = await http.post("/v1/graphql", json={"query": query, "variables": variables}, headers=headers)
    body: dict[str, Any] = answer.json()
    return body


async def test_a_burst_becomes_a_suggested_highlight_with_a_chapter(stack: Runtime, world: World,
                                                                    db: Database) -> None:
    assert stack.rtmp is not None and stack.highlights is not None
    stream_id = world.public_stream
    params = HighlightParams(bucket_seconds=1, lead_seconds=2.0, tail_seconds=1.0,
                             peaks=PeakParams(min_separation_buckets=3))
    stack.highlights.params = params  # 1 s buckets for an 8 s stream
    publisher = asyncio.create_task(run_publisher(
        stack.rtmp.port, world.public_key, "--seconds", "8", "--size", "320x240", "--realtime"))
    started = await eventually(lambda: _started_at(db, stream_id), 15)
    async with db.session(Claims.service()) as s:
        # One message a second all along, then the burst 5.0-5.9 s in (chat and reactions), written at
        # those times of the stream while it is live.
        for second in range(8):
            await s.fetchval("INSERT INTO nchat_stream_chat_messages (stream_id, user_id, content, created_at) "
                             "VALUES ($1, $2, $3, $4) RETURNING id", stream_id, world.bob, "hello there",
                             started + timedelta(seconds=second + 0.5))
        for n, text in enumerate(BURST):
            await s.fetchval("INSERT INTO nchat_stream_chat_messages (stream_id, user_id, content, created_at) "
                             "VALUES ($1, $2, $3, $4) RETURNING id", stream_id, world.mod, text,
                             started + timedelta(seconds=5.0 + n * 0.06))
        for n in range(10):
            await s.fetchval("INSERT INTO nchat_stream_reactions (stream_id, user_id, emoji, created_at) "
                             "VALUES ($1, $2, '🔥', $3) RETURNING id", stream_id, world.bob,
                             started + timedelta(seconds=5.2 + n * 0.05))
    # While the stream runs, its engagement is counted (the suggester's periodic refresh).
    assert await eventually(lambda: _live_engagement(db, stream_id), 6)
    code, err = await publisher
    assert code == 0, err
    recording = await eventually(lambda: _recording(db, stream_id), 20)
    duration = float(recording["duration_seconds"])
    assert duration >= 7.0

    # The recording is ready: the runtime's suggester found the burst.
    made = await eventually(lambda: _suggested(db, stream_id), 20)
    assert len(made) == 1
    highlight = made[0]
    assert highlight["peak_seconds"] == 5.5 and highlight["status"] == "suggested"
    assert (highlight["start_seconds"], highlight["end_seconds"]) == (3.0, 7.0)
    assert highlight["title"] == "Goal · Penalty · Clear" and highlight["terms"] == ["goal", "penalty", "clear"]
    # Running it again (the broadcaster's detectHighlights) suggests nothing new.
    assert await detect_highlights(db, stack.settings, stream_id, params) == []
    hid = str(highlight["id"])
    async with db.session(Claims.service()) as s:
        clip = await s.fetchrow("SELECT * FROM nchat_stream_recordings WHERE id = $1", highlight["clip_id"])
        buckets = await s.fetch("SELECT bucket, chat_messages, reactions FROM nchat_stream_engagement "
                                "WHERE stream_id = $1 ORDER BY bucket", stream_id)
    assert clip is not None and clip["kind"] == "clip"
    assert (float(clip["clip_start_seconds"]), float(clip["clip_end_seconds"])) == (3.0, 7.0)
    assert (stack.settings.recording_dir / stream_id / "clips" / str(clip["id"]) / "master.m3u8").is_file()
    assert {(b["bucket"], b["chat_messages"], b["reactions"]) for b in buckets if b["bucket"] == 5} == {
        (5, 1 + len(BURST), 10)}

    # Viewers see no suggestion; only the broadcaster and the channel's moderators decide.
    async with db.session(Claims(role="user", user_id=world.bob)) as s:
        assert await engagement.highlights(s, stream_id) == []
        with pytest.raises(Exception, match="not found"):
            await engagement.set_highlight_status(s, hid, "kept")
    async with db.session(Claims(role="user", user_id=world.mod)) as s:
        assert [h["id"] for h in await engagement.highlights(s, stream_id)] == [highlight["id"]]
        decided = await engagement.set_highlight_status(s, hid, "discarded")
        assert decided["status"] == "discarded" and str(decided["decided_by"]) == world.mod
    app = create_app(runtime=stack)
    update = ("mutation($id: uuid!, $s: String!) { update_nchat_stream_highlights_by_pk("
              "pk_columns: {id: $id}, _set: {status: $s}) { id status } }")
    read = "query($sid: uuid!) { nchat_stream_highlights(where: {stream_id: {_eq: $sid}}) { id title status } }"
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as http:
        bob = await _gql(http, world.token(world.bob), update, id=hid, s="kept")
        assert bob["data"]["update_nchat_stream_highlights_by_pk"] is None  # not his to decide: no row
        assert (await _gql(http, None, read, sid=stream_id))["data"]["nchat_stream_highlights"] == []
        alice = await _gql(http, world.token(world.alice), update, id=hid, s="kept")
        assert alice["data"]["update_nchat_stream_highlights_by_pk"] == {"id": hid, "status": "kept"}
        bad = await _gql(http, world.token(world.alice), update, id=hid, s="famous")
        assert bad["errors"][0]["extensions"]["code"] in ("permission-error", "constraint-violation")
        # Kept: every reader of the stream sees it, anonymous included.
        shown = (await _gql(http, None, read, sid=stream_id))["data"]["nchat_stream_highlights"]
        assert shown == [{"id": hid, "title": "Goal · Penalty · Clear", "status": "kept"}]
        # The domain operations answer the same: a kept highlight is readable, still not bob's to decide.
        domain = await _gql(http, world.token(world.bob),
                            'mutation($id: ID!) { setHighlightStatus(id: $id, status: "discarded") { status } }',
                            id=hid)
        assert domain["errors"][0]["extensions"]["code"] == "permission-error"
        listed = await _gql(http, None, "query($sid: ID!) { streamHighlights(streamId: $sid) { title status } }",
                            sid=stream_id)
        assert listed["data"]["streamHighlights"] == [{"title": "Goal · Penalty · Clear", "status": "kept"}]
        # Highlights are the server's to insert.
        insert = await _gql(http, world.token(world.alice),
                            "mutation($sid: uuid!) { insert_nchat_stream_highlights_one(object: {stream_id: $sid, "
                            "title: \"x\"}) { id } }", sid=stream_id)
        assert insert["errors"][0]["extensions"]["code"] == "validation-failed"

        # Chapters: automatic at the highlight (and a start), then edited by the broadcaster.
        async with db.session(Claims(role="user", user_id=world.alice)) as s:
            auto = await engagement.chapters(s, stream_id)
            assert [(c["start_seconds"], c["title"], c["source"]) for c in auto] == [
                (0.0, "Start", "auto"), (3.0, "Goal · Penalty · Clear", "auto")]
            await engagement.update_chapter(s, str(auto[1]["id"]), title='The "goal"')
            added = await engagement.add_chapter(s, stream_id, 6.0, "  Celebration ")
            assert added["title"] == "Celebration" and str(added["created_by"]) == world.alice
        async with db.session(Claims(role="user", user_id=world.bob)) as s:
            with pytest.raises(PermissionDenied):
                await engagement.add_chapter(s, stream_id, 1.0, "mine")
            with pytest.raises(PermissionDenied):
                await engagement.remove_chapter(s, str(added["id"]))
        chapter_insert = await _gql(http, world.token(world.bob),
                                    "mutation($sid: uuid!) { insert_nchat_stream_chapters_one(object: "
                                    "{stream_id: $sid, start_seconds: 1, title: \"mine\"}) { id } }", sid=stream_id)
        assert chapter_insert["errors"][0]["extensions"]["code"] == "permission-error"

        vtt = await http.get(f"/recordings/{stream_id}/chapters.vtt")
        assert vtt.status_code == 200 and vtt.headers["content-type"].startswith("text/vtt")
        ids = [str(auto[0]["id"]), str(auto[1]["id"]), str(added["id"])]
        end = f"{int(duration):02d}.{round(duration * 1000) % 1000:03d}"
        assert vtt.text == (
            f"WEBVTT\n\n{ids[0]}\n00:00:00.000 --> 00:00:03.000\nStart\n\n"
            f"{ids[1]}\n00:00:03.000 --> 00:00:06.000\nThe \"goal\"\n\n"
            f"{ids[2]}\n00:00:06.000 --> 00:00:{end}\nCelebration\n")
        rendition = recording["renditions"][0]
        playlist = (await http.get(f"/recordings/{stream_id}/{rendition}/index.m3u8")).text
        assert playlist.count("#EXT-X-DATERANGE:") == 3 and "#EXT-X-PROGRAM-DATE-TIME:" in playlist
        line = next(ln for ln in playlist.splitlines() if ids[1] in ln)
        start_at = program_date_time(started + timedelta(seconds=3))
        assert line.startswith(f'#EXT-X-DATERANGE:ID="{ids[1]}",CLASS="com.nchat.chapter",START-DATE="{start_at}"')
        assert f"#EXT-X-PROGRAM-DATE-TIME:{program_date_time(started)}" in playlist
        assert "DURATION=3.000" in line and "X-TITLE=\"The 'goal'\"" in line
        assert playlist.index("#EXT-X-DATERANGE") < playlist.index("#EXTINF") and playlist.rstrip().endswith(
            "#EXT-X-ENDLIST")
        # The same access rules as the recording: a private stream's chapters are a 404 without a credential.
        assert (await http.get(f"/recordings/{world.private_stream}/chapters.vtt")).status_code == 404
