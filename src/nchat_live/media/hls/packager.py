"""CMAF packaging and the (LL-)HLS playlists we write ourselves.

The muxer (PyAV's mp4 with `frag_keyframe` + `frag_duration`) emits one moof+mdat per part; this
module groups parts into ~2 s segments (a segment starts at every keyframe, which the pipeline forces
on the same frames in every rendition), keeps a live window, writes files through `MediaStorage` and
renders the master and media playlists. Worker threads mutate the state under a lock; the event
loop renders playlists and waits for blocking reloads on per-rendition events, so waiting viewers
cost no polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from ...observability import SEGMENT_LATENCY
from ..storage.base import MediaStorage
from ..transcode.ladder import Rendition
from .fmp4 import FragmentInfo
from .playlists import LIVE_VERSION, render_live, render_master, stream_inf

if TYPE_CHECKING:
    from ..worker.resume import ResumeState

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PackagingConfig:
    """Segment, part and chunk lengths and the hold-backs they imply.

    Parts of 1/3 s are whole frames at both ladder frame rates (10 at 30 fps, 8 at 24 fps) and six
    make a 2 s segment, so every part lasts exactly `part_seconds` except a segment's last before a
    reconnect. PART-HOLD-BACK is the spec's 3 x PART-TARGET (1.002 s): a player sits about that far
    behind the newest part, plus the capture and encode time, about 1.3 s behind glass. Segments stay
    at 2 s: latency comes from the parts, and a 1 s GOP would cost 10-15 % more bits at the same
    quality for nothing a low-latency player needs (older players, which load segments, hold back
    HOLD-BACK = 3 target durations either way).

    The muxer writes a CMAF chunk (moof+mdat) every `chunk_seconds` or so (a whole number of frames
    that divides the part), so the part a preload hint names is streamed to players while it is
    being written.
    """

    segment_seconds: float = 2.0
    part_seconds: float = 1 / 3
    chunk_seconds: float = 0.1
    # hls.js stalls on shorter parts; a closing muxer's last part under this is not published.
    min_part_seconds: float = 0.2
    window_segments: int = 4
    # Segments that have left the window stay on disk this many more segments (players mid-download).
    keep_extra_segments: int = 2
    # The master's BANDWIDTH and AVERAGE-BANDWIDTH come from the ladder's rates until every rendition
    # has this many complete segments, then from their measured sizes.
    measure_segments: int = 3
    # The master playlist appears once every rendition has this many complete segments: the first
    # playlist a player sees then holds well over PART-HOLD-BACK of media (no levelEmptyError; with
    # one segment, hls.js joining at once stalled in its first second and then kept 1 s more latency).
    start_segments: int = 2

    @property
    def part_target(self) -> float:
        """The declared PART-TARGET: the part length rounded up to the millisecond.

        Parts are cut from whole chunks and never run past it (see `RenditionPackager.add_chunk`).
        """
        return math.ceil(round(self.part_seconds * 1000, 6)) / 1000

    @property
    def target_duration(self) -> int:
        return max(1, math.ceil(self.segment_seconds))

    @property
    def part_hold_back(self) -> float:
        return round(3 * self.part_target, 3)

    @property
    def hold_back(self) -> float:
        return float(3 * self.target_duration)

    def chunk_frames(self, fps: int) -> int:
        """Frames per CMAF chunk at `fps`: the largest divisor of a part's frames within chunk_seconds."""
        part = max(1, round(self.part_seconds * fps))
        limit = max(1, math.floor(self.chunk_seconds * fps + 1e-6))
        return max(d for d in range(1, part + 1) if part % d == 0 and d <= limit)


@dataclass(frozen=True)
class SegmentInfo:
    """A finished segment, handed to observers (recording) from the worker thread."""

    stream_id: str
    rendition: str
    msn: int
    key: str
    init_key: str
    duration: float
    start: float
    discontinuity: bool
    program_date_time: datetime
    data: bytes


@dataclass
class Part:
    index: int
    duration: float
    independent: bool
    uri: str
    # Its bytes while its segment is in the window: served from memory by the process encoding it.
    data: bytes = b""


@dataclass
class OpenPart:
    """The part being written: chunks arrive from the muxer; players streaming it read `data` as it grows."""

    segment: Segment
    index: int
    independent: bool
    uri: str
    data: bytearray = field(default_factory=bytearray)
    duration: float = 0.0
    # Where its bytes start in the segment's data (a dropped short last part is cut off there).
    offset: int = 0


