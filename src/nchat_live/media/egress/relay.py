"""One H.264 encode and one Opus encode per stream, their packets sent to every WebRTC viewer.

aiortc decodes every incoming track (it has no passthrough), so a WHIP stream's video reaches the
worker as decoded frames, and RTMP's does too (the RTMP ingest decodes FLV for the ladder). A
`StreamRelay` taps those frames as they are pushed into the stream's pipeline (`frame_taps`, so it
never waits for the ladder), encodes them ONCE in a thread of its own (libx264 constrained baseline,
`zerolatency`, no B-frames, the source's size capped at 720p) and hands each encoded access unit to
the `EncodedVideoTrack` of every viewer; aiortc's sender only packetizes a packet it is given
(`H264Encoder.pack`), so a viewer costs RTP packetization and SRTP, not an encode.

A viewer that joins, or whose queue overflowed, waits for the next keyframe, and asks for one: the
encoder makes the next frame an IDR. The relay stops encoding when its last viewer leaves.

Audio is tapped at the same place (`audio_taps`: the publisher's decoded audio, or the program's mix
when guests are on) and encoded ONCE to Opus (48 kHz stereo, 20 ms packets) on a second thread, while
the stream has viewers whose offer asked for audio; each `EncodedAudioTrack` only gets the packets.

A/V sync: both kinds are timestamped from one clock, the relay's monotonic start, at the moment the tap
saw them (a frame's start: its arrival less its duration), 90 kHz for video, 48 kHz for audio. Audio
counts samples from its anchor so its timestamps have no jitter, and re-anchors on that clock after a
gap; audio arriving faster than real time by more than RESYNC_SECONDS is dropped, never sent back in time.
aiortc's RTCP sender reports map each track's RTP time to the wall clock at send time, which is how
the receiver lines the two tracks up.
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
from av.video.reformatter import VideoReformatter

from ..transcode.pipeline import StreamPipeline

log = logging.getLogger(__name__)

CLOCK = fractions.Fraction(1, 90000)
MAX_HEIGHT = 720
# Keyframes at least this often without being asked (a viewer that lost packets recovers within it).
KEYFRAME_SECONDS = 2.0
VIEWER_QUEUE = 30
OPUS_RATE = 48000
OPUS_CLOCK = fractions.Fraction(1, OPUS_RATE)
OPUS_FRAME = 960  # 20 ms, WebRTC's usual packet
OPUS_BITRATE = 64_000
# Audio this far off its sample count (a gap, a drift) is re-anchored on the relay's clock.
RESYNC_SECONDS = 0.2
AUDIO_QUEUE = 50  # 1 s of 20 ms packets


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


class _RelayedTrack(MediaStreamTrack):
    """A viewer's track fed with the relay's encoded packets (aiortc's sender only packs them): the
    queue `offer` fills on the event loop, and `recv` that ends the track on None (the stream ended)."""

    def __init__(self, relay: StreamRelay, queue_size: int) -> None:
        super().__init__()
        self.relay = relay
        self.queue: asyncio.Queue[av.Packet[Any] | None] = asyncio.Queue(queue_size)
        self.packets_sent = 0

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


class EncodedVideoTrack(_RelayedTrack):
    """A viewer's video: the relay's encoded packets (aiortc's sender packetizes them, no encode)."""

    kind = "video"

    def __init__(self, relay: StreamRelay) -> None:
        super().__init__(relay, VIEWER_QUEUE)
        self.waiting_for_key = True

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


def copy_audio(frame: av.AudioFrame) -> av.AudioFrame:
    """A frame's samples in a frame of its own, without timestamps (the pipeline's thread sets the
    pushed frame's pts while resampling it; the relay's resampler must not see that)."""
    copy = av.AudioFrame.from_ndarray(frame.to_ndarray(), format=frame.format.name, layout=frame.layout.name)
    copy.sample_rate = frame.sample_rate
    return copy


class EncodedAudioTrack(_RelayedTrack):
    """A viewer's audio: the relay's Opus packets (aiortc's sender only packs them)."""

    kind = "audio"

    def __init__(self, relay: StreamRelay) -> None:
        super().__init__(relay, AUDIO_QUEUE)

    def offer(self, packet: av.Packet[Any] | None) -> None:
        """Event loop: queue one packet (None: the stream ended); a viewer behind loses its oldest."""
        if self.queue.full():
            self.queue.get_nowait()
        self.queue.put_nowait(packet)


class StreamRelay:
    """The shared encoder of one stream and the viewer tracks it feeds."""

    def __init__(self, stream_id: str, loop: asyncio.AbstractEventLoop, encoder: str = "libx264") -> None:
        self.stream_id = stream_id
        self.loop = loop
        self.encoder_name = encoder
        self.viewers: set[EncodedVideoTrack] = set()
        self.audio_viewers: set[EncodedAudioTrack] = set()
        self.frames_in = 0
        self.frames_encoded = 0
        self.encode_seconds = 0.0
        self.audio_frames_in = 0
        self.audio_packets = 0
        self.audio_encode_seconds = 0.0
        # The one clock of both kinds' timestamps.
        self.started = time.monotonic()
        self._frames: queue.Queue[tuple[av.VideoFrame, float] | None] = queue.Queue(maxsize=2)
        self._audio: queue.Queue[tuple[av.AudioFrame, float] | None] = queue.Queue(maxsize=AUDIO_QUEUE)
        self._keyframe = threading.Event()
        self._thread: threading.Thread | None = None
        self._audio_thread: threading.Thread | None = None
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

    def add_audio_viewer(self) -> EncodedAudioTrack:
        track = EncodedAudioTrack(self)
        if not self.audio_viewers and not self._closed:
            # Frames queued before the last listener left are stale for this one.
            with contextlib.suppress(queue.Empty):
                while True:
                    self._audio.get_nowait()
        self.audio_viewers.add(track)
        if self._audio_thread is None:
            self._audio_thread = threading.Thread(target=self._run_audio, name=f"whep-a-{self.stream_id[:8]}",
                                                  daemon=True)
            self._audio_thread.start()
        return track

    def remove(self, track: _RelayedTrack) -> None:
        if isinstance(track, EncodedAudioTrack):
            self.audio_viewers.discard(track)
        else:
            self.viewers.discard(track)
        if not self.viewers and not self.audio_viewers:
            for callback in self.on_empty:
                callback(self)

    def request_keyframe(self) -> None:
        self._keyframe.set()

    def end(self) -> None:
        """The stream ended: every viewer's track ends, the encoder stops."""
        for track in list(self.viewers):
            track.offer(None)
        for audio in list(self.audio_viewers):
            audio.offer(None)
        self.close()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for frames in (self._frames, self._audio):
            with contextlib.suppress(queue.Empty):
                frames.get_nowait()  # room for the end, even in a full queue
            with contextlib.suppress(queue.Full):
                frames.put_nowait(None)

    # -- frames (any thread) -----------------------------------------------------------------

    def push(self, frame: av.VideoFrame) -> None:
        """A pipeline frame tap: keeps the newest frames only, so the relay never adds latency."""
        if self._closed or not self.viewers:
            return
        self.frames_in += 1
        self._put(self._frames, (frame, time.monotonic()))

    def push_audio(self, frame: av.AudioFrame) -> None:
        """A pipeline audio tap: queued for the Opus thread while a viewer listens."""
        if self._closed or not self.audio_viewers:
            return
        self.audio_frames_in += 1
        self._put(self._audio, (frame, time.monotonic()))

    @staticmethod
    def _put(frames: queue.Queue[Any], item: Any) -> None:
        """Queue `item`, dropping the oldest when full: the relay never adds latency."""
        try:
            frames.put_nowait(item)
        except queue.Full:
            with contextlib.suppress(queue.Empty):
                frames.get_nowait()
            with contextlib.suppress(queue.Full):
                frames.put_nowait(item)

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
        scaler = VideoReformatter()
        size: tuple[int, int] | None = None
        last_pts = -1
        while True:
            item = self._frames.get()
            if item is None:
                break
            frame, arrival = item
            started = time.perf_counter()
            try:
                width, height = relay_size(frame.width, frame.height)
                if codec is None or size != (width, height):
                    codec, size = self._codec(width, height), (width, height)
                    self._keyframe.set()
                # A scaler of this thread's own: the pipeline scales the same frame on its thread.
                image = scaler.reformat(frame, width=width, height=height, format="yuv420p")
                if image is frame:
                    # The pipeline reads this frame on its own thread: never touch its fields.
                    image = copy_frame(frame)
                pts = max(int((arrival - self.started) * 90000), last_pts + 1)
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

    # -- Opus thread -------------------------------------------------------------------------

    @staticmethod
    def _opus() -> Any:
        codec: Any = av.CodecContext.create("libopus", "w")
        codec.sample_rate = OPUS_RATE
        codec.format = "s16"
        codec.layout = "stereo"
        codec.time_base = OPUS_CLOCK
        codec.bit_rate = OPUS_BITRATE
        codec.options = {"application": "audio", "frame_duration": "20"}
        return codec

    @staticmethod
    def _resampler() -> av.AudioResampler:
        return av.AudioResampler(format="s16", layout="stereo", rate=OPUS_RATE, frame_size=OPUS_FRAME)

    def _run_audio(self) -> None:
        codec = self._opus()
        resampler = self._resampler()
        # Where the next sample pushed in, and the next sample out of the resampler, sit on the clock.
        next_in: int | None = None
        next_out = 0
        slack = int(RESYNC_SECONDS * OPUS_RATE)
        while True:
            item = self._audio.get()
            if item is None:
                break
            frame, arrival = item
            started = time.perf_counter()
            try:
                rate = frame.sample_rate or OPUS_RATE
                samples = round(frame.samples * OPUS_RATE / rate)
                at = round((arrival - self.started) * OPUS_RATE) - samples
                if next_in is not None and at < next_in - slack:
                    continue  # faster than real time: what is sent already covers this moment
                if next_in is None or at > next_in + slack:
                    # The first frame, or after a gap: anchor on the shared clock, start a fresh resampler.
                    resampler = self._resampler()
                    next_in = next_out = at
                next_in += samples
                own = copy_audio(frame)
                try:
                    converted = resampler.resample(own)
                except ValueError:
                    # The source changed its format (a reconnect, the program taking over): a new resampler.
                    resampler = self._resampler()
                    converted = resampler.resample(own)
                packets = []
                for out in converted:
                    out.pts, out.time_base = next_out, OPUS_CLOCK
                    next_out += out.samples
                    packets.extend(codec.encode(out))
            except Exception:
                log.exception("stream %s: the WHEP relay could not encode audio", self.stream_id)
                continue
            self.audio_encode_seconds += time.perf_counter() - started
            for packet in packets:
                packet.time_base = OPUS_CLOCK
                self.audio_packets += 1
                with contextlib.suppress(RuntimeError):  # the loop is closed: the process is stopping
                    self.loop.call_soon_threadsafe(self._deliver_audio, packet)

    def _deliver_audio(self, packet: av.Packet[Any]) -> None:
        for track in list(self.audio_viewers):
            track.offer(packet)


class Relays:
    """The relays of one worker, by stream id: created with the first viewer, closed with the last."""

    def __init__(self, encoder: str = "libx264") -> None:
        self.encoder = encoder
        self.relays: dict[str, StreamRelay] = {}
        self._taps: dict[str, StreamPipeline] = {}

    def relay(self, stream_id: str, pipeline: StreamPipeline) -> StreamRelay:
        """The relay of `stream_id`, whose frames come from `pipeline` (add a viewer's tracks at once:
        a relay without viewers is dropped when its last track stops)."""
        relay = self.relays.get(stream_id)
        if relay is None or self._taps.get(stream_id) is not pipeline:
            if relay is not None:
                self._drop(relay)
            relay = StreamRelay(stream_id, asyncio.get_running_loop(), self.encoder)
            relay.on_empty.append(self._drop)
            self.relays[stream_id] = relay
            self._taps[stream_id] = pipeline
            pipeline.frame_taps.append(relay.push)
            pipeline.audio_taps.append(relay.push_audio)
        return relay

    def _drop(self, relay: StreamRelay) -> None:
        if self.relays.get(relay.stream_id) is relay:
            del self.relays[relay.stream_id]
            pipeline = self._taps.pop(relay.stream_id, None)
            if pipeline is not None:
                with contextlib.suppress(ValueError):
                    pipeline.frame_taps.remove(relay.push)
                with contextlib.suppress(ValueError):
                    pipeline.audio_taps.remove(relay.push_audio)
        relay.close()

    def end(self, stream_id: str) -> None:
        relay = self.relays.get(stream_id)
        if relay is not None:
            self._drop(relay)
            relay.end()

    def close(self) -> None:
        for stream_id in list(self.relays):
            self.end(stream_id)
