"""Ending a stream through the API stops its ingest on the process that holds it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx

from nchat_live.app import create_app
from nchat_live.auth import Claims
from nchat_live.config import Settings
from nchat_live.runtime import Runtime
from tests.support import World


class FakePublisher:
    """Stands in for a WHIP/RTMP connection: only what the manager calls (no media is needed here)."""

    kind = "test"

    def __init__(self) -> None:
        self.closed = asyncio.Event()

    async def stats(self) -> dict[str, Any]:
        return {}

    async def close(self) -> None:
        self.closed.set()


async def test_end_stream_mutation_stops_local_ingest(settings: Settings, world: World, tmp_path: Path) -> None:
    runtime = Runtime(settings.model_copy(update={"media_dir": tmp_path / "live"}))
    await runtime.start()
    try:
        assert runtime.media is not None
        async with runtime.database.session(Claims.service()) as s:
            await s.fetchval("UPDATE nchat_streams SET status = 'live', started_at = now() WHERE id = $1 RETURNING 1",
                             world.public_stream)
        info = await runtime.media.stream_info(world.public_stream)
        publisher = FakePublisher()
        await runtime.media.publisher_connected(info, publisher)
        assert world.public_stream in runtime.media.streams

        app = create_app(runtime=runtime)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
            response = await http.post(
                "/v1/graphql",
                json={"query": "mutation($id: ID!) { endStream(streamId: $id) { status } }",
                      "variables": {"id": world.public_stream}},
                headers={"Authorization": f"Bearer {world.token(world.alice)}"},
            )
        assert response.json() == {"data": {"endStream": {"status": "ended"}}}, response.text
        await asyncio.wait_for(publisher.closed.wait(), timeout=5)
        for _ in range(50):
            if world.public_stream not in runtime.media.streams:
                break
            await asyncio.sleep(0.1)
        assert world.public_stream not in runtime.media.streams
    finally:
        await runtime.stop()