@dataclass
class Segment:
    msn: int
    start: float
    program_date_time: datetime
    discontinuity: bool
    init_uri: str = "init.mp4"
    parts: list[Part] = field(default_factory=list)
    data: bytearray = field(default_factory=bytearray)
    duration: float = 0.0
    complete: bool = False

    @property
    def uri(self) -> str:
        return f"seg{self.msn}.m4s"


class PlaylistRequestError(Exception):
    """A blocking-reload request the spec says to refuse (400)."""


class RenditionPackager:
    """Segments, parts and the media playlist of one rendition. Mutated by the pipeline's worker thread."""

    def __init__(self, owner: StreamPackager, rendition: Rendition) -> None:
        self.owner = owner
        self.rendition = rendition
        self.name = rendition.name
        self.codecs: str | None = None
        self.has_init = False
        self.init_uri = "init.mp4"
        self.segments: list[Segment] = []
        self.next_msn = 0
        self.discontinuity_sequence = 0
        self.ended = False
        self.removed = False  # trimmed from the ladder
        self.open_part: OpenPart | None = None
        self._pending_discontinuity: float | None = None
        self._retired: list[Segment] = []
        # Measured on complete segments: (bytes, seconds) of the newest few, totals and the peak.
        self._recent: list[tuple[int, float]] = []
        self.measured_segments = 0
        self._bytes_total = 0
        self._seconds_total = 0.0
        self.peak_bitrate = 0
        # Continuing another worker's output: every init segment gets a new name (the old window
        # still refers to the old one).
        self._fresh_init_names = False

    def resume(self, state: ResumeState) -> None:
        """Continue a playlist another worker left: its window stays, numbering goes on, then a discontinuity."""
        with self.owner.lock:
            for old in state.segments:
                pdt = old.program_date_time or self.owner.epoch
                self.segments.append(Segment(
                    msn=old.msn, start=-1.0, program_date_time=pdt, discontinuity=old.discontinuity,
                    init_uri=old.init_uri, duration=old.duration, complete=True,
                ))
            self.next_msn = max(self.next_msn, state.next_msn)
            self.discontinuity_sequence = state.discontinuity_sequence
            self._pending_discontinuity = float("-inf")
            self._fresh_init_names = True

    @property
    def has_media(self) -> bool:
        with self.owner.lock:
            return bool(self.segments)

    @property
    def complete_segments(self) -> int:
        with self.owner.lock:
            return sum(1 for s in self.segments if s.complete)

    @property
    def prefix(self) -> str:
        return f"{self.owner.stream_id}/{self.name}"

    # -- worker-thread side ---------------------------------------------------------------------

    def set_init(self, data: bytes, codecs: str | None) -> None:
        """A new initialization segment: the first, or a new encoder's after a publisher reconnect."""
        with self.owner.lock:
            fresh = self.has_init or self._fresh_init_names
            uri = f"init{self.next_msn}.mp4" if fresh else "init.mp4"
        self.owner.storage.write(f"{self.prefix}/{uri}", data)
        with self.owner.lock:
            self.codecs = codecs
            self.init_uri = uri
            self.has_init = True

    def mark_discontinuity(self, at_seconds: float) -> None:
        """The next segment starting at or after `at_seconds` follows a publisher reconnect."""
        with self.owner.lock:
            self._pending_discontinuity = at_seconds

    def add_part(self, data: bytes, info: FragmentInfo, timescale: int, origin: float = 0.0) -> None:
        """A whole part at once (one chunk that is the whole part)."""
        self.add_chunk(data, info, timescale, origin, whole=True)

    def add_chunk(self, data: bytes, info: FragmentInfo, timescale: int, origin: float = 0.0, *,
                  whole: bool = False) -> None:
        """One CMAF chunk (moof+mdat) from the muxer: it grows the open part, which closes at `part_seconds`.

        A keyframe starts a new segment (the pipeline forces them on the same frames in every rendition);
        a chunk that would carry the open part past PART-TARGET starts a new part, so no part outlasts it.
        """
        start = origin + info.base_time / timescale
        duration = info.duration / timescale
        config = self.owner.config
        closed: list[Part] = []
        finished: Segment | None = None
        with self.owner.lock:
            current = self.segments[-1] if self.segments and not self.segments[-1].complete else None
            if current is None or (info.starts_with_sync and (current.parts or self.open_part is not None)):
                if self.open_part is not None:
                    closed.append(self._close_part())
                if current is not None:
                    self._complete(current)
                    finished = current
                current = self._open_segment(start, info.starts_with_sync)
            elif self.open_part is not None and self.open_part.duration + duration > config.part_target + 1e-6:
                closed.append(self._close_part())
            part = self.open_part
            if part is None:
                index = len(current.parts)
                part = self.open_part = OpenPart(current, index, info.starts_with_sync, f"seg{current.msn}.{index}.m4s",
                                                 offset=len(current.data))
            part.data += data
            part.duration += duration
            current.data += data
            current.duration += duration
            if whole or part.duration >= config.part_seconds - 1e-3:
                closed.append(self._close_part())
        self._published(closed, finished)

    def _close_part(self) -> Part:
        """Under the lock: the open part becomes a listed part."""
        open_part = self.open_part
        assert open_part is not None
        self.open_part = None
        part = Part(open_part.index, open_part.duration, open_part.independent, open_part.uri, bytes(open_part.data))
        open_part.segment.parts.append(part)
        if part.duration > self.owner.config.part_target + 1e-3:
            log.warning("%s/%s part %s lasts %.3f s > PART-TARGET", self.owner.stream_id, self.name,
                        part.uri, part.duration)
        return part

    def _published(self, parts: list[Part], finished: Segment | None) -> None:
        for part in parts:
            self.owner.storage.write(f"{self.prefix}/{part.uri}", part.data)
        if finished is not None:
            self._publish_segment(finished)
        if parts or finished is not None:
            self._after_change()
        else:
            self.owner.changed(self.name)  # a chunk of the open part: wake the players streaming it

    def flush_part(self) -> None:
        """The muxer closed (the end, or a reconnect): list what is left of the open part.

        The publisher stops at any moment, so that can be a frame or two; hls.js stalls on parts under
        `min_part_seconds` (before a discontinuity and at the end alike), so such a part is dropped,
        unless it is all the stream has.
        """
        closed: list[Part] = []
        with self.owner.lock:
            part = self.open_part
            if part is None:
                return
            segment = part.segment
            alone = not segment.parts and len(self.segments) == 1
            if part.duration >= self.owner.config.min_part_seconds - 1e-6 or alone:
                closed.append(self._close_part())
            else:
                self.open_part = None
                del segment.data[part.offset:]
                segment.duration -= part.duration
                log.info("%s/%s: dropped a %.3f s final part (shorter than %.1f s)", self.owner.stream_id,
                         self.name, part.duration, self.owner.config.min_part_seconds)
                if not segment.parts and segment is self.segments[-1]:
                    self.segments.pop()
                    self.next_msn -= 1
        self._published(closed, None)

    def finish(self) -> None:
        self.flush_part()
        finished: Segment | None = None
        with self.owner.lock:
            if self.segments and not self.segments[-1].complete:
                finished = self.segments[-1]
                self._complete(finished)
            self.ended = True
        if finished is not None:
            self._publish_segment(finished)
        self._after_change()

    def remove(self) -> None:
        """Trimmed from the ladder: gone from the master, and its files from storage.

        Its last segment is still finished (observers such as the recorder get it), but no playlist with
        ENDLIST is written: a process serving this rendition from storage would hand a player on it the
        end of the stream. With the files gone, that player's next reload is a 404, which hls.js (and
        AVPlayer) answer by switching to another variant of the master.
        """
        with self.owner.lock:
            self.removed = True
        self.finish()
        self.owner.storage.delete_prefix(self.prefix)

    def _open_segment(self, start: float, independent: bool) -> Segment:
        discontinuity = False
        if self._pending_discontinuity is not None and start >= self._pending_discontinuity - 1e-3:
            discontinuity = bool(self.segments)
            self._pending_discontinuity = None
        if not independent:
            log.warning("%s/%s segment %d does not start on a keyframe", self.owner.stream_id, self.name, self.next_msn)
        segment = Segment(
            msn=self.next_msn,
            start=start,
            program_date_time=self.owner.epoch + timedelta(seconds=start),
            discontinuity=discontinuity,
            init_uri=self.init_uri,
        )
        self.next_msn += 1
        self.segments.append(segment)
        return segment

    def _complete(self, segment: Segment) -> None:
        segment.complete = True
        self._measure(len(segment.data), segment.duration)
        window = self.owner.config.window_segments
        complete = [s for s in self.segments if s.complete]
        while len(complete) > window:
            old = complete.pop(0)
            self.segments.remove(old)
            if old.discontinuity:
                self.discontinuity_sequence += 1
            self._retired.append(old)

    def _measure(self, size: int, seconds: float) -> None:
        """Count a complete segment into the average and the peak segment bit rate.

        The peak is the HLS spec's: the highest rate of any run of consecutive segments lasting 0.5 to
        1.5 target durations (so a short last segment is measured together with the one before it).
        """
        if seconds <= 0:
            return
        self.measured_segments += 1
        self._bytes_total += size
        self._seconds_total += seconds
        self._recent.append((size, seconds))
        del self._recent[:-8]
        target = self.owner.config.target_duration
        run_bytes, run_seconds = 0, 0.0
        for run_size, run_duration in reversed(self._recent):
            run_bytes += run_size
            run_seconds += run_duration
            if run_seconds >= 0.5 * target:
                if run_seconds <= 1.5 * target:
                    self.peak_bitrate = max(self.peak_bitrate, math.ceil(run_bytes * 8 / run_seconds))
                break

    def _publish_segment(self, segment: Segment) -> None:
        key = f"{self.prefix}/{segment.uri}"
        data = bytes(segment.data)
        self.owner.storage.write(key, data)
        segment.data = bytearray()  # the parts and the segment file hold it now
        info = SegmentInfo(
            stream_id=self.owner.stream_id, rendition=self.name, msn=segment.msn, key=key,
            init_key=f"{self.prefix}/{segment.init_uri}", duration=segment.duration, start=segment.start,
            discontinuity=segment.discontinuity, program_date_time=segment.program_date_time, data=data,
        )
        # From the segment's first frame captured to the segment published.
        SEGMENT_LATENCY.observe(max(0.0, (datetime.now(UTC) - segment.program_date_time).total_seconds()))
        self.owner.segment_finished(info)
        self.owner.measured()
        keep = self.owner.config.keep_extra_segments
        while len(self._retired) > keep:
            old = self._retired.pop(0)
            if not self.owner.keep_segments:
                self.owner.storage.delete(f"{self.prefix}/{old.uri}")
                if old.init_uri != self.init_uri and all(s.init_uri != old.init_uri for s in self.segments):
                    self.owner.storage.delete(f"{self.prefix}/{old.init_uri}")
            for part in old.parts:
                part.data = b""
                self.owner.storage.delete(f"{self.prefix}/{part.uri}")

    def _after_change(self) -> None:
        if not self.removed:
            self.owner.storage.write(f"{self.prefix}/index.m3u8", self.render().encode())
        self.owner.changed(self.name)

    # -- reader side (any thread) ---------------------------------------------------------------

    @property
    def average_bitrate(self) -> int:
        return round(self._bytes_total * 8 / self._seconds_total) if self._seconds_total else 0

    def bandwidth(self) -> tuple[int, int, bool]:
        """(BANDWIDTH, AVERAGE-BANDWIDTH, measured) for the master playlist."""
        with self.owner.lock:
            if self.measured_segments >= self.owner.config.measure_segments and self.peak_bitrate:
                return self.peak_bitrate, self.average_bitrate, True
        return self.rendition.peak_bandwidth, self.rendition.average_bandwidth, False

    def position(self) -> tuple[int, int]:
        """(msn, part index) of the newest part; (-1, -1) before the first."""
        with self.owner.lock:
            if not self.segments:
                return (-1, -1)
            last = self.segments[-1]
            return (last.msn, len(last.parts) - 1)

    def check_request(self, msn: int | None, part: int | None) -> None:
        """Raise PlaylistRequestError for values the spec answers with 400."""
        if part is not None and msn is None:
            raise PlaylistRequestError("_HLS_part requires _HLS_msn")
        if msn is None:
            return
        if msn < 0 or (part is not None and part < 0):
            raise PlaylistRequestError("_HLS_msn and _HLS_part must not be negative")
        newest, _ = self.position()
        if msn > max(newest, 0) + 2:
            raise PlaylistRequestError(f"_HLS_msn={msn} is more than two segments ahead of {max(newest, 0)}")
        per_segment = math.ceil(self.owner.config.segment_seconds / self.owner.config.part_seconds)
        if part is not None and part > 3 * per_segment:
            raise PlaylistRequestError(f"_HLS_part={part} is beyond the advance limit of {3 * per_segment}")

    def satisfies(self, msn: int, part: int | None) -> bool:
        """Whether the playlist now holds segment `msn` (whole), or part `part` of it."""
        with self.owner.lock:
            if self.ended:
                return True
            for segment in reversed(self.segments):
                if segment.msn < msn:
                    break
                if segment.msn > msn and segment.parts:
                    return True
                if segment.msn == msn:
                    if part is None:
                        return segment.complete
                    # Past the last part of a finished segment means the next segment's first part.
                    return len(segment.parts) > part
            return False

    def has_part(self, uri: str) -> bool:
        with self.owner.lock:
            return any(p.uri == uri for s in self.segments for p in s.parts)

    def part_data(self, uri: str) -> bytes | None:
        """The bytes of a listed part in the window (None: not listed, or gone)."""
        with self.owner.lock:
            for segment in reversed(self.segments):
                for part in segment.parts:
                    if part.uri == uri:
                        return part.data or None
            return None

    def is_open(self, uri: str) -> bool:
        with self.owner.lock:
            return self.open_part is not None and self.open_part.uri == uri

    def read_part(self, uri: str, offset: int) -> tuple[bytes, bool]:
        """(bytes of part `uri` from `offset`, whether the part is whole): for streaming the open part."""
        with self.owner.lock:
            if self.open_part is not None and self.open_part.uri == uri:
                return bytes(self.open_part.data[offset:]), False
            data = self.part_data(uri)
            return (data[offset:] if data is not None else b""), True

    def passed(self, msn: int, index: int) -> bool:
        """Whether the packager has moved beyond where part (msn, index) would have been."""
        with self.owner.lock:
            if self.ended:
                return True
            if not self.segments:
                return False
            last = self.segments[-1]
            return last.msn > msn or (last.msn == msn and last.complete)

    def render(self) -> str:
        config = self.owner.config
        with self.owner.lock:
            reports = [
                (other.name, other.segments[-1].msn, max(len(other.segments[-1].parts) - 1, 0))
                for other in self.owner.renditions.values()
                if other is not self and not other.removed and other.segments
            ]
            return render_live(
                self.segments, next_msn=self.next_msn, discontinuity_sequence=self.discontinuity_sequence,
                target=config.target_duration, part_target=config.part_target,
                part_hold_back=config.part_hold_back, hold_back=config.hold_back, ended=self.ended,
                preload_uri="" if self.ended else self._next_part_uri(), reports=reports,
            )

    def _next_part_uri(self) -> str:
        if self.open_part is not None:
            return self.open_part.uri
        if not self.segments or self.segments[-1].complete:
            return f"seg{self.next_msn}.0.m4s"
        current = self.segments[-1]
        # Keyframes come every segment_seconds, so a segment that is nearly full is about to be
        # followed by the next one's first part.
        if current.duration >= self.owner.config.segment_seconds - self.owner.config.part_seconds / 2:
            return f"seg{current.msn + 1}.0.m4s"
        return f"seg{current.msn}.{len(current.parts)}.m4s"


