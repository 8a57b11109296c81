"""Chapters and highlights in Chromium: the watch page shows a recording's chapters (markers and a list
that seeks); the console lists a suggested highlight, which the broadcaster keeps."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from playwright.async_api import Browser, expect

from nchat_live.auth import Claims
from nchat_live.config import Settings
from nchat_live.db import Database
from tests.support import World

from .browser_support import NEEDS_CHROMIUM, SCREENSHOTS, LiveServer, serve_live, sign_in

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(120),
    NEEDS_CHROMIUM,
]


@pytest.fixture(scope="module")
def server(settings: Settings) -> Iterator[LiveServer]:
    with serve_live(settings, media_enabled=False) as live:
        yield live


async def test_watch_page_chapters_seek_and_console_keeps_a_highlight(
    server: LiveServer, browser: Browser, world: World, db: Database
) -> None:
    stream_id = world.public_stream
    started = datetime.now(UTC) - timedelta(minutes=5)
    async with db.session(Claims.service()) as s:
        await s.fetchval("UPDATE nchat_streams SET status = 'ended', started_at = $2, ended_at = $3 WHERE id = $1 "
                         "RETURNING id", stream_id, started, started + timedelta(seconds=120))
        await s.fetchval("INSERT INTO nchat_stream_recordings (stream_id, kind, status, url, duration_seconds) "
                         "VALUES ($1, 'full', 'ready', $2, 120) RETURNING id", stream_id,
                         f"{server.url}/recordings/{stream_id}/master.m3u8")
        for start, title in ((0, "Start"), (42, "Goal · Penalty")):
            await s.fetchval("INSERT INTO nchat_stream_chapters (stream_id, start_seconds, title, source) "
                             "VALUES ($1, $2, $3, 'auto') RETURNING id", stream_id, start, title)
        await s.fetchval("INSERT INTO nchat_stream_highlights (stream_id, peak_seconds, start_seconds, end_seconds, "
                         "title) VALUES ($1, 44, 42, 50, 'Goal · Penalty') RETURNING id", stream_id)

    viewer = await (await browser.new_context()).new_page()
    await viewer.goto(f"{server.url}/watch/{stream_id}")
    await viewer.get_by_test_id("watch-recording").click(timeout=20_000)
    entries = viewer.get_by_test_id("chapter")
    await expect(entries).to_have_count(2)
    await expect(entries.nth(1)).to_have_text("0:42 Goal · Penalty")
    await expect(viewer.locator(".chapter-marker")).to_have_count(2)
    await entries.nth(1).click()
    assert await viewer.evaluate("document.querySelector('#video').currentTime") == 42
    await viewer.screenshot(path=str(SCREENSHOTS / "watch-chapters.png"), full_page=True)

    console = await (await browser.new_context(viewport={"width": 1360, "height": 900})).new_page()
    await console.goto(f"{server.url}/console?stream={stream_id}")
    await sign_in(console, world.token(world.alice))
    highlight = console.get_by_test_id("highlight")
    await expect(highlight).to_contain_text("Goal · Penalty")
    await expect(highlight).to_contain_text("suggested")
    await highlight.get_by_role("button", name="Keep").click()
    await expect(highlight).to_contain_text("kept")
    await expect(console.get_by_test_id("chapter-edit")).to_have_count(2)
    await console.screenshot(path=str(SCREENSHOTS / "console-highlights.png"), full_page=True)
    async with db.session(Claims.service()) as s:
        assert await s.fetchval("SELECT status FROM nchat_stream_highlights WHERE stream_id = $1", stream_id) == "kept"
