"""WHEP playback: a real aiortc WHIP publisher, the app on an in-process ASGI transport, aiortc WHEP viewers.

Audio: publishers send a tone (`ToneAudio` repeats one 20 ms chunk, so its spectrum has lines at multiples
of 50 Hz only: the tones are such multiples), the viewer's decoded Opus must carry it at that frequency.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import av
import numpy as np
import pytest
from aiortc import MediaStreamTrack

from nchat_live.auth import Claims, media_tokens
from nchat_live.config import Settings
from nchat_live.media.egress.relay import OPUS_RATE, StreamRelay
from tests.support import World

from .guest_support import accepted_guest, guest_token, wait_live
from .media_client import SyntheticVideo, ToneAudio, WhipClient
from .media_server import Server, media_server
from .whep_client import WhepViewer, whep_endpoint

pytestmark = pytest.mark.slow


@pytest.fixture
async def server(settings: Settings, tmp_path: Path) -> AsyncIterator[Server]:
    async with media_server(settings, tmp_path / "live", publisher_grace_seconds=1.0,
                            whep_max_sessions_per_client=2) as live:
        yield live


async def viewers(server: Server, stream_id: str) -> int:
    async with server.runtime.database.session(Claims.service()) as s:
        return int(await s.fetchval("SELECT current_viewers FROM nchat_streams WHERE id = $1", stream_id))


async def publish(server: Server, stream_id: str, key: str, tone: int | None = None) -> WhipClient:
    client = WhipClient(server.http, stream_id, key, SyntheticVideo(320, 240, 30), audio=tone is not None,
                        tone=tone or 0)
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


def spectrum(samples: np.typing.NDArray[np.float64]) -> tuple[np.typing.NDArray[np.float64], float]:
    """Magnitudes of a 48 kHz signal's spectrum and the width of one bin in Hz."""
    return np.abs(np.fft.rfft(samples * np.hanning(len(samples)))), OPUS_RATE / len(samples)


def peaks(samples: np.typing.NDArray[np.float64], count: int) -> list[float]:
    """The `count` strongest frequencies, each at least 100 Hz from a stronger one."""
    magnitudes, width = spectrum(samples)
    found: list[float] = []
    for index in np.argsort(magnitudes)[::-1]:
        frequency = float(index * width)
        if all(abs(frequency - f) >= 100 for f in found):
            found.append(frequency)
        if len(found) == count:
            break
    return found


async def heard(track: MediaStreamTrack, seconds: float = 1.0, skip: float = 0.5) -> np.typing.NDArray[np.float64]:
    """The left channel of `seconds` of a received audio track, after `skip` seconds (the decoder settles)."""
    chunks: list[np.typing.NDArray[np.float64]] = []
    total = 0
    while total < (skip + seconds) * OPUS_RATE:
        frame = await asyncio.wait_for(track.recv(), 10)
        assert isinstance(frame, av.AudioFrame) and frame.sample_rate == OPUS_RATE
        left = frame.to_ndarray().reshape(-1, len(frame.layout.channels))[:, 0].astype(np.float64)
        total += len(left)
        chunks.append(left)
    return np.concatenate(chunks)[-int(seconds * OPUS_RATE):]


async def wait_for_track(viewer: WhepViewer, kind: str) -> MediaStreamTrack:
    for _ in range(100):
        track = viewer.audio if kind == "audio" else viewer.video
        if track is not None:
            return track
        await asyncio.sleep(0.1)
    raise AssertionError(f"no {kind} track")


async def test_whep_plays_the_publishers_tone_and_a_video_only_offer_gets_video_alone(
        server: Server, world: World) -> None:
    stream = world.public_stream
    publisher = await publish(server, stream, world.public_key, tone=450)
    listener = WhepViewer(server.http, stream)
    watcher = WhepViewer(server.http, stream, audio=False)
    try:
        response = await listener.start()
        assert response.status_code == 201, response.text
        audio_section = response.text[response.text.index("m=audio"):]
        assert "opus/48000/2" in audio_section and "a=sendonly" in audio_section
        # One media stream id for both tracks: browsers lip-sync the tracks of one stream.
        streams = {line.split()[0] for line in response.text.splitlines() if line.startswith("a=msid:")}
        assert len(streams) == 1 and response.text.count("a=msid:") == 2, streams
        frequency = peaks(await heard(await wait_for_track(listener, "audio")), 1)[0]
        assert abs(frequency - 450) <= 5, frequency
        # The same peer connection still plays the video.
        video = await wait_for_track(listener, "video")
        assert isinstance(await asyncio.wait_for(video.recv(), 10), av.VideoFrame)

        response = await watcher.start()
        assert response.status_code == 201, response.text
        assert "m=audio" not in response.text
        video = await wait_for_track(watcher, "video")
        frames = [await asyncio.wait_for(video.recv(), 10) for _ in range(5)]
        assert all(isinstance(f, av.VideoFrame) and (f.width, f.height) == (320, 240) for f in frames)
        assert watcher.audio is None
        relay = whep_endpoint(server.http).relays.relays[stream]
        # One Opus encode for the stream: one audio track (the listener's), the watcher's video only.
        assert len(relay.viewers) == 2 and len(relay.audio_viewers) == 1
        assert relay.audio_packets > 0

        # The listener leaves: the relay stops taking audio while the watcher plays on.
        await listener.stop()

        async def no_listener() -> bool:
            return not relay.audio_viewers
        await until(no_listener)
        taken = relay.audio_frames_in
        await asyncio.wait_for(video.recv(), 10)
        await asyncio.sleep(0.3)
        assert relay.audio_frames_in == taken
    finally:
        await listener.stop()
        await watcher.stop()
        await publisher.stop()


