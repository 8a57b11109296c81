"""RTMP in, HLS out, recording, DVR, thumbnails and clips: the whole path with real publishers.

Each publisher is FFmpeg's RTMP client (PyAV, separate process) sending H.264/AAC in real time.
"""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import av
import httpx
import pytest

from nchat_live.app import create_app
from nchat_live.auth import Claims
from nchat_live.config import Settings
from nchat_live.db import Database
from nchat_live.media.extras.clips import create_clip, delete_recording
from nchat_live.media.hls.packager import PackagingConfig
from nchat_live.runtime import Runtime
from tests.support import World

from .rtmp_client import RtmpTestClient, run_publisher


async def eventually(check: Callable[[], Awaitable[Any]], within: float = 20.0) -> Any:
    deadline = time.monotonic() + within
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within} s")
        await asyncio.sleep(0.2)


@pytest.fixture(scope="module")
async def stack(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Runtime]:
    root = tmp_path_factory.mktemp("media2")
    runtime = Runtime(settings.model_copy(update={
        "media_dir": root / "live", "recording_dir": root / "recordings", "rtmp_port": 0,
        "publisher_grace_seconds": 2.5, "media_cleanup_delay_seconds": 0.5, "rtmp_media_timeout_seconds": 3.0,
    }))
    await runtime.start()
    assert runtime.media is not None and runtime.media_extras is not None
    # A two-segment live window, so an 8 s stream shows the DVR playlist holding more.
    runtime.media.config = PackagingConfig(window_segments=2, keep_extra_segments=1)
    yield runtime
    await runtime.stop()


def _port(runtime: Runtime) -> int:
    assert runtime.rtmp is not None
    return runtime.rtmp.port


async def _stream(db: Database, stream_id: str) -> dict[str, Any]:
    async with db.session(Claims.service()) as s:
        row = await s.fetchrow("SELECT * FROM nchat_streams WHERE id = $1", stream_id)
    assert row is not None
    return dict(row)


async def _recordings(db: Database, stream_id: str) -> list[dict[str, Any]]:
    async with db.session(Claims.service()) as s:
        rows = await s.fetch(
            "SELECT * FROM nchat_stream_recordings WHERE stream_id = $1 ORDER BY created_at", stream_id
        )
    return [dict(r) for r in rows]


def _decode_seconds(playlist: Path) -> tuple[float, int, tuple[int, int]]:
    """Decodes every video frame of an HLS playlist; (seconds covered, frames, size)."""
    with av.open(str(playlist)) as container:
        stream = container.streams.video[0]
        times = [float(f.pts * f.time_base) for f in container.decode(stream) if f.pts is not None]
        size = (stream.codec_context.width, stream.codec_context.height)
    return max(times) - min(times) + 1 / 30, len(times), size


async def test_rtmp_stream_goes_live_is_recorded_and_replays(stack: Runtime, world: World, db: Database) -> None:
    assert stack.media is not None and stack.media_extras is not None
    stream_id = world.public_stream
    live_dir = stack.settings.media_dir / stream_id
    publisher = asyncio.create_task(run_publisher(
        _port(stack), world.public_key, "--seconds", "8", "--size", "640x360", "--realtime"
    ))
    app = create_app(runtime=stack)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as http:
        # HLS appears and the stream goes live while the publisher is still sending.
        await eventually(lambda: asyncio.to_thread((live_dir / "master.m3u8").is_file), 15)
        row = await eventually(lambda: _live_row(db, stream_id), 10)
        assert row["hls_manifest_url"].endswith(f"/hls/{stream_id}/master.m3u8")
        assert row["thumbnail_url"] == f"http://testserver/hls/{stream_id}/thumbnail.jpg"
        thumb = await http.get(f"/hls/{stream_id}/thumbnail.jpg")
        assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
        with av.open(io.BytesIO(thumb.content)) as image:
            frame = next(image.decode(video=0))
            assert (frame.width, frame.height) == (640, 360)
        code, err = await publisher
        assert code == 0, err
        # DVR holds every segment so far; the live playlist only its short window.
        dvr = (await http.get(f"/hls/{stream_id}/360p/dvr.m3u8")).text
        live = (await http.get(f"/hls/{stream_id}/360p/index.m3u8")).text
        assert dvr.count("#EXTINF") >= 3 and live.count("#EXTINF") <= 2 < dvr.count("#EXTINF")
        assert "#EXT-X-MEDIA-SEQUENCE:0" in dvr and "#EXT-X-PART" not in dvr
        assert (await http.get(f"/hls/{stream_id}/dvr.m3u8")).text.count("360p/dvr.m3u8") == 1

        # The publisher left: after the grace period the stream ends with a recording.
        recordings = await eventually(lambda: _recordings(db, stream_id), 20)
        row = await _stream(db, stream_id)
        assert row["status"] == "ended"
        rec = recordings[0]
        assert rec["kind"] == "full" and rec["status"] == "ready" and rec["renditions"] == ["360p"]
        assert row["recording_url"] == rec["url"] == f"http://testserver/recordings/{stream_id}/master.m3u8"
        assert 6.0 <= float(rec["duration_seconds"]) <= 10.0 and rec["size_bytes"] > 10_000
        assert rec["thumbnail_url"] == f"http://testserver/recordings/{stream_id}/thumbnail.jpg"
        assert row["thumbnail_url"] == rec["thumbnail_url"]  # the live one is going away

        vod = (await http.get(f"/recordings/{stream_id}/360p/index.m3u8")).text
        assert "#EXT-X-PLAYLIST-TYPE:VOD" in vod and vod.rstrip().endswith("#EXT-X-ENDLIST")
        master = await http.get(f"/recordings/{stream_id}/master.m3u8")
        assert master.status_code == 200 and "360p/index.m3u8" in master.text
        assert (await http.get(f"/recordings/{stream_id}/360p/seg0.m4s")).status_code == 200
        assert (await http.get(f"/recordings/{stream_id}/../../etc/passwd")).status_code == 404
        seconds, frames, size = await asyncio.to_thread(
            _decode_seconds, stack.settings.recording_dir / stream_id / "master.m3u8"
        )
        assert size == (640, 360) and frames >= 180
        assert abs(seconds - float(rec["duration_seconds"])) <= 2.0 and abs(seconds - 8.0) <= 2.0

        # Live files of the ended stream are cleaned up; the thumbnail stays.
        await eventually(lambda: asyncio.to_thread(lambda: not (live_dir / "360p").exists()), 10)
        assert (live_dir / "thumbnail.jpg").is_file()

        # A clip over 2..4 s: a VOD playlist over the recorded segments of that range.
        async with db.session(Claims(role="user", user_id=world.alice)) as s:
            clip = await create_clip(s, stack.settings, stream_id, 2.0, 4.0)
        assert clip["kind"] == "clip" and clip["url"].endswith(f"/clips/{clip['id']}/master.m3u8")
        assert 2.0 <= float(clip["duration_seconds"]) <= 4.5
        clip_playlist = stack.settings.recording_dir / stream_id / "clips" / str(clip["id"]) / "360p" / "index.m3u8"
        text = clip_playlist.read_text()
        assert "#EXT-X-ENDLIST" in text and "../../../360p/seg1.m4s" in text and "seg0.m4s" not in text
        clip_seconds, _, _ = await asyncio.to_thread(_decode_seconds, clip_playlist)
        assert 1.9 <= clip_seconds <= 4.6
        async with db.session(Claims(role="user", user_id=world.bob)) as s:
            with pytest.raises(Exception, match="only the broadcaster or channel staff"):
                await create_clip(s, stack.settings, stream_id, 0.0, 1.0)

        # Deleting the recording (as its broadcaster) removes files and rows, clips included.
        async with db.session(Claims(role="user", user_id=world.bob)) as s:
            with pytest.raises(Exception, match="only the broadcaster or an admin"):
                await delete_recording(s, stack.settings, str(rec["id"]))
        async with db.session(Claims(role="user", user_id=world.alice)) as s:
            await delete_recording(s, stack.settings, str(rec["id"]))
        assert await _recordings(db, stream_id) == []
        assert (await _stream(db, stream_id))["recording_url"] is None
        assert not (stack.settings.recording_dir / stream_id).exists()


