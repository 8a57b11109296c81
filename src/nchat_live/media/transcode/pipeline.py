"""One stream's media path: decoded frames in, an encoded ladder packaged as (LL-)HLS out.

Any ingest feeds it (WHIP through aiortc tracks, RTMP through decoded FLV packets)::

    pipeline = StreamPipeline(stream_id, storage, max_resolution="720p", observer=my_observer)
    pipeline.push_video(frame)     # av.VideoFrame, any size/format; pts + time_base if known
    pipeline.push_audio(frame)     # av.AudioFrame, any rate/layout/format
    pipeline.discontinuity()       # the publisher reconnected: new timestamps, EXT-X-DISCONTINUITY
    pipeline.retime()              # new timestamps without a gap (the guest compositor takes over)
    await pipeline.aclose()        # or close() from sync code: flush, EXT-X-ENDLIST, join the worker

`push_*` never block: they queue the frame for a worker thread that scales and encodes every
rendition (decode-once: the caller hands decoded frames), forces keyframes on the same source frames
in every rendition (GOP = 2 x fps, one per segment), encodes audio to AAC (silence fills in when the
publisher sends none, so players always get an audio track) and hands fMP4 fragments to the packager.

Timestamps: each kind's first frame after start or `discontinuity()` is anchored to its arrival time,
so audio and video share one clock even when their RTP clocks are unrelated.

Observers (recording, thumbnails) subclass `PipelineObserver`; its methods run on the worker thread
and must return quickly (hand heavy work to another thread).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import TYPE_CHECKING, Any, cast

import av
from av.video.reformatter import VideoReformatter

from ...observability import ENCODER_SPEED
from ..hls.fmp4 import BoxSplitter, avc_codec_string, parse_moof
from ..hls.packager import PackagingConfig, RenditionPackager, SegmentInfo, StreamPackager
from ..storage.base import MediaStorage
from .ladder import Rendition, select_ladder

if TYPE_CHECKING:
    from ..worker.resume import ResumeState

log = logging.getLogger(__name__)

AUDIO_RATE = 48000
AAC_FRAME = 1024
_AUDIO_TB = Fraction(1, AUDIO_RATE)
# A source frame this close before a keyframe time is the keyframe (timestamps carry jitter). Output
# slots are counted from the same shifted time, so the frames before it never take the keyframe's slot.
_KEY_SLACK = 0.005


class PipelineObserver:
    """Hooks for other media features. Override what you need; every method runs on the worker thread."""

    def on_segment(self, info: SegmentInfo) -> None:
        """A segment of one rendition is complete (its bytes are in `info.data` and in storage at `info.key`)."""

    def on_keyframe(self, frame: av.VideoFrame, at_seconds: float) -> None:
        """The source frame that every rendition encodes as a keyframe (one per segment)."""

    def on_master(self, stream_id: str) -> None:
        """The master playlist exists (all renditions have their first part)."""

    def on_closed(self, stream_id: str) -> None:
        """The pipeline finished: playlists carry EXT-X-ENDLIST."""


class ObserverGroup(PipelineObserver):
    """Several observers as one; a failing observer is logged and never stops the others or the pipeline."""

    def __init__(self, observers: list[PipelineObserver]) -> None:
        self.observers = observers

    def _each(self, name: str, *args: Any) -> None:
        for observer in self.observers:
            try:
                getattr(observer, name)(*args)
            except Exception:
                log.exception("pipeline observer %s.%s failed", type(observer).__name__, name)

    def on_segment(self, info: SegmentInfo) -> None:
        self._each("on_segment", info)

    def on_keyframe(self, frame: av.VideoFrame, at_seconds: float) -> None:
        self._each("on_keyframe", frame, at_seconds)

    def on_master(self, stream_id: str) -> None:
        self._each("on_master", stream_id)

    def on_closed(self, stream_id: str) -> None:
        self._each("on_closed", stream_id)


@dataclass
class PipelineStats:
    """Counters the metrics loop samples (read from any thread; values are plain numbers)."""

    frames_in: int = 0
    frames_encoded: int = 0
    frames_dropped: int = 0
    audio_frames_in: int = 0
    source_width: int = 0
    source_height: int = 0
    media_seconds: float = 0.0
    busy_seconds: float = 0.0
    # Encoded media seconds per second of worker time (>1 keeps real time); a moving average.
    speed: float = 0.0
    renditions: list[str] = field(default_factory=list)
    trimmed: list[str] = field(default_factory=list)
    # The ladder follows the source's steady size; decided once (see StreamPipeline).
    ladder_decided: bool = False


class _Sink:
    """The muxer's output file: collects bytes for the box splitter."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def write(self, data: bytes) -> int:
        self.chunks.append(bytes(data))
        return len(data)

    def take(self) -> list[bytes]:
        chunks, self.chunks = self.chunks, []
        return chunks