async def test_whep_plays_the_programs_mix_with_a_guest_on(server: Server, world: World) -> None:
    """With a guest on, the viewer hears the program's mix: the host's tone and the guest's."""
    stream = world.public_stream
    host = WhipClient(server.http, stream, world.public_key, SyntheticVideo(320, 240, 30), tone=450)
    viewer = WhepViewer(server.http, stream)
    clients = [host]
    try:
        assert (await host.start()).status_code == 201
        await wait_live(server, stream)
        await accepted_guest(server, world, stream)
        guest = WhipClient(server.http, stream, await guest_token(server, world, stream),
                           SyntheticVideo(160, 120, 15), tone=1000)
        clients.append(guest)
        assert (await guest.start()).status_code == 201
        live = server.runtime.media.streams[stream] if server.runtime.media else None
        for _ in range(100):
            if live is not None and live.program is not None and len(live.program.sources) == 2:
                break
            await asyncio.sleep(0.1)
        assert (await viewer.start()).status_code == 201
        track = await wait_for_track(viewer, "audio")
        for _ in range(10):  # the guest's audio joins the mix once its preroll is buffered
            found = sorted(peaks(await heard(track, skip=0.2), 2))
            if abs(found[0] - 450) <= 5 and abs(found[1] - 1000) <= 5:
                break
        assert abs(found[0] - 450) <= 5 and abs(found[1] - 1000) <= 5, found
    finally:
        await viewer.stop()
        for client in clients:
            await client.stop()


async def test_relay_stamps_audio_and_video_from_one_clock() -> None:
    """Frames pushed at the same moments get timestamps that agree (90 kHz video, 48 kHz Opus)."""
    relay = StreamRelay("a" * 32, asyncio.get_running_loop())
    audio, video = relay.add_audio_viewer(), relay.add_viewer()
    tone = ToneAudio(450)
    try:
        await asyncio.sleep(0.5)  # the clock started before the first frame
        for index in range(50):  # one second, paced in real time
            frame = await tone.recv()
            relay.push_audio(frame)
            if index % 2:
                relay.push(av.VideoFrame(160, 120, "yuv420p"))
                video_pushed = time.monotonic() - relay.started
        await asyncio.sleep(0.3)
        audio_packets = [audio.queue.get_nowait() for _ in range(audio.queue.qsize())]
        video_packets = [video.queue.get_nowait() for _ in range(video.queue.qsize())]
        assert len(audio_packets) >= 45 and len(video_packets) >= 20
        audio_end = float((audio_packets[-1].pts + 960) * audio_packets[-1].time_base)
        video_end = float(video_packets[-1].pts * video_packets[-1].time_base)
        # Both near the last push's moment on the relay's clock (the audio ends where its last frame
        # ended, less Opus's 6.5 ms priming delay), nowhere near 0 (the relay's start).
        assert abs(video_end - video_pushed) < 0.03, (video_end, video_pushed)
        assert abs(audio_end - video_end) < 0.04, (audio_end, video_end)
        # Sample-counted audio: 20 ms apart, no jitter.
        assert {b.pts - a.pts for a, b in itertools.pairwise(audio_packets)} == {960}

        # The source's format changes (a reconnect, the program taking over): the relay keeps encoding.
        for _ in range(10):
            other = av.AudioFrame(format="fltp", layout="mono", samples=441)
            other.planes[0].update(bytes(other.planes[0].buffer_size))
            other.sample_rate = 44100
            relay.push_audio(other)
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.3)
        assert audio.queue.qsize() >= 3
    finally:
        relay.close()
