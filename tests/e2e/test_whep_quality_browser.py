"""A WHEP viewer in Chromium reports its playback quality as an HLS viewer does: the watch page maps its peer
connection's inbound-rtp video stats (bytesReceived per interval, frameHeight, freezes) to `viewerHeartbeat`
(bitrate, rendition, buffering), which lands on the viewer session the audience analytics read.

The publisher is a real aiortc WHIP client sending 640x360 over loopback; the app is the real one on a real
port with media on; the viewer is anonymous, so its page's join shares the WHEP session's viewer session by
address and browser (migration 0011): one viewer, counted once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator

import pytest
from playwright.async_api import Browser, expect

from nchat_live.auth import Claims
from nchat_live.config import Settings
from nchat_live.db import Database
from nchat_live.media.egress.relay import relay_bitrate
from nchat_live.resolvers.analytics import audience_distributions
from tests.media.media_client import WhipClient
from tests.support import World

from .browser_support import NEEDS_CHROMIUM, SCREENSHOTS, LiveServer, record, serve_live
from .quality_support import live_publisher, open_sessions

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(150),
    NEEDS_CHROMIUM,
]


@pytest.fixture(scope="module")
def server(settings: Settings) -> Iterator[LiveServer]:
    with serve_live(settings, media_enabled=True) as live:
        yield live


@pytest.fixture
async def publisher(server: LiveServer, world: World, db: Database) -> AsyncIterator[WhipClient]:
    async with live_publisher(server.url, world, db, wait_for_hls=False) as client:
        yield client


async def test_whep_viewer_heartbeats_carry_stats_from_the_peer_connection(
    server: LiveServer, browser: Browser, world: World, db: Database, publisher: WhipClient
) -> None:
    stream_id = world.public_stream
    log: list[str] = []
    viewer = await (await browser.new_context()).new_page()
    record(viewer, "viewer", log)
    try:
        await viewer.goto(f"{server.url}/watch/{stream_id}")
        await expect(viewer.locator("#playback-mode")).to_have_attribute("data-mode", "whep", timeout=30_000)
        await viewer.wait_for_function(
            "() => { const v = document.querySelector('#video');"
            " return v && v.getVideoPlaybackQuality().totalVideoFrames > 10; }", timeout=30_000)

        # Heartbeats go every 10 s; the stats are primed at join, so each one carries a bitrate.
        deadline = time.monotonic() + 60
        while True:
            sessions = await open_sessions(db, stream_id)
            if sessions and sessions[0]["bitrate_samples"] >= 2:
                break
            assert time.monotonic() < deadline, f"no bitrate reports from the WHEP viewer: {sessions}"
            await asyncio.sleep(1)

        # One viewer, one session, shared by the WHEP session and the page (counted once).
        assert len(sessions) == 1, sessions
        viewer_row = sessions[0]
        assert viewer_row["holders"] == 2
        async with db.session(Claims.service()) as s:
            assert await s.fetchval("SELECT current_viewers FROM nchat_streams WHERE id = $1", stream_id) == 1
        # The rendition from the decoder's frameHeight, on the server's ladder names.
        assert viewer_row["quality"] == "360p"
        # Plausible bitrate: the relay's H.264 of a flat picture with a moving bar (compresses well) is above a
        # trickle and below twice the encoder's target (bytes taken for bits, or s for ms, fall outside).
        kbps = viewer_row["bitrate_kbps_sum"] / viewer_row["bitrate_samples"]
        assert 10 <= kbps <= 2 * relay_bitrate(640, 360) / 1000, kbps
        # Buffering (freezes) is bounded by the time watched; loopback should hardly freeze.
        assert 0 <= viewer_row["buffering_ms"] <= float(viewer_row["seconds"]) * 1000

        # The audience dashboard's network-quality distributions count this viewer (as its broadcaster sees them).
        async with db.session(Claims.user(world.alice)) as s:
            audience = await audience_distributions(s, stream_id)
        assert {"name": "360p", "count": 1} in audience["renditions"]
        assert sum(band["count"] for band in audience["bitrate_histogram"]) == 1
        print(f"WHEP viewer: {kbps:.0f} kbps over {viewer_row['bitrate_samples']} reports, "
              f"{viewer_row['buffering_ms']} ms buffering in {float(viewer_row['seconds']):.0f} s")

        # The page goes away: its leave and the WHEP session's end (the browser closes the peer connection)
        # each release their hold, and the shared session closes.
        await viewer.goto("about:blank")
        deadline = time.monotonic() + 45
        while sessions := await open_sessions(db, stream_id):
            assert time.monotonic() < deadline, f"the viewer session stayed open after the page left: {sessions}"
            await asyncio.sleep(0.5)
    except BaseException:
        await viewer.screenshot(path=str(SCREENSHOTS / "watch-whep-quality-failure.png"), full_page=True)
        print("\n".join(log[-80:]))
        raise
    finally:
        await viewer.context.close()