async def _live_row(db: Database, stream_id: str) -> dict[str, Any] | None:
    row = await _stream(db, stream_id)
    return row if row["status"] == "live" and row["thumbnail_url"] and row["hls_manifest_url"] else None


async def test_reconnect_within_grace_is_one_recording_with_a_discontinuity(
    stack: Runtime, world: World, db: Database
) -> None:
    stream_id = world.private_stream
    for _ in range(2):
        code, err = await run_publisher(_port(stack), world.private_key, "--seconds", "3", "--realtime")
        assert code == 0, err
    recordings = await eventually(lambda: _recordings(db, stream_id), 20)
    assert len(recordings) == 1
    rec = recordings[0]
    assert rec["status"] == "ready" and 4.0 <= float(rec["duration_seconds"]) <= 8.0
    playlist = stack.settings.recording_dir / stream_id / rec["renditions"][0] / "index.m3u8"
    assert playlist.read_text().count("#EXT-X-DISCONTINUITY\n") == 1
    assert (await _stream(db, stream_id))["status"] == "ended"
    _, frames, _ = await asyncio.to_thread(_decode_seconds, playlist)
    assert frames >= 120


async def test_two_publishers_unknown_key_and_second_publisher(stack: Runtime, world: World, db: Database) -> None:
    # Fresh streams (the world's were used above); not recorded, so their live files just go away.
    async with db.session(Claims.service()) as s:
        rows = [await s.fetchrow(
            "INSERT INTO nchat_streams (channel_id, broadcaster_id, title, is_recorded) VALUES ($1, $2, $3, false) "
            "RETURNING id, stream_key", world.public_channel, world.alice, f"parallel {n}",
        ) for n in range(2)]
    assert all(rows)
    port = _port(stack)
    runs = [asyncio.create_task(run_publisher(port, r["stream_key"], "--seconds", "3", "--realtime")) for r in rows]
    await eventually(lambda: _both_live(db, [str(r["id"]) for r in rows]), 15)
    # A second publisher for a live stream is refused, and so is an unknown key.
    client = await RtmpTestClient.connect(port)
    reply = await client.start_publish(rows[0]["stream_key"])
    assert reply[3]["level"] == "error" and "already has a publisher" in reply[3]["description"]
    await client.close()
    client = await RtmpTestClient.connect(port)
    reply = await client.start_publish("0" * 48)
    assert reply[3]["code"] == "NetStream.Publish.BadName" and reply[3]["description"] == "unknown stream key"
    assert await client.closed_by_server()
    await client.close()
    assert [code for code, _ in await asyncio.gather(*runs)] == [0, 0]
    for row in rows:
        stream_id = str(row["id"])
        await eventually(lambda sid=stream_id: _status_is(db, sid, "ended"), 15)
        assert await _recordings(db, stream_id) == []
        await eventually(lambda sid=stream_id: asyncio.to_thread(
            lambda: not (stack.settings.media_dir / sid / "master.m3u8").exists()), 10)


async def _both_live(db: Database, ids: list[str]) -> bool:
    return all([(await _stream(db, i))["status"] == "live" for i in ids])


async def _status_is(db: Database, stream_id: str, status: str) -> bool:
    return (await _stream(db, stream_id))["status"] == status
