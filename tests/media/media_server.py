"""The app with media on, for tests: a started Runtime and an httpx client on an in-process ASGI transport."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from nchat_live.app import create_app
from nchat_live.config import Settings
from nchat_live.runtime import Runtime


@dataclass
class Server:
    runtime: Runtime
    http: httpx.AsyncClient


@asynccontextmanager
async def media_server(settings: Settings, media_dir: Path, **update: Any) -> AsyncIterator[Server]:
    """The app on `settings` with media in `media_dir` and `update` applied; the runtime stops on exit."""
    runtime = Runtime(settings.model_copy(update={"media_dir": media_dir, **update}))
    await runtime.start()
    transport = httpx.ASGITransport(app=create_app(runtime=runtime))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver", timeout=30) as http:
            yield Server(runtime, http)
    finally:
        await runtime.stop()
