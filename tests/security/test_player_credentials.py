"""Issue 12, case 1, in a real browser: the watch page never sends a viewer's credential to a host the
broadcaster chose, and plays only the URL the server makes.

The broadcaster points her live stream's `hls_manifest_url` at her own host, and a master playlist that
lists a variant on that host is served from our origin. Before the fix hls.js loaded the row's URL and
attached the viewer's login token to every request, whatever the host. Debian's Chromium, as in
tests/e2e/test_browser.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import jwt
import pytest
from playwright.async_api import Route, async_playwright

from nchat_live.app import create_app
from nchat_live.auth import MEDIA_TOKEN_TYPE, Claims
from nchat_live.config import Settings
from nchat_live.db.database import Database
from tests.support import World, base_url, loopback_socket, serve_app_in_thread

CHROMIUM = Path("/usr/bin/chromium")
ATTACKER = "http://attacker.invalid"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(120),
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (.ci/run installs it)"),
]


@pytest.fixture
async def live_private_stream(db: Database, world: World) -> AsyncIterator[str]:
    """The private stream, live, with its manifest URL on the broadcaster's own host (as case 1 set it)."""
    async with db.session(Claims.service()) as s:
        await s.fetchval(
            "UPDATE nchat_streams SET status = 'live', started_at = now(), hls_manifest_url = $2, "
            "recording_url = $3 WHERE id = $1 RETURNING id",
            world.private_stream, f"{ATTACKER}/steal.m3u8", f"{ATTACKER}/steal-recording.m3u8",
        )
    yield world.private_stream


async def test_watch_page_sends_credentials_only_to_its_own_origin(
    settings: Settings, world: World, live_private_stream: str,
) -> None:
    sock = loopback_socket()
    app_settings = settings.model_copy(update={"public_url": base_url(sock), "media_enabled": False})
    login = world.token(world.alice)
    seen: list[tuple[str, str | None]] = []  # (url, Authorization) of every media request

    async def attacker(route: Route) -> None:
        seen.append((route.request.url, await route.request.header_value("authorization")))
        await route.fulfill(status=404, body="")

    async def own_master(route: Route) -> None:
        seen.append((route.request.url, await route.request.header_value("authorization")))
        # A playlist on our origin that names another host: hls.js follows it, without our credential.
        await route.fulfill(
            status=200, content_type="application/vnd.apple.mpegurl",
            body=f"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=640x360\n{ATTACKER}/720p/index.m3u8\n",
        )

    with serve_app_in_thread(create_app(app_settings), sock=sock) as url:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=str(CHROMIUM),
                                               args=["--no-sandbox", "--disable-gpu"])
            try:
                page = await browser.new_page()
                await page.add_init_script(f"localStorage.setItem('nchat.token', {login!r});")
                await page.route(f"{ATTACKER}/**", attacker)
                await page.route(f"{url}/hls/{live_private_stream}/master.m3u8", own_master)
                await page.goto(f"{url}/watch/{live_private_stream}")
                for _ in range(150):
                    if any(u.startswith(ATTACKER) for u, _ in seen):
                        break
                    await asyncio.sleep(0.1)
            finally:
                await browser.close()

    own = [(u, a) for u, a in seen if u.startswith(url)]
    foreign = [(u, a) for u, a in seen if u.startswith(ATTACKER)]
    assert own, f"the page never loaded the server's own playlist: {seen}"
    assert foreign, f"hls.js never followed the foreign variant: {seen}"
    # The row's URL is never played; the foreign host gets no credential at all.
    assert not any("steal" in u for u, _ in seen), seen
    assert all(a is None for _, a in foreign), foreign
    # Our own origin gets a media token scoped to this stream, not the login token.
    for _, authorization in own:
        assert authorization is not None and login not in authorization
        token = authorization.removeprefix("Bearer ")
        assert jwt.get_unverified_header(token)["typ"] == MEDIA_TOKEN_TYPE
        assert jwt.decode(token, options={"verify_signature": False})["scope"] == live_private_stream
