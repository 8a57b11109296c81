"""The whole chain in a real browser: console -> WHIP -> transcoder -> LL-HLS -> hls.js, with chat,
reactions and the viewer count over GraphQL.

Debian's Chromium (never a downloaded browser) driven by Playwright, with Chromium's fake camera and
microphone: the only stand-in in this test, because CI has no camera. The app is the real one, on a
real port, on the test database, with media on.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator

import pytest
from playwright.async_api import Browser, Page, expect

from nchat_live.config import Settings
from tests.support import World

from .browser_support import NEEDS_CHROMIUM, SCREENSHOTS, LiveServer, record, serve_live, sign_in

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(240),
    NEEDS_CHROMIUM,
]


@pytest.fixture(scope="module")
def live_server(settings: Settings) -> Iterator[LiveServer]:
    with serve_live(settings, media_enabled=True) as server:
        yield server


async def _shoot(console: Page, viewer: Page, label: str) -> None:
    await console.screenshot(path=str(SCREENSHOTS / f"console-{label}.png"), full_page=True)
    await viewer.screenshot(path=str(SCREENSHOTS / f"watch-{label}.png"), full_page=True)


async def test_go_live_watch_chat_react_and_end(live_server: LiveServer, browser: Browser, world: World) -> None:
    log: list[str] = []
    # Separate contexts: two people, two tokens, two local storages.
    console = await (await browser.new_context(viewport={"width": 1360, "height": 900})).new_page()
    viewer = await (await browser.new_context(viewport={"width": 1280, "height": 860})).new_page()
    record(console, "console", log)
    record(viewer, "viewer", log)
    try:
        await _run(live_server.url, console, viewer, world)
    except BaseException:
        await _shoot(console, viewer, "failure")
        print("\n".join(log[-80:]))
        raise


async def _run(base: str, console: Page, viewer: Page, world: World) -> None:
    # The broadcaster creates a stream and goes live from the fake camera.
    await console.goto(f"{base}/console")
    await sign_in(console, world.token(world.alice))
    await console.get_by_label("Channel").select_option(world.public_channel)
    await console.get_by_label("Title", exact=True).fill("E2E live stream")
    await console.get_by_label("Description").fill("Made by the browser test")
    await console.get_by_label("Quality preset").select_option("360p")
    await console.get_by_role("button", name="Create stream").click()
    await expect(console.locator("#stream-id")).to_have_text(re.compile(r"^[0-9a-f-]{36}$"), timeout=15_000)
    stream_id = (await console.locator("#stream-id").text_content() or "").strip()
    await expect(console.get_by_role("button", name="Go live")).to_be_enabled(timeout=15_000)
    await console.get_by_role("button", name="Go live").click()
    await expect(console.locator("#status")).to_have_attribute("data-status", "live", timeout=45_000)

    # A viewer opens the watch page and the video plays: time advances and frames are decoded.
    await viewer.goto(f"{base}/watch/{stream_id}")
    await sign_in(viewer, world.token(world.bob))
    await expect(viewer.locator("#stream-state")).to_have_attribute("data-status", "live", timeout=20_000)
    await viewer.wait_for_function(
        "() => { const v = document.querySelector('#video');"
        " return v && v.currentTime > 1 && v.getVideoPlaybackQuality().totalVideoFrames > 0; }",
        timeout=60_000,
    )
    start = await viewer.evaluate("document.querySelector('#video').currentTime")
    await asyncio.sleep(2)
    assert await viewer.evaluate("document.querySelector('#video').currentTime") > start

    # Exactly one viewer, on both pages.
    await expect(viewer.locator("#viewer-count")).to_have_text("1", timeout=20_000)
    await expect(console.locator("#viewers")).to_have_text("1", timeout=20_000)

    # Chat both ways.
    await viewer.get_by_role("textbox", name="Chat message").fill("hello from the viewer")
    await viewer.get_by_role("textbox", name="Chat message").press("Enter")
    await expect(console.get_by_test_id("chat-list")).to_contain_text("hello from the viewer", timeout=15_000)
    await console.get_by_role("textbox", name="Chat message").fill("welcome, viewer")
    await console.get_by_role("textbox", name="Chat message").press("Enter")
    await expect(viewer.get_by_test_id("chat-list")).to_contain_text("welcome, viewer", timeout=15_000)

    # A reaction sent by the viewer shows up for the broadcaster.
    await viewer.get_by_role("button", name="React 🔥").click()
    await expect(console.get_by_test_id("recent-reactions")).to_contain_text("🔥", timeout=15_000)

    await _shoot(console, viewer, "live")

    # The broadcaster's health dashboard charts the ingest metrics (one row per 5 s).
    dashboard = await console.context.new_page()
    await dashboard.goto(f"{base}/dashboard/{stream_id}")
    await expect(dashboard.locator("[data-metric=bitrate_kbps]")).to_have_text(re.compile(r"^\d"), timeout=20_000)
    # The audience bars: the viewer's headless Chromium on Linux is a desktop (loopback has no country).
    await expect(dashboard.locator("[data-distribution=Devices]")).to_contain_text("desktop", timeout=20_000)
    await expect(dashboard.locator("[data-distribution=Browsers]")).to_contain_text("Chrome")
    await dashboard.screenshot(path=str(SCREENSHOTS / "dashboard-live.png"), full_page=True)
    await dashboard.close()

    # The broadcaster ends the stream; the viewer is told.
    await console.get_by_role("button", name="End stream").click()
    await expect(console.locator("#status")).to_have_attribute("data-status", "ended", timeout=20_000)
    await expect(viewer.locator("#stream-state")).to_have_attribute("data-status", "ended", timeout=20_000)
    await expect(viewer.locator("#notice")).to_contain_text("ended")
    # The ended stream offers its recording, and the recording plays.
    await viewer.get_by_role("button", name="Watch the recording").click(timeout=20_000)
    await viewer.wait_for_function(
        "() => { const v = document.querySelector('#video');"
        " return v && v.currentTime > 0.5 && v.getVideoPlaybackQuality().totalVideoFrames > 0; }",
        timeout=30_000,
    )
    await _shoot(console, viewer, "ended")


async def test_unknown_stream_wrong_key_schedule_and_dashboard(
    live_server: LiveServer, browser: Browser, world: World
) -> None:
    base = live_server.url
    page = await (await browser.new_context(viewport={"width": 1280, "height": 860})).new_page()

    await page.goto(f"{base}/watch/00000000-0000-4000-8000-000000000000")
    await expect(page.locator("#notice")).to_contain_text("no stream at this address")
    await expect(page.locator("#stream-state")).to_have_attribute("data-status", "unknown")

    # A wrong stream key is refused by ingest and said so, and the stream stays scheduled.
    await page.goto(f"{base}/console?stream={world.public_stream}")
    await sign_in(page, world.token(world.alice))
    await expect(page.locator("#stream-id")).to_have_text(world.public_stream, timeout=15_000)
    await page.get_by_label("Stream key").fill("not-the-key")
    await expect(page.get_by_role("button", name="Go live")).to_be_enabled(timeout=15_000)
    await page.get_by_role("button", name="Go live").click()
    await expect(page.locator("#media-msg")).to_contain_text("stream key was rejected", timeout=15_000)
    await expect(page.locator("#status")).to_have_attribute("data-status", "scheduled")
    # Simulcast settings: a destination is added; its key is never shown again, only its last characters.
    await page.get_by_label("Name", exact=True).fill("Backup")
    await page.get_by_label("RTMP(S) URL").fill("rtmp://ingest.example.invalid/live")  # internal addresses are refused
    await page.get_by_label("Destination key").fill("secret-key-0042")
    await page.get_by_role("button", name="Add destination").click()
    added = page.locator("[data-destination=Backup]")
    await expect(added).to_contain_text("…0042", timeout=15_000)
    await expect(added.locator(".badge")).to_have_text("idle")
    assert "secret-key" not in await page.locator("#simulcast").inner_text()

    await page.goto(f"{base}/schedule")
    await expect(page.locator("#schedule-list")).to_contain_text("public stream", timeout=15_000)
    await page.screenshot(path=str(SCREENSHOTS / "schedule.png"), full_page=True)

    await page.goto(f"{base}/dashboard/{world.public_stream}")
    await expect(page.locator("#title")).to_contain_text("public stream", timeout=15_000)
    await expect(page.locator(".chart canvas")).to_have_count(4)
    await expect(page.locator("#stream-state")).to_have_text("scheduled", timeout=15_000)
    await expect(page.locator("[data-distribution=Countries]")).to_contain_text("No sessions yet", timeout=15_000)
    await page.screenshot(path=str(SCREENSHOTS / "dashboard.png"), full_page=True)
