"""One H.264 encode per stream, its packets sent to every WebRTC viewer.

aiortc decodes every incoming track (it has no passthrough), so a WHIP stream's video reaches the
worker as decoded frames, and RTMP's does too (the RTMP ingest decodes FLV for the ladder). A
`StreamRelay` taps those frames as they are pushed into the stream's pipeline (`frame_taps`, so it
never waits for the ladder), encodes them ONCE in a thread of its own (libx264 constrained baseline,
`zerolatency`, no B-frames, the source's size capped at 720p) and hands each encoded access unit to
the `EncodedVideoTrack` of every viewer; aiortc's sender only packetizes a packet it is given
(`H264Encoder.pack`), so a viewer costs RTP packetization and SRTP, not an encode.

A viewer that joins, or whose queue overflowed, waits for the next keyframe, and asks for one: the
encoder makes the next frame an IDR. The relay stops encoding when its last viewer leaves.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import av
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError

from ..transcode.pipeline import StreamPipeline

log = logging.getLogger(__name__)

CLOCK = fractions.Fraction(1, 90000)
MAX_HEIGHT = 720
# Keyframes at least this often without being asked (a viewer that lost packets recovers within it).
KEYFRAME_SECONDS = 2.0
VIEWER_QUEUE = 30


def relay_size(width: int, height: int) -> tuple[int, int]:
    """The relay's encoded size: the source's, capped at MAX_HEIGHT lines, both sides even."""
    if height > MAX_HEIGHT:
        width, height = round(width * MAX_HEIGHT / height), MAX_HEIGHT
    return max(2, width - width % 2), max(2, height - height % 2)


def relay_bitrate(width: int, height: int) -> int:
    """About 0.1 bit per pixel at 30 fps, between 300 kbit/s and 2.5 Mbit/s."""
    return max(300_000, min(2_500_000, int(width * height * 30 * 0.1)))


def copy_frame(frame: av.VideoFrame) -> av.VideoFrame:
    """A yuv420p frame's pixels in a frame of its own (row by row: the strides may differ)."""
    copy = av.VideoFrame(frame.width, frame.height, "yuv420p")
    for index, (target, source) in enumerate(zip(copy.planes, frame.planes, strict=True)):
        rows = frame.height if index == 0 else (frame.height + 1) // 2
        width = frame.width if index == 0 else (frame.width + 1) // 2
        data = bytes(source)
        if target.line_size == source.line_size:
            target.update(data[: target.buffer_size])
            continue
        packed = b"".join(data[r * source.line_size: r * source.line_size + width] for r in range(rows))
        view = memoryview(target)
        for r in range(rows):
            view[r * target.line_size: r * target.line_size + width] = packed[r * width: (r + 1) * width]
    return copy


class EncodedVideoTrack(MediaStreamTrack):
    """A viewer's video: the relay's encoded packets (aiortc's sender packetizes them, no encode)."""

    kind = "video"

    def __init__(self, relay: StreamRelay) -> None:
        super().__init__()
        self.relay = relay
        self.queue: asyncio.Queue[av.Packet[Any] | None] = asyncio.Queue(VIEWER_QUEUE)
        self.waiting_for_key = True
        self.packets_sent = 0

    def offer(self, packet: av.Packet[Any] | None) -> None:
        """Event loop: queue one packet (None: the stream ended)."""
        if packet is None:
            with contextlib.suppress(asyncio.QueueFull):
                self.queue.put_nowait(None)
            return
        if self.waiting_for_key:
            if not packet.is_keyframe:
                return
            self.waiting_for_key = False
        try:
            self.queue.put_nowait(packet)
        except asyncio.QueueFull:
            # A viewer that cannot keep up skips to the next keyframe rather than falling behind.
            while not self.queue.empty():
                self.queue.get_nowait()
            self.waiting_for_key = True
            self.relay.request_keyframe()

    async def recv(self) -> av.Packet[Any]:
        if self.readyState != "live":
            raise MediaStreamError
        packet = await self.queue.get()
        if packet is None:
            self.stop()
            raise MediaStreamError
        self.packets_sent += 1
        return packet

    def stop(self) -> None:
        super().stop()
        self.relay.remove(self)