def encoder_options(encoder: str, rendition: Rendition) -> dict[str, str]:
    # The pipeline forces every keyframe (by time, on the same source frame in every rendition). The
    # encoder's own GOP counts frames, and repeated or decimated frames make that count drift from the
    # clock: a natural keyframe at exactly `gop` frames would land one frame before a forced one and
    # leave a one-frame segment. Its own keyframes are a fallback only, well past the forced ones.
    gop = str(rendition.gop * 3 // 2)
    common = {
        "maxrate": f"{int(rendition.video_kbps * 1.2)}k",
        "bufsize": f"{rendition.video_kbps * 2}k",
        "forced-idr": "1",
        "g": gop,
    }
    if encoder == "libx264":
        return common | {
            "preset": "veryfast",
            "tune": "zerolatency",
            "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0",
        }
    if encoder.endswith("_nvenc"):
        return common | {"preset": "p2", "tune": "ll", "zerolatency": "1", "no-scenecut": "1"}
    return common


class _RenditionEncoder:
    """Scaler, H.264 + AAC encoders and the fMP4 muxer of one rendition."""

    MAX_FILL_SECONDS = 2

    def __init__(self, rendition: Rendition, packager: RenditionPackager, encoder: str, part_seconds: float,
                 origin: float = 0.0) -> None:
        self.rendition = rendition
        # Pipeline time of this muxer's zero: each muxer's timeline starts at 0 (as the AAC priming
        # alignment assumes); the packager adds the origin back.
        self.origin = origin
        self.packager = packager
        self.sink = _Sink()
        self.splitter = BoxSplitter()
        self.config = packager.owner.config
        # A fragment (a CMAF chunk) closes before the first packet at or past frag_duration: just under
        # a whole number of frames that divides the part, so the packager's parts of part_seconds are
        # whole chunks (none over PART-TARGET), and a player streaming the open part gets a chunk every
        # couple of frames. flush_packets hands each chunk over the moment the muxer writes it.
        frames = self.config.chunk_frames(rendition.fps)
        frag = int((frames / rendition.fps - 0.001) * 1_000_000)
        self.container: Any = av.open(
            self.sink, mode="w", format="mp4",
            options={
                "movflags": "empty_moov+default_base_moof+frag_keyframe+skip_trailer",
                "frag_duration": str(max(frag, 10_000)),
                "max_interleave_delta": "1000000",
                "flush_packets": "1",
            },
        )
        self.video: Any = cast(Any, self.container.add_stream(encoder, rate=rendition.fps))
        self.video.width = rendition.width
        self.video.height = rendition.height
        self.video.pix_fmt = "yuv420p"
        self.video.bit_rate = rendition.video_kbps * 1000
        self.video.codec_context.options = encoder_options(encoder, rendition)
        self.audio: Any = self.container.add_stream("aac", rate=AUDIO_RATE, layout="stereo")
        self.audio.bit_rate = rendition.audio_kbps * 1000
        self.time_base = Fraction(1, rendition.fps)
        self.last_pts = -1
        self.last_scaled: av.VideoFrame | None = None
        # Never `frame.reformat`: it keeps its scaler on the frame, which the WHEP relay and the
        # thumbnailer read on their own threads; two threads in one scaler crash the process.
        self.scaler = VideoReformatter()
        self.filled = 0
        self.init: list[bytes] = []
        self.pending_moof: bytes | None = None
        self.closed = False
        self.discarded = False
        # Real-time factor of this rendition alone (decayed sums of media seconds and encoding seconds).
        self.spent = 0.0
        self.speed_media = 0.0
        self.speed_busy = 0.0

    def encode_video(self, frame: av.VideoFrame, at: float, keyframe: bool) -> bool:
        # floor of the time shifted by the keyframe slack: a frame just before a keyframe time stays in
        # the slot before the keyframe's (rounding could give it the keyframe's slot, pushing the keyframe
        # one slot late and leaving a one-frame part in front of it).
        pts = math.floor((at - self.origin + _KEY_SLACK) * self.rendition.fps + 1e-6)
        if pts <= self.last_pts:
            if not keyframe:
                return False  # frame-rate decimation: this output slot is already filled
            pts = self.last_pts + 1
        if self.last_scaled is not None and pts > self.last_pts + 1:
            # Frames the source did not deliver (network jitter, a busy publisher): repeat the last one,
            # as a constant-frame-rate output does, so no sample (and no part) outlasts its slot.
            # Longer stalls are left as a gap.
            missing = min(pts - self.last_pts - 1, self.MAX_FILL_SECONDS * self.rendition.fps)
            for slot in range(pts - missing, pts):
                self.last_scaled.pts = slot
                self.last_scaled.pict_type = av.video.frame.PictureType.NONE
                self._mux_video(self.video.encode(self.last_scaled))
            self.filled += missing
        self.last_pts = pts
        scaled = self.scaler.reformat(frame, width=self.rendition.width, height=self.rendition.height,
                                      format="yuv420p")
        self.last_scaled = scaled
        scaled.pts = pts
        scaled.time_base = self.time_base
        scaled.pict_type = av.video.frame.PictureType.I if keyframe else av.video.frame.PictureType.NONE
        self._mux_video(self.video.encode(scaled))
        self._drain()
        return True

    def _mux_video(self, packets: list[Any]) -> None:
        for packet in packets:
            # Encoders leave the duration at 0 and the muxer then guesses the last sample's length when
            # the stream closes; every frame lasts exactly one output slot, so say so.
            if packet.time_base:
                packet.duration = max(1, round(1 / (self.rendition.fps * packet.time_base)))
            self.container.mux(packet)

    def encode_audio(self, frame: av.AudioFrame) -> None:
        for packet in self.audio.encode(frame):
            self.container.mux(packet)
        self._drain()

    def discard(self) -> None:
        """Stop without handing anything more to the packager (the ladder is being rebuilt)."""
        self.closed = True
        self.discarded = True
        try:
            self.container.close()
        except Exception:
            log.debug("discarding the %s muxer failed", self.rendition.name, exc_info=True)
        self.sink.take()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._drain()
        try:
            self._mux_video(self.video.encode(None))
            for packet in self.audio.encode(None):
                self.container.mux(packet)
            self.container.close()
        except Exception:
            log.exception("closing the %s muxer failed", self.rendition.name)
        self._drain()
        # The open part ends here (dropped when it is too short for players, see flush_part).
        self.packager.flush_part()

    def _drain(self) -> None:
        for chunk in self.sink.take():
            for kind, data in self.splitter.feed(chunk):
                self._box(kind, data)

    def _box(self, kind: bytes, data: bytes) -> None:
        if self.discarded:
            return
        if kind in (b"ftyp", b"moov"):
            self.init.append(data)
            if kind == b"moov":
                init = b"".join(self.init)
                self.packager.set_init(init, avc_codec_string(init))
        elif kind == b"moof":
            self.pending_moof = data
        elif kind == b"mdat" and self.pending_moof is not None:
            moof, self.pending_moof = self.pending_moof, None
            info = parse_moof(moof, 1)
            if info is None:
                return  # an audio-only fragment (the end of the stream): nothing a player needs
            self.packager.add_chunk(moof + data, info, self.video.time_base.denominator, self.origin)


class _Clock:
    """Maps each kind's frame timestamps onto one pipeline clock anchored at arrival times."""

    # A timestamp this far from the previous one without a discontinuity() means the source reset
    # its clock (an RTMP encoder restart, a 32-bit wrap): re-anchor at the arrival time.
    MAX_JUMP = 3.0

    def __init__(self) -> None:
        self.t0: float | None = None
        self.offsets: dict[str, float | None] = {"video": None, "audio": None}
        self.last: dict[str, float] = {}

    def reset(self) -> None:
        self.offsets = {"video": None, "audio": None}
        self.last = {}

    def time(self, kind: str, pts: int | None, time_base: Fraction | None, arrival: float) -> float:
        if self.t0 is None:
            self.t0 = arrival
        now = arrival - self.t0
        if pts is None or time_base is None:
            return now
        ts = float(pts * time_base)
        offset = self.offsets[kind]
        last = self.last.get(kind)
        if offset is None or (last is not None and not -0.5 < ts - last < self.MAX_JUMP):
            offset = self.offsets[kind] = now - ts
        self.last[kind] = ts
        return ts + offset


class StreamPipeline:
    """Transcode and package one live stream (see the module docstring for the contract)."""

    def __init__(
        self,
        stream_id: str,
        storage: MediaStorage,
        *,
        max_resolution: str = "1080p",
        encoder: str = "libx264",
        observer: PipelineObserver | None = None,
        config: PackagingConfig | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
        keep_segments: bool = False,
        max_backlog_seconds: float = 1.5,
        trim_after_seconds: float = 4.0,
        min_speed: float = 1.0,
        resume: dict[str, ResumeState] | None = None,
        steady_seconds: float = 2.0,
        decide_within_seconds: float = 8.0,
        trim_warmup_seconds: float = 5.0,
        trim_hysteresis: float = 0.15,
    ) -> None:
        self.stream_id = stream_id
        self.max_resolution = max_resolution
        self.encoder = encoder
        self.observer = observer or PipelineObserver()
        self.config = config or PackagingConfig()
        if loop is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                loop = None
        self.packager = StreamPackager(stream_id, storage, self.config, loop=loop, keep_segments=keep_segments,
                                       resume=resume)
        self.packager.hold_master = True
        self.packager.segment_listeners.append(self._segment)
        self.packager.master_listeners.append(lambda: self.observer.on_master(stream_id))
        self.stats = PipelineStats()
        # Taps on the decoded source as it is pushed (WHEP relays it without waiting for the ladder):
        # called on the pusher's thread, they must return at once and must not modify the frame.
        self.frame_taps: list[Callable[[av.VideoFrame], None]] = []
        # The same for the audio as pushed (the program's mix when guests are on): WHEP encodes it to Opus.
        self.audio_taps: list[Callable[[av.AudioFrame], None]] = []
        self.max_backlog_seconds = max_backlog_seconds
        self.trim_after_seconds = trim_after_seconds
        # Encoding slower than this (media seconds per worker second) for trim_after_seconds drops the
        # top rendition; above 1.0 leaves headroom for the rest of the machine.
        self.min_speed = min_speed
        # The ladder follows the source's steady size, not its first frame (a WebRTC sender starts small
        # and ramps up): while undecided, a source that grows rebuilds the ladder (nobody plays yet: the
        # master waits); it is decided once the source reaches max_resolution, keeps one size for
        # steady_seconds, or decide_within_seconds after the first frame. Later size changes are scaled
        # into the fixed rungs.
        self.steady_seconds = steady_seconds
        self.decide_within_seconds = decide_within_seconds
        # Trimming needs a sustained deficit past the warm-up (encoders start slow): speed under
        # min_speed for trim_after_seconds, the clock reset only once speed is back above
        # min_speed x (1 + trim_hysteresis), and no trim within trim_warmup_seconds of the ladder's start.
        self.trim_warmup_seconds = trim_warmup_seconds
        self.trim_hysteresis = trim_hysteresis
        self._decided = False
        self._first_at = 0.0
        self._source_size = (0, 0)
        self._source_since = 0.0
        self._ladder_since = 0.0
        self._queue: queue.Queue[tuple[str, Any, float] | None] = queue.Queue()
        self._encoders: list[_RenditionEncoder] = []
        self._clock = _Clock()
        self._next_key: float | None = None
        self._origin = 0.0  # pipeline time of the current encoders' zero
        self._last_video: float = -1.0
        self._new_epoch = True
        self._audio_fifo: av.AudioFifo | None = None
        self._resampler: av.AudioResampler | None = None
        self._audio_samples = 0  # samples written into the FIFO (the audio timeline)
        self._audio_encoded = 0
        self._audio_origin = 0
        self._video_backlog = 0
        self._last_audio_arrival: float | None = None
        self._dropped_at = -math.inf
        self._slow_since: float | None = None
        self._speed_media = 0.0
        self._speed_busy = 0.0
        self._speed_exported_at = -math.inf
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=f"pipeline-{stream_id[:8]}", daemon=True)
        self._thread.start()

    # -- producer side (any thread, never blocks) ---------------------------------------------

    def push_video(self, frame: av.VideoFrame) -> None:
        if self._closed:
            return
        self._video_backlog += 1
        self._queue.put(("video", frame, time.monotonic()))
        for tap in self.frame_taps:
            try:
                tap(frame)
            except Exception:
                log.exception("pipeline %s: a frame tap failed", self.stream_id)

    def push_audio(self, frame: av.AudioFrame) -> None:
        if self._closed:
            return
        self._queue.put(("audio", frame, time.monotonic()))
        for tap in self.audio_taps:
            try:
                tap(frame)
            except Exception:
                log.exception("pipeline %s: an audio tap failed", self.stream_id)

    def discontinuity(self) -> None:
        if not self._closed:
            self._queue.put(("discontinuity", None, time.monotonic()))

    def retime(self) -> None:
        """The frames that follow carry another clock without a gap in the media (a guest compositor
        takes over the host's feed): anchor each kind afresh at its next arrival, with no discontinuity."""
        if not self._closed:
            self._queue.put(("retime", None, time.monotonic()))

    def close(self, timeout: float | None = 30) -> None:
        """Flush everything, end the playlists and wait for the worker (blocking)."""
        if not self._closed:
            self._closed = True
            self._queue.put(None)
        self._thread.join(timeout)

    async def aclose(self) -> None:
        await asyncio.to_thread(self.close)

    @property
    def renditions(self) -> list[Rendition]:
        return [e.rendition for e in self._encoders]

    @property
    def backlog(self) -> int:
        """Video frames queued and not yet encoded (feeders of recorded media throttle on it)."""
        return self._video_backlog

    @property
    def master_ready(self) -> bool:
        return self.packager.master_written

    # -- worker ---------------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                break
            kind, payload, arrival = item
            started = time.perf_counter()
            try:
                if kind == "video":
                    self._video_backlog -= 1
                    self._video(payload, arrival)
                elif kind == "audio":
                    self._audio(payload, arrival)
                elif kind == "discontinuity":
                    self._clock.reset()
                    self._new_epoch = True
                elif kind == "retime":
                    self._clock.reset()
            except Exception:
                # One bad frame must not end the stream.
                log.exception("pipeline %s failed on a %s frame", self.stream_id, kind)
            self.stats.busy_seconds += time.perf_counter() - started
        self._finish()

    def _finish(self) -> None:
        try:
            self._flush_audio(final=True)
        except Exception:
            log.exception("pipeline %s: flushing audio failed", self.stream_id)
        for encoder in self._encoders:
            encoder.close()
            self._unexport(encoder)
            encoder.packager.finish()
        try:
            self.observer.on_closed(self.stream_id)
        except Exception:
            log.exception("observer on_closed failed")

    def _start(self, frame: av.VideoFrame, at: float) -> None:
        ladder = select_ladder(frame.width, frame.height, self.max_resolution)
        for rendition in ladder:
            packager = self.packager.add_rendition(rendition)
            self._encoders.append(_RenditionEncoder(rendition, packager, self.encoder, self.config.part_seconds,
                                                    origin=at))
        self.stats.renditions = [r.name for r in ladder]
        self._ladder_since = at
        log.info("stream %s: %dx%d source, ladder %s", self.stream_id, frame.width, frame.height,
                 ", ".join(self.stats.renditions))

    def _follow_source(self, frame: av.VideoFrame, at: float) -> bool:
        """Before the ladder is decided: True when the source grew past the ladder (rebuild it now)."""
        size = (frame.width, frame.height)
        if size != self._source_size:
            self._source_size, self._source_since = size, at
        if self._decided:
            return False
        wanted = select_ladder(frame.width, frame.height, self.max_resolution)
        grew = len(wanted) > len(self._encoders) or wanted[0].height > self._encoders[0].rendition.height
        if grew:
            return True
        top = select_ladder(10_000, 10_000, self.max_resolution)[0].height
        if (wanted[0].height >= top or at - self._source_since >= self.steady_seconds
                or at - self._first_at >= self.decide_within_seconds):
            self._decided = True
            self.stats.ladder_decided = True
            log.info("stream %s: ladder decided on a steady %dx%d source: %s", self.stream_id, *size,
                     ", ".join(self.stats.renditions))
            self.packager.release_master()
        return False

    def _rebuild(self, frame: av.VideoFrame, at: float) -> None:
        """The source grew before anyone played: the ladder starts again at this frame for its new size."""
        log.info("stream %s: source grew to %dx%d before the ladder was decided; rebuilding it", self.stream_id,
                 frame.width, frame.height)
        for encoder in self._encoders:
            encoder.discard()
            self._unexport(encoder)
        self._encoders = []
        self.packager.reset()
        self._origin = at
        self._start(frame, at)
        self._audio_fifo = None
        self._resampler = None
        self._audio_samples = self._audio_encoded = round(at * AUDIO_RATE)
        self._audio_origin = self._audio_encoded

    def _video(self, frame: av.VideoFrame, arrival: float) -> None:
        self.stats.frames_in += 1
        self.stats.source_width, self.stats.source_height = frame.width, frame.height
        fps = self._encoders[0].rendition.fps if self._encoders else 30
        if self._video_backlog > self.max_backlog_seconds * fps and not self._new_epoch:
            # Behind real time: drop rather than let latency grow without bound.
            self.stats.frames_dropped += 1
            self._dropped_at = time.monotonic()
            return
        self._anchor(arrival)
        at = self._clock.time("video", frame.pts, frame.time_base, arrival)
        if at <= self._last_video:
            return
        if not self._encoders:
            self._first_at = self._source_since = at
            self._source_size = (frame.width, frame.height)
            self._start(frame, self._origin)
        if self._follow_source(frame, at):
            self._rebuild(frame, at)
            self._new_epoch = False
            self._next_key = None
        if self._next_key is not None and at - self._last_video > _RenditionEncoder.MAX_FILL_SECONDS:
            # The source stalled longer than repeating its last frame covers: a part spanning the gap
            # would outlast PART-TARGET (players reject the playlist), so the gap becomes a discontinuity.
            log.warning("%s: source stalled %.1f s; marking a discontinuity", self.stream_id, at - self._last_video)
            self._new_epoch = True
        keyframe = False
        if self._new_epoch or self._next_key is None:
            if self._next_key is not None:
                self._restart_encoders(at)
                self._origin = at
            self._new_epoch = False
            keyframe = True
            self._next_key = self._key_after(at)
        elif at >= self._next_key - _KEY_SLACK - 1e-6:
            keyframe = True
            while self._next_key <= at + _KEY_SLACK:
                self._next_key = self._key_after(self._next_key)
        self._last_video = at
        # Silence fills the audio the source did not send. With live audio it stays 0.25 s behind the
        # video (real audio arriving a little late is kept); without (a video-only source), it reaches
        # the video's time at once: the muxer interleaves, and would hold every video chunk back until
        # audio caught up (max_interleave_delta, 1 s).
        audio_live = self._last_audio_arrival is not None and arrival - self._last_audio_arrival < 1.0
        self._ensure_audio_until(at - 0.25 if audio_live else at)
        work_started = time.perf_counter()
        for encoder in self._encoders:
            encoder_started = time.perf_counter()
            if encoder.encode_video(frame, at, keyframe):
                self.stats.frames_encoded += 1
            encoder.spent = time.perf_counter() - encoder_started
        if keyframe:
            try:
                self.observer.on_keyframe(frame, at)
            except Exception:
                log.exception("observer on_keyframe failed")
        self._measure(frame, at, time.perf_counter() - work_started)

    def _anchor(self, arrival: float) -> None:
        """Pipeline time 0 is the first frame's arrival: PROGRAM-DATE-TIME counts from that wall-clock
        moment (not from when the pipeline was made, which can be a WHIP handshake earlier)."""
        if self._clock.t0 is None and not self.packager.resume_states:
            self.packager.epoch = datetime.now(UTC) - timedelta(seconds=time.monotonic() - arrival)

    def _unexport(self, encoder: _RenditionEncoder) -> None:
        with contextlib.suppress(KeyError):
            ENCODER_SPEED.remove(self.stream_id, encoder.rendition.name)

    def _key_after(self, at: float) -> float:
        """The keyframe time one segment after `at`, on a frame slot of every rendition's frame rate.

        Off the slots (the first frame arrives at any time), a rendition's keyframe could share a slot
        with the frame before it and be pushed one slot late.
        """
        grid = 1 / math.gcd(*(e.rendition.fps for e in self._encoders)) if self._encoders else 1 / 30
        steps = round((at + self.config.segment_seconds - self._origin) / grid)
        return self._origin + steps * grid

    def _restart_encoders(self, at: float) -> None:
        """After a reconnect: close each muxer (its last part must not span the gap) and start new ones.

        The new muxers write a new init segment; the playlists get EXT-X-DISCONTINUITY and a new EXT-X-MAP.
        Audio skips the gap instead of filling it with silence.
        """
        self._flush_audio(final=True)
        restarted = []
        for encoder in self._encoders:
            encoder.close()
            encoder.packager.mark_discontinuity(at - 1e-3)
            restarted.append(_RenditionEncoder(encoder.rendition, encoder.packager, self.encoder,
                                               self.config.part_seconds, origin=at))
        self._encoders = restarted
        self._audio_fifo = None
        self._resampler = None
        self._audio_samples = self._audio_encoded = round(at * AUDIO_RATE)
        self._audio_origin = self._audio_encoded

    def _measure(self, frame: av.VideoFrame, at: float, spent: float) -> None:
        interval = max(at - self.stats.media_seconds, 0.0) if self.stats.media_seconds else 1 / 30
        self.stats.media_seconds = at
        # Decayed sums over roughly the last second of frames: a frame every rendition skips (frame-rate
        # decimation) costs nothing and must not read as infinite speed.
        self._speed_media = 0.97 * self._speed_media + interval
        self._speed_busy = 0.97 * self._speed_busy + spent
        self.stats.speed = self._speed_media / max(self._speed_busy, 1e-6)
        now = time.monotonic()
        for encoder in self._encoders:
            encoder.speed_media = 0.97 * encoder.speed_media + interval
            encoder.speed_busy = 0.97 * encoder.speed_busy + encoder.spent
        if now - self._speed_exported_at >= 1.0:
            self._speed_exported_at = now
            for encoder in self._encoders:
                speed = encoder.speed_media / max(encoder.speed_busy, 1e-6)
                ENCODER_SPEED.labels(self.stream_id, encoder.rendition.name).set(round(speed, 3))
        warm = self._decided and at - self._ladder_since >= self.trim_warmup_seconds
        # A deficit: encoding slower than real time, or frames dropped for the backlog within the last
        # second (the thread starved of CPU: the encode-time speed alone does not see that).
        dropping = now - self._dropped_at < 1.0
        if warm and (self.stats.speed < self.min_speed or dropping) and len(self._encoders) > 1:
            if self._slow_since is None:
                self._slow_since = now
            elif now - self._slow_since > self.trim_after_seconds:
                self._trim()
                self._slow_since = None
                self._ladder_since = at  # the smaller ladder warms up again before it may be judged
        elif not warm or (self.stats.speed >= self.min_speed * (1 + self.trim_hysteresis) and not dropping):
            self._slow_since = None

    def _trim(self) -> None:
        """Drop the top rendition: the machine cannot encode the whole ladder in real time."""
        encoder = self._encoders.pop(0)
        self.stats.trimmed.append(encoder.rendition.name)
        self.stats.renditions = [e.rendition.name for e in self._encoders]
        log.warning("stream %s: encoding at %.2fx real time; ladder trimmed, dropped %s", self.stream_id,
                    self.stats.speed, encoder.rendition.name)
        encoder.close()
        self._unexport(encoder)
        encoder.packager.remove()
        if self.packager.master_written:
            self.packager.write_master()
        self.stats.speed = self._speed_media = self._speed_busy = 0.0

    # -- audio ------------------------------------------------------------------------------

    def _fifo(self) -> av.AudioFifo:
        if self._audio_fifo is None:
            self._audio_fifo = av.AudioFifo()
        return self._audio_fifo

    def _write_silence(self, samples: int) -> None:
        if samples <= 0:
            return
        silence = av.AudioFrame(format="fltp", layout="stereo", samples=samples)
        for plane in silence.planes:
            plane.update(bytes(plane.buffer_size))
        silence.sample_rate = AUDIO_RATE
        silence.pts = None
        self._fifo().write(silence)
        self._audio_samples += samples

    def _audio(self, frame: av.AudioFrame, arrival: float) -> None:
        self.stats.audio_frames_in += 1
        self._last_audio_arrival = arrival
        if self._new_epoch and not self._encoders:
            pass  # audio before the first video frame still anchors the clock below
        self._anchor(arrival)
        at = self._clock.time("audio", frame.pts, frame.time_base, arrival)
        if self._resampler is None:
            self._resampler = av.AudioResampler(format="fltp", layout="stereo", rate=AUDIO_RATE)
        end = self._audio_samples / AUDIO_RATE
        if at < end - 0.25:
            return  # silence already covers this moment
        if at > end + 0.06:
            self._write_silence(int((at - end) * AUDIO_RATE))
        frame.pts = None
        try:
            converted = self._resampler.resample(frame)
        except ValueError:
            # The source changed its audio format (a reconnect): start a new resampler.
            self._resampler = av.AudioResampler(format="fltp", layout="stereo", rate=AUDIO_RATE)
            converted = self._resampler.resample(frame)
        for out in converted:
            out.pts = None
            self._fifo().write(out)
            self._audio_samples += out.samples
        self._flush_audio()

    def _ensure_audio_until(self, at: float) -> None:
        end = self._audio_samples / AUDIO_RATE
        if at > end:
            self._write_silence(int((at - end) * AUDIO_RATE))
        self._flush_audio()

    def _flush_audio(self, final: bool = False) -> None:
        if not self._encoders or self._audio_fifo is None:
            return
        while self._audio_fifo.samples >= AAC_FRAME or (final and self._audio_fifo.samples):
            chunk = self._audio_fifo.read(min(AAC_FRAME, self._audio_fifo.samples))
            if chunk is None:
                break
            # Offset by the AAC encoder's priming delay so its first packet lands at 0, in line with
            # the video; otherwise the muxer shifts the first video sample and the first part overruns.
            chunk.pts = self._audio_encoded - self._audio_origin + AAC_FRAME
            chunk.time_base = _AUDIO_TB
            chunk.sample_rate = AUDIO_RATE
            self._audio_encoded += chunk.samples
            for encoder in self._encoders:
                encoder.encode_audio(chunk)

    def _segment(self, info: SegmentInfo) -> None:
        self.observer.on_segment(info)
