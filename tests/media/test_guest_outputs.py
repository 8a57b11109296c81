"""The composed program reaches every output, and a ban takes a guest off air at once.

A WHIP host (red) and a WHIP guest (blue) side by side: a WHEP viewer (aiortc) shows both halves; a ban
through the GraphQL op disconnects the guest and empties its tile on the event alone (the recheck
interval is set far beyond the test's waits); the finalised recording holds frames of both sources
before the ban and the host alone after it. An RTMP host (FFmpeg through PyAV, one solid colour) with a
WHIP guest composes the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import av
import pytest

from nchat_live.auth import Claims
from nchat_live.config import Settings
from nchat_live.media.compose import HOST
from tests.support import World

from .compose_support import BLUE, RED, SolidVideo
from .guest_support import (
    CENTRE,
    LEFT,
    RIGHT,
    accepted_guest,
    gql,
    guest_token,
    program_shows,
    shows,
    track_shows,
    wait_live,
    wait_until,
    wait_until_ok,
)
from .media_client import WhipClient
from .media_server import Server, media_server
from .rtmp_client import run_publisher
from .whep_client import WhepViewer

pytestmark = pytest.mark.slow

BAN = "mutation($s: ID!, $u: ID!) { banUser(streamId: $s, userId: $u, channelWide: true) { id } }"
END = "mutation($s: ID!) { endStream(streamId: $s) { id status } }"
BOTH = {LEFT: RED, RIGHT: BLUE}
HOST_ALONE = {LEFT: RED, RIGHT: RED, CENTRE: RED}


@pytest.fixture
async def server(settings: Settings, tmp_path: Path) -> AsyncIterator[Server]:
    # No recheck within the test: only the chat.banned event can take the banned guest off air in time.
    async with media_server(settings, tmp_path / "live", recording_dir=tmp_path / "recordings",
                            publisher_grace_seconds=3.0, ingest_key_check_seconds=120.0) as live:
        yield live


def recorded_frames(playlist: Path) -> list[av.VideoFrame]:
    with av.open(str(playlist)) as container:
        return list(container.decode(video=0))


async def test_whep_and_the_recording_carry_the_program_and_a_ban_takes_the_guest_off_air(
        server: Server, world: World) -> None:
    stream = world.public_stream
    media = server.runtime.media
    assert media is not None
    host = WhipClient(server.http, stream, world.public_key, SolidVideo(RED, 640, 360), audio=False)
    viewer = WhepViewer(server.http, stream)
    clients: list[WhipClient] = [host]
    try:
        assert (await host.start()).status_code == 201
        await wait_live(server, stream)
        await wait_until_ok(server, f"/hls/{stream}/master.m3u8")
        gid = await accepted_guest(server, world, stream)
        guest = WhipClient(server.http, stream, await guest_token(server, world, stream), SolidVideo(BLUE, 320, 180),
                           audio=False)
        clients.append(guest)
        assert (await guest.start()).status_code == 201
        await program_shows(server, stream, BOTH, "host and guest side by side (HLS)")

        assert (await viewer.start()).status_code == 201
        await wait_until(lambda: viewer.video is not None, "the WHEP video track")
        await track_shows(viewer.video, BOTH, "host and guest side by side (WHEP)")

        # Banned through the GraphQL op: disconnected and out of the program on the event (no recheck runs).
        live = media.streams[stream]
        await gql(server, world, world.alice, BAN, s=stream, u=world.bob)
        await wait_until(lambda: gid not in live.guests and guest.pc.connectionState in ("closed", "failed"),
                         "the banned guest's disconnection", seconds=5)
        assert live.program is not None and live.program.sources == [HOST]
        await track_shows(viewer.video, HOST_ALONE, "the host alone after the ban (WHEP)")

        ended = await gql(server, world, world.alice, END, s=stream)
        assert ended["endStream"]["status"] == "ended"

        async def ready() -> list[str] | None:
            async with server.runtime.database.session(Claims.service()) as session:
                row = await session.fetchrow("SELECT status, renditions FROM nchat_stream_recordings "
                                             "WHERE stream_id = $1", stream)
            return list(row["renditions"]) if row is not None and row["status"] == "ready" else None

        renditions: list[str] | None = None
        for _ in range(100):
            if renditions := await ready():
                break
            await asyncio.sleep(0.2)
        assert renditions, "the recording was never finalised"
        playlist = server.runtime.settings.recording_dir / stream / renditions[0] / "index.m3u8"
        frames = await asyncio.to_thread(recorded_frames, playlist)
        both = [i for i, frame in enumerate(frames) if shows(frame, BOTH)]
        alone = [i for i, frame in enumerate(frames) if shows(frame, HOST_ALONE)]
        # The guest's half was recorded, then the host alone after the ban (and until the end).
        assert len(both) >= 15 and len(alone) >= 15, (len(frames), len(both), len(alone))
        assert max(both) < max(alone) == len(frames) - 1
    finally:
        await viewer.stop()
        for client in clients:
            await client.stop()


async def test_an_rtmp_host_and_a_whip_guest_compose(server: Server, world: World) -> None:
    stream = world.public_stream
    assert server.runtime.rtmp is not None
    publisher = asyncio.create_task(run_publisher(
        server.runtime.rtmp.port, world.public_key, "--seconds", "40", "--size", "640x360", "--realtime",
        "--colour", ",".join(map(str, RED))))
    guest: WhipClient | None = None
    try:
        await wait_live(server, stream, seconds=30)
        await wait_until_ok(server, f"/hls/{stream}/master.m3u8")
        await program_shows(server, stream, HOST_ALONE, "the RTMP host alone")
        await accepted_guest(server, world, stream)
        guest = WhipClient(server.http, stream, await guest_token(server, world, stream), SolidVideo(BLUE, 320, 180),
                           audio=False)
        assert (await guest.start()).status_code == 201
        await program_shows(server, stream, BOTH, "the RTMP host and the WHIP guest side by side")
        assert not publisher.done(), publisher.result() if publisher.done() else None
    finally:
        if guest is not None:
            await guest.stop()
        publisher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await publisher
