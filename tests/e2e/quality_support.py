"""What the viewer-quality browser tests share: a live WHIP publisher and the rows they read back."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from nchat_live.auth import Claims
from nchat_live.db import Database
from tests.media.media_client import SyntheticVideo, WhipClient
from tests.support import World


async def stream_status(db: Database, stream_id: str) -> str:
    async with db.session(Claims.service()) as s:
        return str(await s.fetchval("SELECT status FROM nchat_streams WHERE id = $1", stream_id))


async def open_sessions(db: Database, stream_id: str) -> list[dict[str, Any]]:
    """The stream's open viewer rows with what the heartbeats put there."""
    async with db.session(Claims.service()) as s:
        rows = await s.fetch(
            "SELECT quality, buffering_ms, bitrate_kbps_sum, bitrate_samples, holders, quality_switches, "
            "extract(epoch FROM last_seen_at - joined_at) AS seconds FROM nchat_stream_viewers "
            "WHERE stream_id = $1 AND left_at IS NULL", stream_id)
    return [dict(r) for r in rows]


@asynccontextmanager
async def live_publisher(url: str, world: World, db: Database, *, wait_for_hls: bool) -> AsyncIterator[WhipClient]:
    """A 640x360 WHIP publisher of the public stream, once the stream is live (and, with `wait_for_hls`,
    once its LL-HLS master exists: the first segment takes the transcoder a few seconds)."""
    async with httpx.AsyncClient(base_url=url, timeout=20) as http:
        client = WhipClient(http, world.public_stream, world.public_key, SyntheticVideo(640, 360, 30), audio=False)
        assert (await client.start()).status_code == 201
        try:
            deadline = time.monotonic() + 30
            while await stream_status(db, world.public_stream) != "live":
                assert time.monotonic() < deadline, "the stream never went live"
                await asyncio.sleep(0.2)
            deadline = time.monotonic() + 60
            while wait_for_hls and (await http.get(f"/hls/{world.public_stream}/master.m3u8")).status_code != 200:
                assert time.monotonic() < deadline, "no LL-HLS playlist"
                await asyncio.sleep(0.5)
            yield client
        finally:
            await client.stop()
