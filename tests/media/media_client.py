"""A WHIP publisher for tests and benches: aiortc sending synthetic video (moving bar + frame counter) and a tone."""

from __future__ import annotations

import asyncio
import fractions
import math
import struct
import time

import av
import httpx
from aiortc import AudioStreamTrack, RTCPeerConnection, RTCRtpSender, RTCSessionDescription, VideoStreamTrack

VIDEO_CLOCK = 90000


class SyntheticVideo(VideoStreamTrack):
    """`width`x`height` frames at `fps`: a bar that moves every frame over a slowly changing background.

    With `stamp` the frame's wall-clock send time is written as 64 blocks of black/white (one bit each,
    milliseconds since `epoch`) along the top rows, so a reader of the HLS output can measure latency.
    """

    def __init__(self, width: int = 1280, height: int = 720, fps: int = 30, stamp: bool = False,
                 epoch: float = 0.0) -> None:
        super().__init__()
        self.width, self.height, self.fps = width, height, fps
        self.stamp, self.epoch = stamp, epoch
        self.count = 0
        self._start: float | None = None
        self._chroma = bytes([128]) * ((width // 2) * (height // 2))

    async def recv(self) -> av.VideoFrame:
        if self._start is None:
            self._start = time.monotonic()
        due = self._start + self.count / self.fps
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        frame = av.VideoFrame(self.width, self.height, "yuv420p")
        luma = bytearray([40 + (self.count // 15) % 150]) * (frame.planes[0].line_size * self.height)
        stride = frame.planes[0].line_size
        bar = (self.count * 16) % max(self.width - 64, 1)
        for row in range(self.height // 3, self.height // 3 + 48):
            luma[row * stride + bar: row * stride + bar + 64] = b"\xeb" * 64
        if self.stamp:
            write_stamp(luma, stride, int((time.time() - self.epoch) * 1000))
        frame.planes[0].update(bytes(luma))
        frame.planes[1].update(self._chroma[: frame.planes[1].buffer_size])
        frame.planes[2].update(self._chroma[: frame.planes[2].buffer_size])
        frame.pts = int(self.count * VIDEO_CLOCK / self.fps)
        frame.time_base = fractions.Fraction(1, VIDEO_CLOCK)
        self.count += 1
        return frame


STAMP_BITS = 40
STAMP_BLOCK = 16


def write_stamp(luma: bytearray, stride: int, value: int) -> None:
    for bit in range(STAMP_BITS):
        shade = b"\xeb" if (value >> bit) & 1 else b"\x10"
        for row in range(STAMP_BLOCK):
            start = row * stride + bit * STAMP_BLOCK
            luma[start: start + STAMP_BLOCK] = shade * STAMP_BLOCK


def read_stamp(frame: av.VideoFrame, width: int) -> int:
    """The value `write_stamp` drew into a frame scaled to `width` (sampled at each block's centre)."""
    gray = frame.reformat(format="gray")
    plane = gray.planes[0]
    data = bytes(plane)
    scale = width / 1280
    value = 0
    y = int(STAMP_BLOCK * scale / 2)
    for bit in range(STAMP_BITS):
        x = int((bit * STAMP_BLOCK + STAMP_BLOCK / 2) * scale)
        if data[y * plane.line_size + x] > 128:
            value |= 1 << bit
    return value


class ToneAudio(AudioStreamTrack):
    """A tone (440 Hz unless told), 20 ms stereo s16 frames at 48 kHz (whole periods for 50 Hz multiples)."""

    def __init__(self, frequency: int = 440) -> None:
        super().__init__()
        samples = 960
        self._chunk = b"".join(
            struct.pack("<hh", v, v)
            for v in (int(8000 * math.sin(2 * math.pi * frequency * i / 48000)) for i in range(samples))
        )
        self._samples = samples
        self._pts = 0
        self._start: float | None = None

    async def recv(self) -> av.AudioFrame:
        if self._start is None:
            self._start = time.monotonic()
        delay = self._start + self._pts / 48000 - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        frame = av.AudioFrame(format="s16", layout="stereo", samples=self._samples)
        frame.planes[0].update(self._chunk)
        frame.sample_rate = 48000
        frame.pts = self._pts
        frame.time_base = fractions.Fraction(1, 48000)
        self._pts += self._samples
        return frame


class WhipClient:
    """Publishes over WHIP; `start` returns the HTTP response of the POST."""

    def __init__(self, http: httpx.AsyncClient, stream_id: str, key: str, video: VideoStreamTrack | None = None,
                 audio: bool = True, codec: str = "video/H264", tone: int = 440) -> None:
        self.http, self.stream_id, self.key = http, stream_id, key
        self.pc = RTCPeerConnection()
        self.video = video or SyntheticVideo()
        transceiver = self.pc.addTransceiver(self.video, direction="sendonly")
        preferred = [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType == codec]
        if preferred:
            transceiver.setCodecPreferences(preferred)
        if audio:
            self.pc.addTransceiver(ToneAudio(tone), direction="sendonly")
        self.location: str | None = None

    async def start(self) -> httpx.Response:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        response = await self.http.post(
            f"/whip/{self.stream_id}", content=self.pc.localDescription.sdp,
            headers={"Authorization": f"Bearer {self.key}", "Content-Type": "application/sdp"},
        )
        if response.status_code == 201:
            self.location = response.headers["location"]
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=response.text, type="answer"))
        return response

    async def drop(self) -> None:
        """Vanish without a DELETE (a crashed or disconnected publisher)."""
        await self.pc.close()

    async def stop(self) -> httpx.Response | None:
        response = None
        if self.location:
            response = await self.http.delete(self.location, headers={"Authorization": f"Bearer {self.key}"})
        await self.pc.close()
        return response
