"""A live poll and an auto-mod hold/approve between two real pages (issue 18): the broadcaster's console and
a viewer's watch page, in Debian's Chromium, against the real app on a real port (media off: the stream is
put live in the database, the interaction is what is tested)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.async_api import Browser, Page, expect

from nchat_live.config import Settings
from nchat_live.db import Database
from tests.support import World, set_live

from .browser_support import NEEDS_CHROMIUM, SCREENSHOTS, LiveServer, record, serve_live, sign_in

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(180),
    NEEDS_CHROMIUM,
]


@pytest.fixture(scope="module")
def live_server(settings: Settings) -> Iterator[LiveServer]:
    with serve_live(settings, media_enabled=False) as server:
        yield server


async def test_poll_and_held_message_between_console_and_watch_page(
        live_server: LiveServer, browser: Browser, world: World, db: Database) -> None:
    await set_live(db, world.public_stream)
    log: list[str] = []
    console = await (await browser.new_context(viewport={"width": 1360, "height": 1400})).new_page()
    viewer = await (await browser.new_context(viewport={"width": 1280, "height": 1400})).new_page()
    record(console, "console", log)
    record(viewer, "viewer", log)
    try:
        await _run(live_server.url, console, viewer, world)
    except BaseException:
        await console.screenshot(path=str(SCREENSHOTS / "console-audience-failure.png"), full_page=True)
        await viewer.screenshot(path=str(SCREENSHOTS / "watch-audience-failure.png"), full_page=True)
        print("\n".join(log[-80:]))
        raise


async def _run(base: str, console: Page, viewer: Page, world: World) -> None:
    await console.goto(f"{base}/console?stream={world.public_stream}")
    await sign_in(console, world.token(world.alice))
    await expect(console.locator("#stream-id")).to_have_text(world.public_stream, timeout=15_000)
    await viewer.goto(f"{base}/watch/{world.public_stream}")
    await sign_in(viewer, world.token(world.bob))
    await expect(viewer.get_by_test_id("polls")).to_contain_text("No polls yet", timeout=15_000)

    # A poll: the broadcaster starts it, the viewer votes, both see the result; closing reaches the viewer.
    await console.locator("#poll-question").fill("Red or blue?")
    await console.locator("#poll-options").fill("Red\nBlue")
    await console.get_by_role("button", name="Start poll").click()
    poll = viewer.get_by_test_id("poll")
    await expect(poll).to_have_attribute("data-status", "open", timeout=15_000)
    await poll.get_by_test_id("poll-vote").filter(has_text="Blue").click()
    await expect(console.get_by_test_id("poll").get_by_test_id("poll-count").nth(1)).to_have_text(
        "1 (100%)", timeout=15_000)
    await console.get_by_test_id("poll-close").click()
    await expect(poll).to_have_attribute("data-status", "closed", timeout=15_000)
    await expect(poll.get_by_test_id("poll-count").nth(1)).to_have_text("1 (100%)")

    # Auto-mod: a hold term; the viewer's message is held (they see it as held), approved from the console.
    await console.locator("#mod-term").fill("spoiler")
    await console.locator("#mod-action").select_option("hold")
    await console.get_by_test_id("term-form").get_by_role("button", name="Add").click()
    await expect(console.get_by_test_id("term-list")).to_contain_text("spoiler", timeout=15_000)
    await viewer.get_by_role("textbox", name="Chat message").fill("SP0ILER: the butler did it")
    await viewer.get_by_role("textbox", name="Chat message").press("Enter")
    mine = viewer.get_by_test_id("chat-list").locator("li", has_text="the butler did it")
    await expect(mine).to_have_attribute("data-status", "held", timeout=15_000)
    await expect(mine.get_by_test_id("chat-status")).to_have_text("held for review")
    held = console.get_by_test_id("held-list").get_by_test_id("held")
    await expect(held).to_contain_text("the butler did it", timeout=15_000)
    await held.get_by_role("button", name="Approve").click()
    await expect(mine).to_have_attribute("data-status", "visible", timeout=15_000)
    await expect(console.get_by_test_id("held-list")).to_contain_text("Nothing held", timeout=15_000)
    await expect(console.get_by_test_id("mod-log")).to_contain_text("approve", timeout=15_000)
    await console.screenshot(path=str(SCREENSHOTS / "console-audience.png"), full_page=True)
    await viewer.screenshot(path=str(SCREENSHOTS / "watch-audience.png"), full_page=True)
