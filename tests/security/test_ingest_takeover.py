"""Issue 12 case 7: rotating the key, banning the broadcaster or ending the stream acts on ingest at once.

A hijacker publishing with a leaked key K is disconnected when the owner rotates the key (WHIP peer
connection closed, RTMP connection dropped), and the owner's publish with the new key continues the
same stream within the grace period instead of answering 409 publisher-exists.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from nchat_live.app import create_app
from nchat_live.auth import Claims
from nchat_live.config import Settings
from nchat_live.db import Database
from nchat_live.media.worker.manager import MediaManager
from nchat_live.media.worker.streams import IngestSession
from nchat_live.resolvers import moderation, streams
from nchat_live.runtime import Runtime
from tests.media.media_client import SyntheticVideo, WhipClient
from tests.media.rtmp_client import RtmpTestClient, run_publisher
from tests.support import World

pytestmark = pytest.mark.slow


@dataclass
class Stack:
    runtime: Runtime
    http: httpx.AsyncClient

    @property
    def media(self) -> MediaManager:
        assert self.runtime.media is not None
        return self.runtime.media

    @property
    def rtmp_port(self) -> int:
        assert self.runtime.rtmp is not None
        return self.runtime.rtmp.port


@pytest.fixture
async def stack(settings: Settings, tmp_path: Path) -> AsyncIterator[Stack]:
    runtime = Runtime(settings.model_copy(update={
        "media_dir": tmp_path / "live", "recording_dir": tmp_path / "rec", "rtmp_port": 0,
        "publisher_grace_seconds": 6.0, "media_metrics_seconds": 1.0, "recording_enabled": False,
        # The bus event must do it: the periodic recheck is far away.
        "ingest_key_check_seconds": 300.0,
    }))
    await runtime.start()
    transport = httpx.ASGITransport(app=create_app(runtime=runtime))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver", timeout=30) as http:
            yield Stack(runtime, http)
    finally:
        await runtime.stop()


async def new_stream(db: Database, world: World) -> tuple[str, str]:
    async with db.session(Claims.service()) as s:
        row = await s.fetchrow(
            "INSERT INTO nchat_streams (channel_id, broadcaster_id, title) VALUES ($1, $2, 'takeover') "
            "RETURNING id, stream_key", world.public_channel, world.alice,
        )
    assert row is not None
    return str(row["id"]), row["stream_key"]


async def until(check: Callable[[], bool], seconds: float = 15.0) -> bool:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.1)
    return True


async def rotate(stack: Stack, world: World, stream_id: str) -> str:
    settings = stack.runtime.settings
    async with stack.runtime.database.session(Claims.user(world.alice)) as s:
        rotated = await streams.rotate_stream_key(s, settings, stream_id)
    return str(rotated["stream_key"])


def live_of(stack: Stack, stream_id: str) -> IngestSession:
    live = stack.media.streams.get(stream_id)
    assert live is not None
    return live


async def test_rotating_the_key_disconnects_the_whip_hijacker_and_the_new_key_continues(
    stack: Stack, world: World
) -> None:
    stream_id, leaked = await new_stream(stack.runtime.database, world)
    hijacker = WhipClient(stack.http, stream_id, leaked, SyntheticVideo(320, 240, 15), audio=False)
    owner: WhipClient | None = None
    try:
        assert (await hijacker.start()).status_code == 201
        assert await until(lambda: live_of(stack, stream_id).went_live)
        live = live_of(stack, stream_id)
        hijack_session = live.publisher
        assert hijack_session is not None

        new_key = await rotate(stack, world, stream_id)
        # At once (the bus event), not at the next periodic check.
        assert await until(lambda: live.publisher is None, 5.0), "the hijacker is still publishing"
        assert await until(lambda: hijacker.pc.connectionState in ("closed", "failed"), 10.0), \
            hijacker.pc.connectionState
        assert getattr(hijack_session, "_closed", False)

        # The leaked key is refused now; the owner's new key continues the same stream (no 409).
        retry = WhipClient(stack.http, stream_id, leaked, SyntheticVideo(320, 240, 15), audio=False)
        try:
            assert (await retry.start()).status_code == 401
        finally:
            await retry.stop()
        owner = WhipClient(stack.http, stream_id, new_key, SyntheticVideo(320, 240, 15), audio=False)
        response = await owner.start()
        assert response.status_code == 201, response.text
        assert live_of(stack, stream_id) is live and live.reconnects == 1
        async with stack.runtime.database.session(Claims.service()) as s:
            assert await s.fetchval("SELECT status FROM nchat_streams WHERE id = $1", stream_id) == "live"
    finally:
        await hijacker.stop()
        if owner is not None:
            await owner.stop()


async def test_banning_the_broadcaster_disconnects_her_publisher(stack: Stack, world: World) -> None:
    """bob, a member of alice's channel, broadcasts there; alice (its owner) bans him channel-wide with
    the domain operation banUser, as herself. His publisher is disconnected at once (the ban's bus
    event), and his key no longer publishes (WHIP 403 broadcaster-banned), so the ban stops ingest."""
    db = stack.runtime.database
    async with db.session(Claims.service()) as s:
        row = await s.fetchrow(
            "INSERT INTO nchat_streams (channel_id, broadcaster_id, title) VALUES ($1, $2, 'guest show') "
            "RETURNING id, stream_key", world.public_channel, world.bob,
        )
    assert row is not None
    stream_id, key = str(row["id"]), row["stream_key"]
    client = WhipClient(stack.http, stream_id, key, SyntheticVideo(320, 240, 15), audio=False)
    try:
        assert (await client.start()).status_code == 201
        live = live_of(stack, stream_id)
        assert live.publisher is not None
        async with db.session(Claims.user(world.alice)) as s:
            ban = await moderation.ban_user(s, world.public_stream, world.bob, "off-topic", channel_wide=True)
        assert ban["channel_id"] == world.public_channel and ban["stream_id"] is None
        assert await until(lambda: live.publisher is None, 5.0), "the banned broadcaster is still publishing"
        retry = WhipClient(stack.http, stream_id, key, SyntheticVideo(320, 240, 15), audio=False)
        try:
            response = await retry.start()
            assert response.status_code == 403, response.text
            assert response.json()["error"]["code"] == "broadcaster-banned"
        finally:
            await retry.stop()
        assert live.publisher is None
    finally:
        await client.stop()


async def test_rotating_the_key_drops_the_rtmp_hijacker_and_the_new_key_continues(
    stack: Stack, world: World
) -> None:
    stream_id, leaked = await new_stream(stack.runtime.database, world)
    port = stack.rtmp_port
    hijack = asyncio.create_task(
        run_publisher(port, leaked, "--seconds", "30", "--size", "320x240", "--fps", "15", "--realtime")
    )
    owner: RtmpTestClient | None = None
    try:
        assert await until(lambda: stream_id in stack.media.streams and live_of(stack, stream_id).went_live, 20.0)
        live = live_of(stack, stream_id)
        new_key = await rotate(stack, world, stream_id)
        assert await until(lambda: live.publisher is None, 5.0), "the RTMP hijacker is still publishing"
        started = time.monotonic()
        code, _ = await asyncio.wait_for(hijack, 10.0)  # its connection was dropped: it stops early
        assert time.monotonic() - started < 10.0 and code != 0

        owner = await RtmpTestClient.connect(port)
        reply = await owner.start_publish(new_key)
        assert reply[3]["code"] == "NetStream.Publish.Start", reply
        assert live_of(stack, stream_id) is live and live.reconnects == 1
    finally:
        if not hijack.done():
            hijack.cancel()
            await asyncio.gather(hijack, return_exceptions=True)
        if owner is not None:
            await owner.close()
