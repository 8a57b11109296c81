"""WHIP in, LL-HLS out: a real aiortc publisher, real encoding, the app on an in-process ASGI transport."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import av
import httpx
import pytest

from nchat_live.auth import Claims
from nchat_live.config import Settings
from nchat_live.db import Database
from tests.support import World

from .media_client import SyntheticVideo, WhipClient
from .media_server import Server, media_server

pytestmark = pytest.mark.slow

SDP_TYPE = {"Content-Type": "application/sdp"}


@pytest.fixture
async def server(settings: Settings, tmp_path: Path) -> AsyncIterator[Server]:
    async with media_server(settings, tmp_path / "live", publisher_grace_seconds=2.5,
                            media_metrics_seconds=1.0) as live:
        yield live


async def wait_for(http: httpx.AsyncClient, url: str, seconds: float = 30) -> httpx.Response:
    deadline = time.monotonic() + seconds
    while True:
        response = await http.get(url)
        if response.status_code == 200 or time.monotonic() > deadline:
            return response
        await asyncio.sleep(0.2)


async def stream_row(db: Database, stream_id: str) -> dict[str, Any]:
    async with db.session(Claims.service()) as s:
        row = await s.fetchrow(
            "SELECT status, started_at, ended_at, hls_manifest_url, end_reason FROM nchat_streams WHERE id = $1",
            stream_id,
        )
    assert row is not None
    return dict(row)


def last_part(playlist: str) -> tuple[int, int]:
    """(msn, index) of the newest EXT-X-PART."""
    uris = re.findall(r'#EXT-X-PART:[^\n]*URI="seg(\d+)\.(\d+)\.m4s"', playlist)
    msn, index = uris[-1]
    return int(msn), int(index)


async def test_whip_refuses_bad_key_unknown_stream_and_bad_sdp(server: Server, world: World) -> None:
    client = WhipClient(server.http, world.public_stream, "wrong-key")
    try:
        response = await client.start()
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "invalid-stream-key"
        assert "Bearer" in response.headers["www-authenticate"]
    finally:
        await client.stop()

    for missing in (str(uuid.uuid4()), "not-a-uuid"):
        response = await server.http.post(f"/whip/{missing}", content="v=0\r\n",
                                          headers={"Authorization": "Bearer x"} | SDP_TYPE)
        assert response.status_code == 404, missing
        assert response.json()["error"]["code"] == "stream-not-found"

    auth = {"Authorization": f"Bearer {world.public_key}"}
    response = await server.http.post(f"/whip/{world.public_stream}", content="hello", headers=auth | SDP_TYPE)
    assert response.status_code == 400
    assert "v=0" in response.json()["error"]["message"]
    no_media = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
    response = await server.http.post(f"/whip/{world.public_stream}", content=no_media, headers=auth | SDP_TYPE)
    assert response.status_code == 400
    assert "no audio or video" in response.json()["error"]["message"]
    response = await server.http.post(f"/whip/{world.public_stream}", content=no_media,
                                      headers=auth | {"Content-Type": "text/plain"})
    assert response.status_code == 415

    response = await server.http.options(f"/whip/{world.public_stream}")
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == "*"
    assert "application/sdp" in response.headers["accept-post"]
    # Nothing was published: the stream is untouched.
    assert (await stream_row(server.runtime.database, world.public_stream))["status"] == "scheduled"


async def test_publish_produces_ll_hls_ladder_and_reconnect_continues_stream(server: Server, world: World) -> None:
    db = server.runtime.database
    stream = world.public_stream
    client = WhipClient(server.http, stream, world.public_key, SyntheticVideo(1280, 720, 30))
    response = await client.start()
    assert response.status_code == 201, response.text
    assert response.headers["content-type"].startswith("application/sdp")
    assert response.headers["location"].startswith(f"/whip/{stream}/")
    assert "a=recvonly" in response.text

    master = await wait_for(server.http, f"/hls/{stream}/master.m3u8")
    assert master.status_code == 200, master.text
    assert master.headers["content-type"].startswith("application/vnd.apple.mpegurl")
    assert master.headers["cache-control"] == "no-cache"
    assert master.headers["access-control-allow-origin"] == "*"
    entries = re.findall(r"#EXT-X-STREAM-INF:([^\n]+)\n([^\n]+)", master.text)
    assert [uri for _, uri in entries] == ["720p/index.m3u8", "480p/index.m3u8", "360p/index.m3u8"]
    for attributes, _ in entries:
        for name in ("BANDWIDTH=", "AVERAGE-BANDWIDTH=", "RESOLUTION=", "FRAME-RATE=", 'CODECS="avc1.'):
            assert name in attributes
        assert "mp4a.40.2" in attributes
    assert "RESOLUTION=1280x720" in entries[0][0] and "RESOLUTION=640x360" in entries[2][0]

    # A second publisher while the first is live.
    second = WhipClient(server.http, stream, world.public_key)
    try:
        assert (await second.start()).status_code == 409
    finally:
        await second.stop()

    row = await stream_row(db, stream)
    assert row["status"] == "live" and row["started_at"] is not None
    assert row["hls_manifest_url"] == f"http://testserver/hls/{stream}/master.m3u8"

    # Let a couple of segments accumulate, then ask for the next part with a blocking reload.
    for _ in range(100):
        playlist = (await server.http.get(f"/hls/{stream}/360p/index.m3u8")).text
        if playlist.count("#EXTINF:") >= 2:
            break
        await asyncio.sleep(0.2)
    for tag in ("#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=", "#EXT-X-PART-INF:PART-TARGET=",
                "#EXT-X-PRELOAD-HINT:TYPE=PART", "#EXT-X-PROGRAM-DATE-TIME:", '#EXT-X-MAP:URI="init.mp4"',
                '#EXT-X-RENDITION-REPORT:URI="../720p/index.m3u8"', "INDEPENDENT=YES", "#EXTINF:"):
        assert tag in playlist, tag
    target = float(re.search(r"PART-TARGET=([\d.]+)", playlist).group(1))  # type: ignore[union-attr]
    durations = [float(d) for d in re.findall(r"#EXT-X-PART:DURATION=([\d.]+)", playlist)]
    assert durations and max(durations) <= target
    hold_back = float(re.search(r"PART-HOLD-BACK=([\d.]+)", playlist).group(1))  # type: ignore[union-attr]
    assert hold_back >= 3 * target
    msn, index = last_part(playlist)
    started = time.monotonic()
    blocked = await server.http.get(f"/hls/{stream}/360p/index.m3u8",
                                    params={"_HLS_msn": msn, "_HLS_part": index + 1})
    waited = time.monotonic() - started
    assert blocked.status_code == 200
    assert last_part(blocked.text) > (msn, index)
    assert waited < 3 * 2
    too_far = await server.http.get(f"/hls/{stream}/360p/index.m3u8", params={"_HLS_msn": msn + 5})
    assert too_far.status_code == 400
    alone = await server.http.get(f"/hls/{stream}/360p/index.m3u8", params={"_HLS_part": 1})
    assert alone.status_code == 400

    # The publisher vanishes and comes back within the grace period: same stream, a discontinuity.
    await client.drop()
    await asyncio.sleep(1.0)
    again = WhipClient(server.http, stream, world.public_key, SyntheticVideo(1280, 720, 30))
    response = await again.start()
    assert response.status_code == 201, response.text
    await asyncio.sleep(4.5)
    row = await stream_row(db, stream)
    assert row["status"] == "live"
    live_playlist = (await server.http.get(f"/hls/{stream}/720p/index.m3u8")).text
    assert "#EXT-X-DISCONTINUITY" in live_playlist

    deleted = await again.stop()
    assert deleted is not None and deleted.status_code == 200
    for _ in range(60):  # the grace period (2.5 s) plus closing the encoders
        if (row := await stream_row(db, stream))["status"] == "ended":
            break
        await asyncio.sleep(0.3)
    assert row["status"] == "ended" and row["ended_at"] is not None
    assert row["end_reason"] == "publisher-left"

    # Served from storage now: the playlist is final, and every segment decodes as announced.
    expected = {"720p": (1280, 720), "480p": (854, 480), "360p": (640, 360)}
    for name, (width, height) in expected.items():
        playlist = (await server.http.get(f"/hls/{stream}/{name}/index.m3u8")).text
        assert playlist.rstrip().endswith("#EXT-X-ENDLIST") or "#EXT-X-ENDLIST" in playlist
        assert max(float(d) for d in re.findall(r"#EXT-X-PART:DURATION=([\d.]+)", playlist)) <= target
        segments = segment_maps(playlist)
        assert len(segments) >= 2
        assert len({init_uri for _, init_uri in segments}) == 2, "the reconnect starts a new init segment"
        for uri, init_uri in segments[-2:]:
            init = await server.http.get(f"/hls/{stream}/{name}/{init_uri}")
            assert init.status_code == 200 and init.headers["content-type"] == "video/mp4"
            segment = await server.http.get(f"/hls/{stream}/{name}/{uri}")
            assert segment.status_code == 200
            assert segment.headers["content-type"] == "video/iso.segment"
            assert "immutable" in segment.headers["cache-control"]
            frames = decode(init.content + segment.content)
            assert frames, uri
            first = frames[0]
            assert (first.width, first.height) == (width, height)
            assert first.key_frame, f"{name}/{uri} does not start with a keyframe"

    async with db.session(Claims.service()) as s:
        metrics = await s.fetch(
            "SELECT fps, resolution, encoder_speed, health_score FROM nchat_stream_quality_metrics "
            "WHERE stream_id = $1", stream,
        )
    assert metrics, "no quality metrics were recorded"
    assert any(m["resolution"] == "1280x720" for m in metrics)


def segment_maps(playlist: str) -> list[tuple[str, str]]:
    """(segment URI, the EXT-X-MAP URI that applies to it) in playlist order."""
    current = ""
    found = []
    for line in playlist.splitlines():
        if line.startswith("#EXT-X-MAP:"):
            current = line.split('URI="')[1].rstrip('"')
        elif re.fullmatch(r"seg\d+\.m4s", line):
            found.append((line, current))
    return found


def decode(data: bytes) -> list[av.VideoFrame]:
    import io

    with av.open(io.BytesIO(data), format="mp4") as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        return list(container.decode(stream))
