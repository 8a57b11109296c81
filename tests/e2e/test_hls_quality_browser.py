"""An LL-HLS viewer on the watch page's default path (counted through the `watchStream` subscription) reports
its playback quality too: once the presence session is open the page joins by mutation, which shares that
session (migration 0011: same anonymous address + browser), and sends `viewerHeartbeat` with hls.js's
rendition and bitrate every 10 s. One viewer, one row, counted once; the row closes when the page leaves.

The publisher is a real aiortc WHIP client (640x360) transcoded to a real LL-HLS ladder; the app is the real
one on a real port with media on, its WHEP capacity set to 0 so that the page's WHEP offer is refused (503)
and it plays LL-HLS, as it does wherever WHEP is unavailable.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from playwright.async_api import Browser, expect

from nchat_live.auth import Claims
from nchat_live.config import Settings
from nchat_live.db import Database
from nchat_live.media.transcode.ladder import select_ladder
from nchat_live.resolvers.analytics import audience_distributions
from tests.media.media_client import WhipClient
from tests.support import World

from .browser_support import NEEDS_CHROMIUM, SCREENSHOTS, LiveServer, record, serve_live
from .quality_support import live_publisher, open_sessions

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(180),
    NEEDS_CHROMIUM,
]


@pytest.fixture(scope="module")
def server(settings: Settings) -> Iterator[LiveServer]:
    with serve_live(settings.model_copy(update={"whep_max_viewers": 0}), media_enabled=True) as live:
        yield live


@pytest.fixture
async def publisher(server: LiveServer, world: World, db: Database) -> AsyncIterator[WhipClient]:
    async with live_publisher(server.url, world, db, wait_for_hls=True) as client:
        yield client


async def _current_viewers(db: Database, stream_id: str) -> int:
    async with db.session(Claims.service()) as s:
        return int(await s.fetchval("SELECT current_viewers FROM nchat_streams WHERE id = $1", stream_id))


async def _wait_sessions(db: Database, stream_id: str, done: Callable[[list[dict[str, Any]]], bool], what: str,
                         within_s: float = 60) -> list[dict[str, Any]]:
    deadline = time.monotonic() + within_s
    while not done(sessions := await open_sessions(db, stream_id)):
        assert time.monotonic() < deadline, f"{what}: {sessions}"
        await asyncio.sleep(0.5)
    return sessions


async def test_hls_viewer_on_the_presence_path_reports_quality_counted_once(
    server: LiveServer, browser: Browser, world: World, db: Database, publisher: WhipClient
) -> None:
    stream_id = world.public_stream
    log: list[str] = []
    context = await browser.new_context()
    viewer = await context.new_page()
    record(viewer, "viewer", log)
    try:
        await viewer.goto(f"{server.url}/watch/{stream_id}")
        await expect(viewer.locator("#playback-mode")).to_have_attribute("data-mode", "hls", timeout=30_000)
        await viewer.wait_for_function(
            "() => { const v = document.querySelector('#video');"
            " return v && v.currentTime > 1 && v.getVideoPlaybackQuality().totalVideoFrames > 10; }",
            timeout=60_000)

        # Heartbeats go every 10 s, each with the playing rendition's bitrate.
        sessions = await _wait_sessions(db, stream_id, lambda s: bool(s) and s[0]["bitrate_samples"] >= 2,
                                        "no quality reports from the HLS viewer")
        # One viewer, one row, held by the presence subscription and the page's join (counted once).
        assert len(sessions) == 1, sessions
        row = sessions[0]
        assert row["holders"] == 2
        assert await _current_viewers(db, stream_id) == 1
        await expect(viewer.locator("#viewer-count")).to_have_text("1")
        assert row["quality"] == "360p"  # the 640x360 source's one rung, named as the ladder names it
        # hls.js's level bitrate is the master playlist's BANDWIDTH for that rung, sent in kbit/s: the ladder's
        # peak until the packager has measured the rung, then the measured peak (a flat picture: far lower).
        # Bits for bytes or bit/s for kbit/s fall outside.
        kbps = row["bitrate_kbps_sum"] / row["bitrate_samples"]
        assert 10 <= kbps <= round(select_ladder(640, 360)[0].peak_bandwidth / 1000), kbps
        assert 0 <= row["buffering_ms"] <= float(row["seconds"]) * 1000

        # The broadcaster's audience distributions count this viewer.
        async with db.session(Claims.user(world.alice)) as s:
            audience = await audience_distributions(s, stream_id)
        assert {"name": "360p", "count": 1} in audience["renditions"]
        assert sum(band["count"] for band in audience["bitrate_histogram"]) == 1

        # A second tab of the same anonymous browser shares the same row: still one client, one viewer.
        tab = await context.new_page()
        record(tab, "tab", log)
        await tab.goto(f"{server.url}/watch/{stream_id}")
        await expect(tab.locator("#playback-mode")).to_have_attribute("data-mode", "hls", timeout=30_000)
        sessions = await _wait_sessions(db, stream_id, lambda s: bool(s) and s[0]["holders"] >= 4,
                                        "the second tab did not share the session")
        assert len(sessions) == 1 and sessions[0]["holders"] == 4, sessions
        assert await _current_viewers(db, stream_id) == 1
        await tab.goto("about:blank")  # a page leaving (pagehide), as a closed tab does
        await tab.close()
        sessions = await _wait_sessions(db, stream_id, lambda s: bool(s) and s[0]["holders"] == 2,
                                        "the closed tab's holds were not released", 30)
        assert len(sessions) == 1, sessions

        # The page leaves: its leave and the presence subscription's end each release their hold; the row closes.
        await viewer.goto("about:blank")
        await _wait_sessions(db, stream_id, lambda s: not s, "the session stayed open after the page left", 45)
        assert await _current_viewers(db, stream_id) == 0
    except BaseException:
        await viewer.screenshot(path=str(SCREENSHOTS / "watch-hls-quality-failure.png"), full_page=True)
        print("\n".join(log[-80:]))
        raise
    finally:
        await context.close()
