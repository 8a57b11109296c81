"""Archive: an old recording moves to cold storage (moto's S3 server over HTTP, as in test_storage.py)
and still plays through /recordings; an old quality-metrics month is exported, read back and dropped;
`nchat-live archive` does the same from the command line (a file:// archive)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path

import asyncpg
import av
import boto3
import httpx
import pytest
from moto.server import ThreadedMotoServer
from starlette.applications import Starlette

from nchat_live import cli
from nchat_live.app import create_app
from nchat_live.auth import Claims
from nchat_live.config import Settings
from nchat_live.db import Database
from nchat_live.media.extras.archive import MANIFEST, Archiver, month_bounds, read_metrics
from nchat_live.media.storage.archive import archive_storage, metrics_key, recording_key
from tests.support import World


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def make_recording(folder: Path, seconds: float = 2.0) -> int:
    """A small real HLS recording (fMP4, 320x240, H.264 + AAC) as the recorder leaves it; its frame count."""
    rendition = folder / "240p"
    rendition.mkdir(parents=True)
    out = av.open(str(rendition / "index.m3u8"), "w", format="hls", options={
        "hls_segment_type": "fmp4", "hls_fmp4_init_filename": "init.mp4", "hls_time": "1",
        "hls_segment_filename": str(rendition / "seg%d.m4s"), "hls_playlist_type": "vod"})
    video = out.add_stream("libx264", rate=24)
    video.width, video.height, video.pix_fmt = 320, 240, "yuv420p"
    video.options = {"g": "24", "preset": "ultrafast"}
    frames = int(seconds * 24)
    for i in range(frames):
        frame = av.VideoFrame(320, 240, "yuv420p")
        for plane in frame.planes:
            plane.update(bytes([(i * 5) % 256]) * plane.buffer_size)
        frame.pts, frame.time_base = i, Fraction(1, 24)
        for packet in video.encode(frame):
            out.mux(packet)
    for packet in video.encode():
        out.mux(packet)
    out.close()
    (folder / "master.m3u8").write_text("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=400000,RESOLUTION=320x240\n"
                                        "240p/index.m3u8\n")
    (folder / "thumbnail.jpg").write_bytes(b"\xff\xd8jpeg\xff\xd9")
    return frames


async def add_recording(db: Database, stream_id: str, age_days: float) -> None:
    async with db.session(Claims.service()) as s:
        await s.execute(
            "INSERT INTO nchat_stream_recordings (stream_id, kind, status, url, renditions, created_at) "
            "VALUES ($1, 'full', 'ready', $2, '{240p}', $3)",
            stream_id, f"http://testserver/recordings/{stream_id}/master.m3u8",
            datetime.now(UTC) - timedelta(days=age_days))


async def old_metrics(database_url: str, stream_id: str, month: str, count: int) -> None:
    """Rows in an old month's own partition (created as the schema owner, as the scheduler does)."""
    start = month_bounds(f"nchat_stream_quality_metrics_{month}")
    assert start is not None
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("SELECT nchat.ensure_quality_metrics_partition($1)", start[0])
        await conn.executemany(
            "INSERT INTO nchat_stream_quality_metrics (stream_id, recorded_at, bitrate_kbps, health_score, metadata) "
            "VALUES ($1, $2, $3, $4, '{\"source\": \"test\"}')",
            [(stream_id, start[0] + timedelta(hours=i), 1000 + i, 90) for i in range(count)])
    finally:
        await conn.close()


async def _fetch_all(app: Starlette, stream_id: str, into: Path) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://testserver") as http:
        for path in ("master.m3u8", "240p/index.m3u8", "240p/init.mp4", "thumbnail.jpg"):
            r = await http.get(f"/recordings/{stream_id}/{path}")
            assert r.status_code == 200, (path, r.text)
            (into / path).parent.mkdir(parents=True, exist_ok=True)
            (into / path).write_bytes(r.content)
        for line in (into / "240p/index.m3u8").read_text().splitlines():
            if line.endswith(".m4s"):
                r = await http.get(f"/recordings/{stream_id}/240p/{line}")
                assert r.status_code == 200 and r.headers["content-type"] == "video/iso.segment"
                (into / "240p" / line).write_bytes(r.content)
        missing = await http.get(f"/recordings/{stream_id}/240p/seg99.m4s")
        assert missing.status_code == 404


