"""Guest speakers end to end: two real aiortc publishers (the host on the stream key, a guest on a guest
token from the GraphQL ops), real encoding, and the HLS output decoded frame by frame."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from nchat_live.auth import Claims, guest_tokens
from nchat_live.config import Settings
from nchat_live.media.compose import HOST
from tests.support import World

from .compose_support import BLACK, BLUE, GREEN, PLACEHOLDER, RED, SolidVideo
from .guest_support import (
    BAR,
    CENTRE,
    INVITE,
    LAYOUT,
    LEFT,
    MUTE,
    REMOVE,
    RESPOND,
    RIGHT,
    TOKEN,
    gql,
    guest_token,
    newest_segment,
    program_shows,
    wait_live,
    wait_until,
    wait_until_ok,
)
from .media_client import WhipClient
from .media_server import Server, media_server

pytestmark = pytest.mark.slow

# Tones on whole FFT bins of any segment length in 50 Hz steps; neither a harmonic of the other.
HOST_TONE, GUEST_TONE = 450, 1600


@pytest.fixture
async def server(settings: Settings, tmp_path: Path) -> AsyncIterator[Server]:
    async with media_server(settings, tmp_path / "live", publisher_grace_seconds=6.0,
                            ingest_key_check_seconds=2.0) as live:
        yield live


def tone_levels(samples: np.ndarray, frequencies: tuple[int, ...]) -> list[float]:
    """The level of each frequency in `samples` (48 kHz) against the median of the spectrum."""
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    floor = float(np.median(spectrum)) + 1e-9
    return [float(spectrum[round(f * len(samples) / 48000)]) / floor for f in frequencies]


async def program_sounds(server: Server, stream: str, heard: tuple[int, ...], silent: tuple[int, ...],
                         what: str, seconds: float = 25) -> None:
    """Wait until a whole new segment's audio carries the `heard` tones strongly and the `silent` ones not."""
    deadline = time.monotonic() + seconds
    seen: int | None = None
    last = "no segment yet"
    while time.monotonic() < deadline:
        found = await newest_segment(server, stream, "audio")
        if found is not None and found[0] != seen:
            seen, samples = found[0], found[1]
            assert isinstance(samples, np.ndarray)
            loud = tone_levels(samples, heard)
            quiet = tone_levels(samples, silent)
            if all(level > 100 for level in loud) and all(level < 10 for level in quiet):
                return
            last = f"segment {seen}: heard {heard} at {loud}, silent {silent} at {quiet}"
        await asyncio.sleep(0.3)
    raise AssertionError(f"the program never sounded {what}; {last}")


async def test_guest_joins_the_program_layouts_switch_removal_and_return(server: Server, world: World) -> None:
    stream = world.public_stream
    media = server.runtime.media
    assert media is not None
    host = WhipClient(server.http, stream, world.public_key, SolidVideo(RED, 640, 360), tone=HOST_TONE)
    clients = [host]
    try:
        assert (await host.start()).status_code == 201
        await program_shows(server, stream, {LEFT: RED, RIGHT: RED, CENTRE: RED}, "the host alone")
        assert media.streams[stream].program is None  # no guest yet: no compositor

        gid = (await gql(server, world, world.alice, INVITE, s=stream, u=world.bob))["inviteGuest"]["id"]
        await gql(server, world, world.bob, RESPOND, g=gid)
        await gql(server, world, world.alice, LAYOUT, s=stream, l="side_by_side", f=None)
        token = await guest_token(server, world, stream)
        guest = WhipClient(server.http, stream, token, SolidVideo(BLUE, 320, 180), tone=GUEST_TONE)
        clients.append(guest)
        response = await guest.start()
        assert response.status_code == 201, response.text
        assert response.headers["location"].startswith(f"/whip/{stream}/")
        # Side by side: the host left, the guest right, each letterboxed in its half.
        await program_shows(server, stream, {LEFT: RED, RIGHT: BLUE, BAR: BLACK}, "host and guest side by side")
        live = media.streams[stream]
        assert live.program is not None and set(live.guests) == {gid}
        # The program took over the host's feed without a discontinuity.
        playlist = (await server.http.get(f"/hls/{stream}/360p/index.m3u8")).text
        assert not re.search(r"^#EXT-X-DISCONTINUITY$", playlist, re.M), playlist
        # Both voices in the mix; muted, the guest's is gone and the host's stays.
        await program_sounds(server, stream, (HOST_TONE, GUEST_TONE), (), "both tones")
        await gql(server, world, world.alice, MUTE, g=gid, m=True)
        await program_sounds(server, stream, (HOST_TONE,), (GUEST_TONE,), "the host's tone alone (guest muted)")
        await gql(server, world, world.alice, MUTE, g=gid, m=False)

        await gql(server, world, world.alice, LAYOUT, s=stream, l="solo", f=gid)
        await program_shows(server, stream, {LEFT: BLUE, RIGHT: BLUE, CENTRE: BLUE}, "the guest alone (solo)")
        await gql(server, world, world.alice, LAYOUT, s=stream, l="solo", f=None)
        await program_shows(server, stream, {LEFT: RED, RIGHT: RED, CENTRE: RED}, "the host alone (solo)")
        await gql(server, world, world.alice, LAYOUT, s=stream, l="side_by_side", f=None)
        await program_shows(server, stream, {LEFT: RED, RIGHT: BLUE}, "side by side again")

        # The guest drops without a DELETE: its tile stays (a placeholder) through the grace period...
        await guest.drop()
        await program_shows(server, stream, {LEFT: RED, RIGHT: PLACEHOLDER}, "the dropped guest's placeholder")
        # ...and a new session of the same guest takes it back (a new colour: the new session's picture).
        back = WhipClient(server.http, stream, await guest_token(server, world, stream), SolidVideo(GREEN, 320, 180))
        clients.append(back)
        assert (await back.start()).status_code == 201
        await program_shows(server, stream, {LEFT: RED, RIGHT: GREEN}, "the returning guest")

        # Removed by the broadcaster: disconnected at once and gone from the program; the stream goes on.
        await gql(server, world, world.alice, REMOVE, g=gid)
        await wait_until(lambda: not live.guests and back.pc.connectionState in ("closed", "failed"),
                         "the removed guest's disconnection")
        assert live.program is not None and live.program.sources == [HOST]
        await program_shows(server, stream, {LEFT: RED, RIGHT: RED, CENTRE: RED}, "the host alone after removal")
        refused = WhipClient(server.http, stream, token, SolidVideo(BLUE, 320, 180))
        clients.append(refused)
        response = await refused.start()
        assert response.status_code == 403 and response.json()["error"]["code"] == "guest-not-accepted"
        assert media.streams[stream].went_live and not media.streams[stream].ending
    finally:
        for client in clients:
            await client.stop()