class StreamRelay:
    """The shared encoder of one stream and the viewer tracks it feeds."""

    def __init__(self, stream_id: str, loop: asyncio.AbstractEventLoop, encoder: str = "libx264") -> None:
        self.stream_id = stream_id
        self.loop = loop
        self.encoder_name = encoder
        self.viewers: set[EncodedVideoTrack] = set()
        self.frames_in = 0
        self.frames_encoded = 0
        self.encode_seconds = 0.0
        self._frames: queue.Queue[av.VideoFrame | None] = queue.Queue(maxsize=2)
        self._keyframe = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        self.on_empty: list[Callable[[StreamRelay], None]] = []

    # -- viewers (event loop) ----------------------------------------------------------------

    def add_viewer(self) -> EncodedVideoTrack:
        track = EncodedVideoTrack(self)
        self.viewers.add(track)
        self.request_keyframe()
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"whep-{self.stream_id[:8]}", daemon=True)
            self._thread.start()
        return track

    def remove(self, track: EncodedVideoTrack) -> None:
        self.viewers.discard(track)
        if not self.viewers:
            for callback in self.on_empty:
                callback(self)

    def request_keyframe(self) -> None:
        self._keyframe.set()

    def end(self) -> None:
        """The stream ended: every viewer's track ends, the encoder stops."""
        for track in list(self.viewers):
            track.offer(None)
        self.close()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(queue.Full):
            self._frames.put_nowait(None)

    # -- frames (any thread) -----------------------------------------------------------------

    def push(self, frame: av.VideoFrame) -> None:
        """A pipeline frame tap: keeps the newest frames only, so the relay never adds latency."""
        if self._closed or not self.viewers:
            return
        self.frames_in += 1
        try:
            self._frames.put_nowait(frame)
        except queue.Full:
            with contextlib.suppress(queue.Empty):
                self._frames.get_nowait()
            with contextlib.suppress(queue.Full):
                self._frames.put_nowait(frame)

    # -- encoder thread ----------------------------------------------------------------------

    def _codec(self, width: int, height: int) -> Any:
        codec: Any = av.CodecContext.create(self.encoder_name, "w")
        codec.width, codec.height = width, height
        codec.pix_fmt = "yuv420p"
        codec.time_base = CLOCK
        codec.framerate = fractions.Fraction(30, 1)
        codec.bit_rate = relay_bitrate(width, height)
        codec.profile = "Baseline"
        gop = str(int(KEYFRAME_SECONDS * 30))
        if self.encoder_name == "libx264":
            codec.options = {"preset": "veryfast", "tune": "zerolatency", "level": "31", "g": gop,
                             "x264-params": f"keyint={gop}:scenecut=0:bframes=0"}
        else:
            codec.options = {"g": gop, "bf": "0"}
        return codec

    def _run(self) -> None:
        codec: Any = None
        size: tuple[int, int] | None = None
        start = time.monotonic()
        last_pts = -1
        while True:
            frame = self._frames.get()
            if frame is None:
                break
            started = time.perf_counter()
            try:
                width, height = relay_size(frame.width, frame.height)
                if codec is None or size != (width, height):
                    codec, size = self._codec(width, height), (width, height)
                    self._keyframe.set()
                image = frame.reformat(width=width, height=height, format="yuv420p")
                if image is frame:
                    # The pipeline reads this frame on its own thread: never touch its fields.
                    image = copy_frame(frame)
                pts = max(int((time.monotonic() - start) * 90000), last_pts + 1)
                last_pts = pts
                image.pts = pts
                image.time_base = CLOCK
                key = self._keyframe.is_set()
                if key:
                    self._keyframe.clear()
                image.pict_type = av.video.frame.PictureType.I if key else av.video.frame.PictureType.NONE
                packets = codec.encode(image)
            except Exception:
                log.exception("stream %s: the WHEP relay could not encode a frame", self.stream_id)
                continue
            self.frames_encoded += 1
            self.encode_seconds += time.perf_counter() - started
            for packet in packets:
                with contextlib.suppress(RuntimeError):  # the loop is closed: the process is stopping
                    self.loop.call_soon_threadsafe(self._deliver, packet)

    def _deliver(self, packet: av.Packet[Any]) -> None:
        for track in list(self.viewers):
            track.offer(packet)


class Relays:
    """The relays of one worker, by stream id: created with the first viewer, closed with the last."""

    def __init__(self, encoder: str = "libx264") -> None:
        self.encoder = encoder
        self.relays: dict[str, StreamRelay] = {}
        self._taps: dict[str, StreamPipeline] = {}

    def viewer_track(self, stream_id: str, pipeline: StreamPipeline) -> EncodedVideoTrack:
        """A new viewer's track of `stream_id`, whose frames come from `pipeline`."""
        relay = self.relays.get(stream_id)
        if relay is None or self._taps.get(stream_id) is not pipeline:
            if relay is not None:
                self._drop(relay)
            relay = StreamRelay(stream_id, asyncio.get_running_loop(), self.encoder)
            relay.on_empty.append(self._drop)
            self.relays[stream_id] = relay
            self._taps[stream_id] = pipeline
            pipeline.frame_taps.append(relay.push)
        return relay.add_viewer()

    def _drop(self, relay: StreamRelay) -> None:
        if self.relays.get(relay.stream_id) is relay:
            del self.relays[relay.stream_id]
            pipeline = self._taps.pop(relay.stream_id, None)
            if pipeline is not None:
                with contextlib.suppress(ValueError):
                    pipeline.frame_taps.remove(relay.push)
        relay.close()

    def end(self, stream_id: str) -> None:
        relay = self.relays.get(stream_id)
        if relay is not None:
            self._drop(relay)
            relay.end()

    def close(self) -> None:
        for stream_id in list(self.relays):
            self.end(stream_id)