def _frames(playlist: Path) -> int:
    with av.open(str(playlist)) as container:
        return sum(1 for _ in container.decode(video=0))


async def test_archive_to_s3_then_play_and_read_metrics_back(
    settings: Settings, db: Database, world: World, database_url: str, s3_endpoint: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in (("AWS_ACCESS_KEY_ID", "test"), ("AWS_SECRET_ACCESS_KEY", "test"),
                        ("AWS_DEFAULT_REGION", "us-east-1")):
        monkeypatch.setenv(name, value)
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket="cold")
    config = settings.model_copy(update={
        "recording_dir": tmp_path / "recordings", "media_enabled": False,
        "archive_url": f"s3://cold/nchat?endpoint={s3_endpoint}&region=us-east-1",
        "archive_recordings_after_days": 30.0, "archive_metrics_after_days": 30.0,
    })
    stream_id = world.public_stream
    folder = config.recording_dir / stream_id
    frames = make_recording(folder)
    await add_recording(db, stream_id, age_days=45)
    await old_metrics(database_url, stream_id, "2020_03", 5)

    report = await Archiver(config, db).run()
    assert report.recordings == [stream_id] and report.files >= 5
    assert report.partitions == ["nchat_stream_quality_metrics_2020_03"] and report.rows == 5
    assert not folder.exists()
    archive = archive_storage(config)
    assert archive is not None and archive.read(recording_key(stream_id, MANIFEST))
    async with db.session(Claims.service()) as s:
        meta = await s.fetchval("SELECT metadata FROM nchat_stream_recordings WHERE stream_id = $1", stream_id)
        assert meta["archive"]["files"] == report.files and meta["archive"]["bytes"] == report.bytes
        assert await s.fetchval("SELECT to_regclass('nchat_stream_quality_metrics_2020_03')") is None
        current = await s.fetchval("SELECT count(*) FROM pg_inherits WHERE inhparent = "
                                   "'nchat_stream_quality_metrics'::regclass")
    assert current >= 2  # this month's and next month's stay

    # The archived recording still plays: every file comes back through /recordings, and decodes whole.
    app = create_app(config)
    async with app.router.lifespan_context(app):
        await _fetch_all(app, stream_id, tmp_path / "played")
    assert _frames(tmp_path / "played" / "240p" / "index.m3u8") == frames

    # The metrics month reads back from the archive, row for row.
    rows = read_metrics(archive.read(metrics_key("nchat_stream_quality_metrics_2020_03")) or b"")
    assert [int(r["bitrate_kbps"]) for r in rows] == [1000, 1001, 1002, 1003, 1004]
    assert {r["stream_id"] for r in rows} == {stream_id} and rows[0]["metadata"] == '{"source":"test"}'
    assert rows[0]["recorded_at"].startswith("2020-03-01")

    # A second pass has nothing left to do.
    again = await Archiver(config, db).run()
    assert again.recordings == [] and again.partitions == []


async def test_the_command_archives_to_a_folder(
    settings: Settings, db: Database, world: World, database_url: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    stream_id = world.private_stream
    recordings = tmp_path / "recordings"
    make_recording(recordings / stream_id, seconds=1.0)
    await add_recording(db, stream_id, age_days=100)
    cold = tmp_path / "cold"
    env = {"DATABASE_URL": database_url, "STREAM_RECORDING_PATH": str(recordings), "NCHAT_ARCHIVE_URL": cold.as_uri(),
           "NCHAT_JWT_SECRET": settings.jwt_secret, "NCHAT_ARCHIVE_METRICS_AFTER_DAYS": "36500"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    code = await _run_cli(["archive"])
    assert code == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "archived 1 recordings" in out
    assert (cold / "recordings" / stream_id / "240p" / "index.m3u8").is_file()
    assert not (recordings / stream_id).exists()
    monkeypatch.setenv("NCHAT_ARCHIVE_URL", "ftp://nowhere")
    assert await _run_cli(["archive"]) == 2
    assert "NCHAT_ARCHIVE_URL" in capsys.readouterr().err


async def _run_cli(argv: list[str]) -> int:
    # cli.main runs its own event loop: in a thread, away from this test's.
    return await asyncio.to_thread(cli.main, argv)