async def test_guest_refusals_leave_return_mute_and_removal_without_an_event(server: Server, world: World) -> None:
    stream = world.public_stream
    gid = (await gql(server, world, world.alice, INVITE, s=stream, u=world.bob))["inviteGuest"]["id"]
    await gql(server, world, world.bob, RESPOND, g=gid)
    # Not live yet (scheduled): no token, and no publish with one minted directly either.
    body = (await server.http.post("/v1/graphql", json={"query": TOKEN, "variables": {"s": stream}},
                                   headers={"Authorization": f"Bearer {world.token(world.bob)}"})).json()
    assert body["errors"][0]["extensions"]["code"] == "stream-not-live"
    settings = server.runtime.settings
    from_settings = guest_tokens(settings.jwt_secret, settings.media_token_secret, settings.guest_token_ttl_seconds)
    token, _ = from_settings.mint(stream, world.bob, gid)
    early = WhipClient(server.http, stream, token, SolidVideo(BLUE, 320, 180))
    try:
        response = await early.start()
        assert response.status_code == 409 and response.json()["error"]["code"] == "stream-not-live"
    finally:
        await early.stop()
    # A token for another stream, and a forged one.
    other, _ = from_settings.mint(world.private_stream, world.bob, gid)
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    for bad in (other, forged):
        client = WhipClient(server.http, stream, bad, SolidVideo(BLUE, 320, 180))
        try:
            response = await client.start()
            assert response.status_code == 401, response.text
            assert response.json()["error"]["code"] == "invalid-guest-token"
        finally:
            await client.stop()
    # The broadcaster live on this worker: the guest is admitted; its DELETE needs its own token.
    host = WhipClient(server.http, stream, world.public_key, SolidVideo(RED, 640, 360))
    guest = WhipClient(server.http, stream, token, SolidVideo(BLUE, 320, 180))
    clients = [guest, host]
    try:
        assert (await host.start()).status_code == 201
        await wait_live(server, stream)
        # The ladder decided on the host's 640x360 (the master exists): the program takes that size.
        await wait_until_ok(server, f"/hls/{stream}/master.m3u8")
        response = await guest.start()
        assert response.status_code == 201, response.text
        assert guest.location is not None
        wrong = await server.http.delete(guest.location, headers={"Authorization": f"Bearer {world.public_key}"})
        assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid-guest-token"
        media = server.runtime.media
        assert media is not None
        live = media.streams[stream]
        await wait_until(lambda: gid in live.guests, "the guest attached")
        assert live.program is not None and (live.program.width, live.program.height) == (640, 360)
        deleted = await guest.stop()
        assert deleted is not None and deleted.status_code == 200
        # Left: off the publishers at once, its tile kept for the grace period; the host goes on.
        assert gid not in live.guests and gid in live.guest_grace and live.publisher is not None
        assert live.program is not None and gid in live.program.sources

        # Back within the grace period (the same unexpired token): the tile is its own again.
        again = WhipClient(server.http, stream, token, SolidVideo(BLUE, 320, 180))
        clients.append(again)
        assert (await again.start()).status_code == 201
        await wait_until(lambda: gid in live.guests and gid not in live.guest_grace, "the guest back")
        await gql(server, world, world.alice, MUTE, g=gid, m=True)
        await wait_until(lambda: live.program is not None and gid in live.program.muted, "the mute applied")

        # Removed without an event reaching the worker (a lost bus message): the recheck loop finds it.
        async with server.runtime.database.session(Claims.service()) as session:
            await session.execute("UPDATE nchat_stream_guests SET status = 'removed' WHERE id = $1", gid)
        await wait_until(lambda: gid not in live.guests and again.pc.connectionState in ("closed", "failed"),
                         "the recheck's disconnection", seconds=10)
        assert live.program is not None and live.program.sources == [HOST]
        assert live.publisher is not None and live.ending is None
    finally:
        for client in clients:
            await client.stop()
