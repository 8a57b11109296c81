"""A rung trimmed from a live ladder (the worker cannot encode it in real time), seen through HTTP: by the
worker that encodes the stream and by an API-only process serving the same storage.

No master (live, DVR, recording) lists it any more, and its playlists and files answer 404, so a player
on it switches variants (hls.js does so on a level's 404) instead of reading an ENDLIST as the end of the
stream. The trim is forced by raising the pipeline's speed threshold: whether this machine keeps up with
encoding is not something a test can arrange, and the threshold is the one input of that decision.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from nchat_live.app import create_app
from nchat_live.config import Settings
from tests.support import World

from .media_client import SyntheticVideo, WhipClient
from .media_server import media_server

pytestmark = pytest.mark.slow


def variants(master: str) -> list[str]:
    return re.findall(r"^(\d+p)/(?:index|dvr)\.m3u8$", master, re.M)


async def eventually(check: Callable[[], Awaitable[Any]], within: float = 30.0) -> Any:
    deadline = time.monotonic() + within
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within} s")
        await asyncio.sleep(0.2)


@asynccontextmanager
async def api_only(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """An API process (no media worker) on the same settings: it serves HLS from storage."""
    app = create_app(settings.model_copy(update={"media_enabled": False}))
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app), base_url="http://api", timeout=30) as http:
        yield http


async def test_a_trimmed_rung_leaves_every_master_and_its_players_are_moved(
    settings: Settings, world: World, tmp_path: Path,
) -> None:
    stream = world.public_stream
    update = {"recording_dir": tmp_path / "recordings", "publisher_grace_seconds": 1.0,
              "media_cleanup_delay_seconds": 60.0}
    async with media_server(settings, tmp_path / "live", **update) as worker, \
            api_only(worker.runtime.settings) as api:
        manager = worker.runtime.media
        assert manager is not None
        client = WhipClient(worker.http, stream, world.public_key, SyntheticVideo(640, 480, 30))
        assert (await client.start()).status_code == 201
        try:
            async def master_ready() -> str | None:
                response = await worker.http.get(f"/hls/{stream}/master.m3u8")
                return response.text if response.status_code == 200 else None

            assert variants(await eventually(master_ready)) == ["480p", "360p"]

            async def dvr_ready() -> str | None:
                response = await worker.http.get(f"/hls/{stream}/dvr.m3u8")
                return response.text if response.status_code == 200 else None

            assert variants(await eventually(dvr_ready)) == ["480p", "360p"]
            # A player on 480p in the API process: its playlist is live.
            before = await api.get(f"/hls/{stream}/480p/index.m3u8")
            assert before.status_code == 200 and "#EXT-X-ENDLIST" not in before.text
            last_msn = max(int(m) for m in re.findall(r"^seg(\d+)\.m4s$", before.text, re.M))

            # Players on 480p blocked in a reload (LL-HLS) for a segment two ahead, in both processes.
            pipeline = manager.streams[stream].pipeline
            rung = pipeline.packager.rendition("480p")
            assert rung is not None
            ahead = {"_HLS_msn": rung.position()[0] + 2}
            waiting = [asyncio.ensure_future(http.get(f"/hls/{stream}/480p/index.m3u8", params=ahead))
                       for http in (worker.http, api)]
            await asyncio.sleep(0.3)
            assert not any(task.done() for task in waiting)
            # The machine "cannot keep up": the top rung goes.
            pipeline.trim_warmup_seconds = 0.0
            pipeline.trim_after_seconds = 0.2
            pipeline.min_speed = 1e9

            async def trimmed() -> bool:
                return pipeline.stats.trimmed == ["480p"]

            await eventually(trimmed, 20)
            pipeline.min_speed = 0.0
            # The blocked players are answered 404 (not a last playlist with ENDLIST): they switch levels.
            for answer in await asyncio.gather(*waiting):
                assert answer.status_code == 404, answer.text

            for http in (worker.http, api):
                master = await http.get(f"/hls/{stream}/master.m3u8")
                assert master.status_code == 200 and variants(master.text) == ["360p"], master.text
                # The trimmed rung's playlist: a 404 (hls.js switches level), never an ENDLIST.
                playlist = await http.get(f"/hls/{stream}/480p/index.m3u8")
                assert playlist.status_code == 404, playlist.text
                assert playlist.json()["error"]["code"] == "not-found"
                # A blocking reload for its next segment is answered at once, with a 404 too.
                started = time.monotonic()
                blocked = await http.get(f"/hls/{stream}/480p/index.m3u8", params={"_HLS_msn": last_msn + 1})
                assert blocked.status_code == 404 and time.monotonic() - started < 2.0, blocked.text
                for name in ("init.mp4", f"seg{last_msn}.m4s", f"seg{last_msn}.0.m4s"):
                    assert (await http.get(f"/hls/{stream}/480p/{name}")).status_code == 404, name
                # The rung that stays plays on, live.
                kept = await http.get(f"/hls/{stream}/360p/index.m3u8")
                assert kept.status_code == 200 and "#EXT-X-ENDLIST" not in kept.text
                assert "../480p/" not in kept.text  # no rendition report for the trimmed rung
            # DVR (served by the worker): the master drops it, its playlist is gone, the other rung goes on.
            dvr = await worker.http.get(f"/hls/{stream}/dvr.m3u8")
            assert dvr.status_code == 200 and variants(dvr.text) == ["360p"], dvr.text
            assert (await worker.http.get(f"/hls/{stream}/480p/dvr.m3u8")).status_code == 404
            assert (await worker.http.get(f"/hls/{stream}/360p/dvr.m3u8")).status_code == 200

            async def next_segment() -> bool:
                stored = manager.storage.read(f"{stream}/dvr.m3u8")
                return stored is not None and variants(stored.decode()) == ["360p"]

            await eventually(next_segment, 10)  # the stored DVR master (served after the stream) agrees
        finally:
            await client.stop()

        async def ended() -> bool:
            return stream not in manager.streams

        await eventually(ended, 30)

        async def recording() -> str | None:
            response = await api.get(f"/recordings/{stream}/master.m3u8")
            return response.text if response.status_code == 200 else None

        assert variants(await eventually(recording)) == ["360p"]
        # After the stream: the stored DVR master (no packager any more) lists the kept rung only.
        dvr_after = await worker.http.get(f"/hls/{stream}/dvr.m3u8")
        assert dvr_after.status_code == 200 and variants(dvr_after.text) == ["360p"], dvr_after.text
        assert (await worker.http.get(f"/hls/{stream}/480p/dvr.m3u8")).status_code == 404
        assert (await api.get(f"/hls/{stream}/480p/index.m3u8")).status_code == 404