SegmentListener = Callable[[SegmentInfo], None]


def _outdated(now: tuple[int, int, bool], declared: tuple[int, int, bool] | None) -> bool:
    if declared is None:
        return True
    peak, average, measured = now
    return (measured and not declared[2]) or peak > declared[0] or abs(average - declared[1]) > 0.1 * declared[1]


class StreamPackager:
    """All renditions of one stream, the master playlist and the waiters of blocking reloads."""

    def __init__(
        self,
        stream_id: str,
        storage: MediaStorage,
        config: PackagingConfig | None = None,
        *,
        loop: asyncio.AbstractEventLoop | None = None,
        keep_segments: bool = False,
        epoch: datetime | None = None,
        resume: dict[str, ResumeState] | None = None,
    ) -> None:
        self.stream_id = stream_id
        self.storage = storage
        self.config = config or PackagingConfig()
        self.keep_segments = keep_segments
        self.epoch = epoch or datetime.now(UTC)
        self.lock = threading.RLock()
        self.renditions: dict[str, RenditionPackager] = {}
        self.master_written = False
        # The pipeline holds the master back until its ladder is decided (the source's steady size).
        self.hold_master = False
        # What the stored master declares per rendition: (BANDWIDTH, AVERAGE-BANDWIDTH, measured).
        self._declared: dict[str, tuple[int, int, bool]] = {}
        self.segment_listeners: list[SegmentListener] = []
        self.master_listeners: list[Callable[[], None]] = []
        self._loop = loop
        self._events: dict[str, asyncio.Event] = {}
        # Where another worker's output of this stream stopped, per rendition (a takeover).
        self.resume_states = resume or {}

    def add_rendition(self, rendition: Rendition) -> RenditionPackager:
        packager = RenditionPackager(self, rendition)
        state = self.resume_states.get(rendition.name)
        if state is not None:
            packager.resume(state)
        with self.lock:
            self.renditions[rendition.name] = packager
        return packager

    def rendition(self, name: str) -> RenditionPackager | None:
        return self.renditions.get(name)

    @property
    def ended(self) -> bool:
        return bool(self.renditions) and all(r.ended for r in self.renditions.values())

    def segment_finished(self, info: SegmentInfo) -> None:
        for listener in self.segment_listeners:
            try:
                listener(info)
            except Exception:
                log.exception("segment listener failed for %s", info.key)

    def reset(self) -> None:
        """Forget every rendition (the pipeline rebuilds its ladder before any player saw the stream)."""
        assert not self.master_written
        with self.lock:
            self.renditions.clear()

    def release_master(self) -> None:
        """The ladder is decided: the master may be written (once every rendition has a whole segment)."""
        self.hold_master = False
        self._maybe_write_master()

    def changed(self, name: str) -> None:
        """Called by the worker after every update: maybe write the master, wake waiters."""
        self._maybe_write_master()
        if self._loop is not None and not self._loop.is_closed():
            # A closing loop has nobody waiting any more.
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._wake, name)

    def _maybe_write_master(self) -> None:
        if not self.master_written and not self.hold_master:
            with self.lock:
                live = [r for r in self.renditions.values() if not r.removed]
                start = self.config.start_segments
                ready = bool(live) and all(
                    r.has_init and (r.complete_segments >= start or (r.ended and bool(r.segments))) for r in live
                )
            if ready:
                self.write_master()
                for listener in self.master_listeners:
                    try:
                        listener()
                    except Exception:
                        log.exception("master listener failed for %s", self.stream_id)

    def measured(self) -> None:
        """A segment was measured: rewrite the stored master when what it declares no longer holds.

        That is when measurements replace the ladder's rates, when a segment outran the declared peak
        (BANDWIDTH must be at least every segment's rate) or when the average moved by more than 10 %.
        """
        if not self.master_written:
            return
        with self.lock:
            now = {r.name: r.bandwidth() for r in self.renditions.values() if not r.removed}
        if any(_outdated(value, self._declared.get(name)) for name, value in now.items()):
            self.write_master()

    def write_master(self) -> None:
        # Measurements change on the worker thread only, which is the one writing here.
        text = self.render_master()
        with self.lock:
            self._declared = {r.name: r.bandwidth() for r in self.renditions.values() if not r.removed}
        self.storage.write(f"{self.stream_id}/master.m3u8", text.encode())
        self.master_written = True

    def render_master(self) -> str:
        with self.lock:
            live = [r for r in self.renditions.values() if not r.removed]
        variants = []
        for packager in live:
            r = packager.rendition
            bandwidth, average, _ = packager.bandwidth()
            inf = stream_inf(bandwidth=bandwidth, average=average, width=r.width, height=r.height, fps=r.fps,
                             video_codec=packager.codecs)
            variants.append((inf, r.name))
        return render_master(variants, version=LIVE_VERSION)

    # -- event-loop side ------------------------------------------------------------------------

    def _wake(self, name: str) -> None:
        event = self._events.pop(name, None)
        if event is not None:
            event.set()

    def _event(self, name: str) -> asyncio.Event:
        event = self._events.get(name)
        if event is None:
            event = self._events[name] = asyncio.Event()
        return event

    async def wait_until(self, name: str, predicate: Callable[[], bool], seconds: float) -> bool:
        """Wait (without polling) until `predicate()` holds after an update of rendition `name`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while not predicate():
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            event = self._event(name)
            try:
                await asyncio.wait_for(event.wait(), remaining)
            except TimeoutError:
                return predicate()
        return True

    async def wait_for_playlist(self, name: str, msn: int, part: int | None) -> bool:
        """Block until rendition `name` holds (msn, part); False after 3 target durations (answer 503)."""
        packager = self.renditions[name]
        timeout = 3 * self.config.target_duration
        return await self.wait_until(name, lambda: packager.satisfies(msn, part), timeout)
