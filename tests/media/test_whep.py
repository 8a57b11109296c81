"""WHEP playback: a real aiortc WHIP publisher, the app on an in-process ASGI transport, aiortc WHEP viewers."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import av
import pytest

from nchat_live.auth import Claims, media_tokens
from nchat_live.config import Settings
from tests.support import World

from .media_client import SyntheticVideo, WhipClient
from .media_server import Server, media_server
from .whep_client import WhepViewer

pytestmark = pytest.mark.slow


@pytest.fixture
async def server(settings: Settings, tmp_path: Path) -> AsyncIterator[Server]:
    async with media_server(settings, tmp_path / "live", publisher_grace_seconds=1.0,
                            whep_max_sessions_per_client=2) as live:
        yield live


async def viewers(server: Server, stream_id: str) -> int:
    async with server.runtime.database.session(Claims.service()) as s:
        return int(await s.fetchval("SELECT current_viewers FROM nchat_streams WHERE id = $1", stream_id))


async def publish(server: Server, stream_id: str, key: str) -> WhipClient:
    client = WhipClient(server.http, stream_id, key, SyntheticVideo(320, 240, 30), audio=False)
    assert (await client.start()).status_code == 201
    deadline = time.monotonic() + 20
    while True:
        async with server.runtime.database.session(Claims.service()) as s:
            status = await s.fetchval("SELECT status FROM nchat_streams WHERE id = $1", stream_id)
        if status == "live":
            return client
        assert time.monotonic() < deadline, f"the stream never went live ({status})"
        await asyncio.sleep(0.2)


async def until(predicate: object, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not await predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.2)


async def test_whip_publish_plays_over_whep_and_delete_leaves(server: Server, world: World) -> None:
    stream = world.public_stream
    publisher = await publish(server, stream, world.public_key)
    viewer = WhepViewer(server.http, stream)
    try:
        response = await viewer.start()
        assert response.status_code == 201, response.text
        assert response.headers["content-type"].startswith("application/sdp")
        assert response.headers["location"].startswith(f"/whep/{stream}/")
        assert "H264" in response.text and "a=sendonly" in response.text
        for _ in range(50):
            if viewer.video is not None:
                break
            await asyncio.sleep(0.1)
        assert viewer.video is not None
        frames = [await asyncio.wait_for(viewer.video.recv(), 10) for _ in range(10)]
        assert all(isinstance(f, av.VideoFrame) and (f.width, f.height) == (320, 240) for f in frames)
        assert await viewers(server, stream) == 1

        patch = await server.http.patch(viewer.location or "", content="a=candidate",
                                        headers={"Content-Type": "application/trickle-ice-sdpfrag"})
        assert patch.status_code == 405
        deleted = await viewer.stop()
        assert deleted is not None and deleted.status_code == 200

        async def none_left() -> bool:
            return await viewers(server, stream) == 0
        await until(none_left)
        assert (await server.http.delete(viewer.location or "")).status_code == 404
    finally:
        await viewer.stop()
        await publisher.stop()


async def test_whep_access_limits_and_refusals(server: Server, world: World) -> None:
    stream = world.private_stream
    publisher = await publish(server, stream, world.private_key)
    opened: list[WhepViewer] = []
    try:
        # No credential, an outsider, an unknown stream and a malformed id: the same 404.
        for target, headers in ((stream, {}), (stream, {"Authorization": f"Bearer {world.token(world.carol)}"}),
                                (str(uuid.uuid4()), {}), ("not-a-uuid", {})):
            refused = WhepViewer(server.http, target, headers)
            response = await refused.start()
            await refused.stop()
            assert response.status_code == 404, (target, headers)
            assert response.json()["error"]["code"] == "not-found"

        settings = server.runtime.settings
        alice = Claims(role="user", user_id=world.alice)
        token, _ = media_tokens(settings.jwt_secret, settings.media_token_secret,
                                settings.media_token_ttl_seconds).mint(stream, alice)
        with_token = WhepViewer(server.http, stream, query=f"?token={token}")
        opened.append(with_token)
        assert (await with_token.start()).status_code == 201
        login = WhepViewer(server.http, stream, {"Authorization": f"Bearer {world.token(world.alice)}"})
        opened.append(login)
        assert (await login.start()).status_code == 201

        # The address holds 2 sessions (the fixture's cap): a third is refused before its offer is read.
        third = WhepViewer(server.http, stream, query=f"?token={token}")
        opened.append(third)
        response = await third.start()
        assert response.status_code == 429 and response.json()["error"]["code"] == "too-many-sessions"
        await login.stop()

        big = "v=0\r\n" + "a=x\r\n" * (settings.whip_max_sdp_bytes // 5)
        response = await server.http.post(f"/whep/{stream}?token={token}", content=big,
                                          headers={"Content-Type": "application/sdp"})
        assert response.status_code == 413 and response.json()["error"]["code"] == "sdp-too-large"
        response = await server.http.post(f"/whep/{stream}?token={token}", content="v=0\r\n",
                                          headers={"Content-Type": "text/plain"})
        assert response.status_code == 415
    finally:
        for viewer in opened:
            await viewer.stop()
        await publisher.stop()
