"""The guest page in Chromium: an invited user sees the invitation and accepts it; the broadcaster's console
lists the guest and mutes them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.async_api import Browser, expect

from nchat_live.auth import Claims
from nchat_live.config import Settings
from nchat_live.db import Database
from nchat_live.resolvers import guests
from tests.support import World

from .browser_support import NEEDS_CHROMIUM, SCREENSHOTS, LiveServer, serve_live, sign_in

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120), NEEDS_CHROMIUM]


@pytest.fixture(scope="module")
def server(settings: Settings) -> Iterator[LiveServer]:
    with serve_live(settings, media_enabled=False) as live:
        yield live


async def test_guest_page_shows_the_invitation_and_accepts_it(
    server: LiveServer, browser: Browser, world: World, db: Database
) -> None:
    async with db.session(Claims.user(world.alice)) as s:
        gid = (await guests.invite_guest(s, world.public_stream, world.bob))["id"]
    page = await (await browser.new_context()).new_page()
    await page.goto(f"{server.url}/guest")
    await sign_in(page, world.token(world.bob))
    invitation = page.get_by_test_id("invitation")
    await expect(invitation).to_contain_text("public stream")
    await expect(invitation.get_by_role("status")).to_have_text("invited")
    await invitation.get_by_role("button", name="Accept").click()
    await expect(invitation.get_by_role("status")).to_have_text("accepted")
    await expect(invitation.get_by_role("button", name="Join")).to_be_enabled()
    await page.screenshot(path=str(SCREENSHOTS / "guest-invitation.png"), full_page=True)
    async with db.session(Claims.service()) as s:
        assert await s.fetchval("SELECT status FROM nchat_stream_guests WHERE id = $1", gid) == "accepted"

    console = await (await browser.new_context(viewport={"width": 1360, "height": 900})).new_page()
    await console.goto(f"{server.url}/console?stream={world.public_stream}")
    await sign_in(console, world.token(world.alice))
    guest = console.get_by_test_id("guest")
    await expect(guest).to_contain_text("accepted")
    await guest.get_by_role("button", name="Mute").click()
    await expect(guest.get_by_role("button", name="Unmute")).to_be_visible()
    async with db.session(Claims.service()) as s:
        assert await s.fetchval("SELECT muted FROM nchat_stream_guests WHERE id = $1", gid) is True
