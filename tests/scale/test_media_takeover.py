"""Media worker takeover: real `nchat-live media-worker` and `api` subprocesses, one database, shared storage.

A publisher (aiortc) goes live on one worker; that worker is SIGKILLed. The publisher reconnects
through the API process (307 to a live worker) and the other worker continues the stream: it stays
live, the HLS playlist goes on with EXT-X-DISCONTINUITY and higher media sequence numbers. Without
a returning publisher, a restarted worker ends the stream after the grace period and finalises its
recording from the dead worker's journal.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from nchat_live.auth import Claims
from nchat_live.db import Database
from tests.media.media_client import SyntheticVideo, WhipClient
from tests.scale.harness import ApiProcess
from tests.support import JWT_SECRET, World

pytestmark = pytest.mark.slow

LEASE_TTL = 3.0
GRACE = 6.0


class MediaWorker(ApiProcess):
    """`nchat-live media-worker` on a free port; its public URL is where the API redirects publishers."""

    def start(self) -> None:
        exe = Path(sys.executable).parent / "nchat-live"
        self.env = {**self.env, "NCHAT_PUBLIC_URL": self.http, "NCHAT_WORKER_ID": self.name}
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [str(exe), "media-worker", "--host", "127.0.0.1", "--port", str(self.port), "--no-migrate",
                 "--log-level", "warning"],
                env={**os.environ, **self.env}, stdout=out, stderr=subprocess.STDOUT,
            )


def worker_env(database_url: str, tmp_path: Path) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url, "BUS_URL": "memory://", "NCHAT_JWT_SECRET": JWT_SECRET,
        "NCHAT_MEDIA_DIR": str(tmp_path / "live"), "STREAM_RECORDING_PATH": str(tmp_path / "recordings"),
        "NCHAT_LEASE_TTL_SECONDS": str(LEASE_TTL), "NCHAT_PUBLISHER_GRACE_SECONDS": str(GRACE),
        "NCHAT_ORPHAN_SWEEP_SECONDS": "1", "NCHAT_RTMP_ENABLED": "0", "NCHAT_DB_POOL_SIZE": "4",
        "NCHAT_MEDIA_CLEANUP_DELAY_SECONDS": "300", "NCHAT_DVR_WINDOW_SECONDS": "0",
        "NCHAT_THUMBNAIL_INTERVAL_SECONDS": "30",
    }


@pytest.fixture
def processes() -> Iterator[list[ApiProcess]]:
    started: list[ApiProcess] = []
    yield started
    for process in started:
        process.stop()


async def new_stream(db: Database, world: World) -> tuple[str, str]:
    async with db.session(Claims.service()) as s:
        row = await s.fetchrow(
            "INSERT INTO nchat_streams (channel_id, broadcaster_id, title, max_resolution, is_recorded) "
            "VALUES ($1, $2, 'takeover', '360p', true) RETURNING id, stream_key",
            world.public_channel, world.alice,
        )
    assert row is not None
    return str(row["id"]), row["stream_key"]


async def stream_row(db: Database, stream_id: str) -> dict[str, Any]:
    async with db.session(Claims.service()) as s:
        row = await s.fetchrow(
            "SELECT s.status, s.end_reason, s.recording_url, l.worker_id FROM nchat_streams s "
            "LEFT JOIN nchat_media_leases l ON l.stream_id = s.id WHERE s.id = $1", stream_id)
    assert row is not None
    return dict(row)


def segments(playlist: str) -> list[int]:
    return [int(m) for m in re.findall(r"^seg(\d+)\.m4s$", playlist, re.MULTILINE)]


def media_sequence(playlist: str) -> int:
    match = re.search(r"#EXT-X-MEDIA-SEQUENCE:(\d+)", playlist)
    assert match is not None
    return int(match.group(1))


async def wait_until(predicate: Any, seconds: float, what: str, step: float = 0.2) -> Any:
    """Poll `predicate` (sync or async) until it returns something truthy."""
    deadline = time.monotonic() + seconds
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds:.0f}s waiting for {what}")
        await asyncio.sleep(step)


def playlist_file(tmp_path: Path, stream_id: str) -> Path:
    return tmp_path / "live" / stream_id / "360p" / "index.m3u8"


def read(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""


async def publish(base_url: str, stream_id: str, key: str, within: float) -> tuple[WhipClient, str]:
    """Publish until a worker accepts (a 409 or a dead worker is retried, as a real encoder does);
    returns the client and the worker's URL that answered 201.

    A 307 is followed by hand with the same bearer key, as a WHIP client does (RFC 9725 §4.5);
    httpx itself drops Authorization on a redirect to another origin.
    """
    deadline = time.monotonic() + within
    last = ""
    target = base_url
    while time.monotonic() < deadline:
        http = httpx.AsyncClient(base_url=target, timeout=10)
        client = WhipClient(http, stream_id, key, video=SyntheticVideo(640, 360, fps=15))
        try:
            response = await client.start()
            if response.status_code == 201:
                return client, target
            last = f"{response.status_code} {response.text[:200]}"
            if response.status_code == 307:
                target = response.headers["location"].split("/whip/")[0]
                await client.drop()
                await http.aclose()
                continue
        except httpx.HTTPError as exc:
            last = f"{type(exc).__name__} on {target}: {exc}"
        target = base_url
        await client.drop()
        await http.aclose()
        await asyncio.sleep(0.3)
    raise AssertionError(f"no worker accepted the publisher within {within:.0f}s: {last}")


async def test_killed_worker_stream_continues_on_another_worker(
    database_url: str, db: Database, world: World, tmp_path: Path, processes: list[ApiProcess]
) -> None:
    env = worker_env(database_url, tmp_path)
    workers = {name: MediaWorker(env, name=f"worker-{name}-{tmp_path.name[-6:]}") for name in ("a", "b")}
    api = ApiProcess({**env, "NCHAT_MEDIA_ENABLED": "0"}, name="api")
    processes += [*workers.values(), api]
    for process in processes:
        process.start()
    await asyncio.gather(*(p.ready() for p in processes))
    stream_id, key = await new_stream(db, world)
    playlist = playlist_file(tmp_path, stream_id)

    # Through the API: 307 to a worker, which takes the stream live.
    first, first_url = await publish(api.http, stream_id, key, within=20)
    owner = next(w for w in workers.values() if w.http == first_url)
    other = next(w for w in workers.values() if w is not owner)
    await wait_until(lambda: len(segments(read(playlist))) >= 2, 30, "two segments from the first worker")
    row = await stream_row(db, stream_id)
    assert row["status"] == "live" and row["worker_id"] == owner.name
    before = read(playlist)
    last_before = max(int(n) for n in re.findall(r"seg(\d+)\.", before))

    killed_at = time.monotonic()
    owner.kill()
    await first.drop()
    await first.http.aclose()
    second, second_url = await publish(api.http, stream_id, key, within=LEASE_TTL + 15)
    reconnected = time.monotonic() - killed_at
    assert second_url == other.http

    async def new_segment() -> str | None:
        text = read(playlist)
        return text if any(n > last_before for n in segments(text)) else None

    after = await wait_until(new_segment, 20, "a segment from the second worker", step=0.05)
    takeover = time.monotonic() - killed_at
    print(f"\ntakeover: publisher accepted by the second worker {reconnected:.2f}s after SIGKILL, "
          f"first new segment {takeover:.2f}s after (lease TTL {LEASE_TTL:.0f}s)")
    assert takeover < LEASE_TTL + 15

    # The same stream goes on: live in the database, leased to the second worker, and the playlist
    # continues after a discontinuity with higher media sequence numbers (old ones still listed).
    row = await stream_row(db, stream_id)
    assert row["status"] == "live"
    assert row["worker_id"] == other.name
    numbers = segments(after)
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)
    assert "#EXT-X-DISCONTINUITY\n" in after
    assert media_sequence(after) >= media_sequence(before)
    assert min(n for n in numbers if n > last_before) == last_before + 1
    new_map = re.findall(r'#EXT-X-MAP:URI="([^"]+)"', after)[-1]
    assert new_map != "init.mp4"  # the old window still refers to the first worker's init segment

    # The recording goes on in the same journal: the first worker's segments kept, new ones after them.
    journal = tmp_path / "recordings" / stream_id / "360p" / "journal.jsonl"

    def recorded() -> list[int]:
        return [int(n) for n in re.findall(r'"uri": "seg(\d+)\.m4s"', read(journal))]

    numbers_recorded = await wait_until(lambda: (r := recorded()) and r[-1] > last_before and r, 15,
                                        "a recorded segment from the second worker")
    assert numbers_recorded[0] == 0 and numbers_recorded == sorted(set(numbers_recorded))
    assert '"discontinuity": true' in read(journal)

    # The API process serves the stream's playlists from the shared storage.
    async with httpx.AsyncClient(base_url=api.http, timeout=15) as http:
        response = await http.get(f"/hls/{stream_id}/360p/index.m3u8")
        assert response.status_code == 200 and "#EXT-X-DISCONTINUITY" in response.text
        newest = max(segments(response.text))
        # A blocking reload on the API process waits (polling storage) for the next segment.
        blocked = await http.get(f"/hls/{stream_id}/360p/index.m3u8", params={"_HLS_msn": newest + 1})
        assert blocked.status_code == 200 and newest + 1 in segments(blocked.text)
    await second.drop()
    await second.http.aclose()


async def test_worker_lost_without_publisher_ends_stream_and_finalises_recording(
    database_url: str, db: Database, world: World, tmp_path: Path, processes: list[ApiProcess]
) -> None:
    env = worker_env(database_url, tmp_path)
    first = MediaWorker(env, name=f"worker-first-{tmp_path.name[-6:]}")
    processes.append(first)
    first.start()
    await first.ready()
    stream_id, key = await new_stream(db, world)
    client, _ = await publish(first.http, stream_id, key, within=20)
    journal = tmp_path / "recordings" / stream_id / "360p" / "journal.jsonl"
    await wait_until(lambda: len(read(journal).splitlines()) >= 2, 30, "two recorded segments")
    recorded_before = len(read(journal).splitlines())

    killed_at = time.monotonic()
    first.kill()
    await client.drop()
    await client.http.aclose()
    restarted = MediaWorker(env, name=f"worker-restarted-{tmp_path.name[-6:]}")
    processes.append(restarted)
    restarted.start()
    await restarted.ready()

    async def ended() -> dict[str, Any] | None:
        row = await stream_row(db, stream_id)
        # The lease is released in its own statement after the end commits: wait for both.
        return row if row["status"] == "ended" and row["recording_url"] and row["worker_id"] is None else None

    row = await wait_until(ended, LEASE_TTL + GRACE + 20, "the stream to end with its recording and lease released")
    print(f"\nworker lost: stream ended and recording finalised {time.monotonic() - killed_at:.2f}s after "
          f"SIGKILL (lease TTL {LEASE_TTL:.0f}s, grace {GRACE:.0f}s)")
    assert row["end_reason"] == "worker-lost"
    assert row["worker_id"] is None  # the lease was released
    async with db.session(Claims.service()) as s:
        recording = await s.fetchrow(
            "SELECT status, duration_seconds, renditions FROM nchat_stream_recordings WHERE stream_id = $1", stream_id)
    assert recording is not None and recording["status"] == "ready"
    assert recording["renditions"] == ["360p"] and recording["duration_seconds"] > 2
    vod = (tmp_path / "recordings" / stream_id / "360p" / "index.m3u8").read_text()
    assert "#EXT-X-PLAYLIST-TYPE:VOD" in vod and vod.rstrip().endswith("#EXT-X-ENDLIST")
    assert len(segments(vod)) >= recorded_before
    assert (tmp_path / "recordings" / stream_id / "master.m3u8").is_file()
    # Players still on the live playlist are told it ended.
    assert read(playlist_file(tmp_path, stream_id)).rstrip().endswith("#EXT-X-ENDLIST")

