"""What the browser tests share: Debian's Chromium and its flags, the screenshot folder, the real app on a real
port, console capture and the development sign-in. The `browser` fixture is in conftest.py."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.async_api import ConsoleMessage, Page, expect

from nchat_live.app import create_app
from nchat_live.config import Settings
from tests.support import base_url, loopback_socket, serve_app_in_thread

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"  # CI keeps artifacts/
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream", "--autoplay-policy=no-user-gesture-required",
]
NEEDS_CHROMIUM = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (.ci/run installs it)")


@dataclass
class LiveServer:
    url: str


@contextmanager
def serve_live(settings: Settings, *, media_enabled: bool) -> Iterator[LiveServer]:
    """The real app under uvicorn in a thread (its own event loop), on a free port."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    sock = loopback_socket()
    # The app must know its public URL (the port) before it starts.
    app_settings = settings.model_copy(update={"public_url": base_url(sock), "media_enabled": media_enabled})
    with serve_app_in_thread(create_app(app_settings), sock=sock) as url:
        yield LiveServer(url)


def record(page: Page, name: str, log: list[str]) -> None:
    def on_console(msg: ConsoleMessage) -> None:
        log.append(f"[{name}] {msg.type}: {msg.text}")

    page.on("console", on_console)
    page.on("pageerror", lambda err: log.append(f"[{name}] pageerror: {err}"))


async def sign_in(page: Page, token: str) -> None:
    await page.get_by_label("Development token").fill(token)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_test_id("signed-in")).to_contain_text("Signed in as")
