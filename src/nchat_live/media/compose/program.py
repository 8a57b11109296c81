"""`ProgramCompositor`: a thread that turns keyed sources into one feed at a fixed frame rate.

    program = ProgramCompositor(pipeline, 1280, 720, fps=30)
    program.add_source(HOST); program.add_source(guest_id)
    program.push_video(HOST, frame); program.push_audio(guest_id, frame)   # any thread, never blocks
    program.set_program("side_by_side", focus=None, muted={guest_id}, order=[guest_id])
    program.start(); ...; program.close()

Every tick (1/fps on the monotonic clock) it draws the latest frame of each shown source, mixes
the audio of that tick and pushes both into the output (`StreamPipeline.push_video/push_audio`).
Output timestamps count ticks (video, time base 1/fps) and samples (audio, 1/48000) from the
compositor's start, so they are monotonic and gap-free whatever the sources do; the pipeline
anchors them to their arrival (call `StreamPipeline.retime` before the first one). A late tick
(the machine was busy) skips video frames, never audio samples. A source that stalls keeps its
last frame for `hold_seconds`, then shows the placeholder, as does a source with no video yet.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Protocol

import av

from .audio import RATE, AudioMixer
from .layout import LAYOUTS, Rect, place
from .video import VideoCompositor

log = logging.getLogger(__name__)

HOST = "host"


class ProgramOutput(Protocol):
    def push_video(self, frame: av.VideoFrame) -> None: ...

    def push_audio(self, frame: av.AudioFrame) -> None: ...


@dataclass
class _Source:
    frame: av.VideoFrame | None = None
    at: float = 0.0


@dataclass
class ProgramStats:
    frames: int = 0
    skipped: int = 0
    busy_seconds: float = 0.0
    tiles: list[str] = field(default_factory=list)


class ProgramCompositor:
    """Composes the host and guests into `output` on its own thread (see the module docstring)."""

    def __init__(self, output: ProgramOutput, width: int, height: int, fps: int = 30,
                 hold_seconds: float = 1.0, name: str = "program") -> None:
        self.output = output
        self.width, self.height, self.fps = width, height, fps
        self.hold_seconds = hold_seconds
        self.video = VideoCompositor(width, height)
        self.audio = AudioMixer()
        self.stats = ProgramStats()
        self.layout = "grid"
        self.focus: str | None = None
        self.muted: frozenset[str] = frozenset()
        self._order: list[str] = []
        self._sources: dict[str, _Source] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._time_base = Fraction(1, fps)

    # -- control (any thread) -----------------------------------------------------------------

    def add_source(self, key: str) -> None:
        with self._lock:
            if key not in self._sources:
                self._sources[key] = _Source()
                self._order.append(key)
        self.audio.add(key)

    def remove_source(self, key: str) -> None:
        with self._lock:
            self._sources.pop(key, None)
            if key in self._order:
                self._order.remove(key)
        self.audio.remove(key)

    @property
    def sources(self) -> list[str]:
        with self._lock:
            return list(self._order)

    def set_program(self, layout: str, focus: str | None = None, muted: Collection[str] = (),
                    order: Sequence[str] = ()) -> None:
        """Layout, the source shown in solo (None: the host), muted sources, and the order of guests
        (the host first, then `order`, then any others in the order they joined)."""
        if layout not in LAYOUTS:
            raise ValueError(f"layout '{layout}' is not one of {', '.join(LAYOUTS)}")
        with self._lock:
            self.layout, self.focus, self.muted = layout, focus, frozenset(muted)
            rank = {key: i for i, key in enumerate([HOST, *order])}
            self._order.sort(key=lambda key: rank.get(key, len(rank)))

    def push_video(self, key: str, frame: av.VideoFrame) -> None:
        now = time.monotonic()
        with self._lock:
            source = self._sources.get(key)
            if source is not None:
                source.frame, source.at = frame, now

    def push_audio(self, key: str, frame: av.AudioFrame) -> None:
        self.audio.push(key, frame)

    def start(self) -> None:
        self._thread.start()

    def close(self, timeout: float | None = 10) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    # -- one tick ---------------------------------------------------------------------------------

    def tiles(self, now: float) -> list[tuple[str, Rect, av.VideoFrame | None]]:
        """What the frame at `now` shows: each shown source's cell and picture (None: placeholder)."""
        with self._lock:
            cells = place(self.layout, self._order, self.focus, self.width, self.height)
            shown: list[tuple[str, Rect, av.VideoFrame | None]] = []
            for key, cell in cells:
                source = self._sources[key]
                fresh = source.frame is not None and now - source.at <= self.hold_seconds
                shown.append((key, cell, source.frame if fresh else None))
            return shown

    def render(self, now: float) -> av.VideoFrame:
        tiles = self.tiles(now)
        self.stats.tiles = [key for key, _, _ in tiles]
        return self.video.compose(tiles)

    def _run(self) -> None:
        start = time.monotonic()
        tick = 0
        samples = 0
        while not self._stop.is_set():
            due = start + tick / self.fps
            now = time.monotonic()
            if due > now:
                self._stop.wait(due - now)
                continue
            late = int((now - start) * self.fps) - tick
            if late > self.fps // 4:
                # Behind by more than a quarter second: drop the frames rather than burst them out.
                self.stats.skipped += late
                tick += late
            began = time.perf_counter()
            try:
                frame = self.render(now)
                frame.pts, frame.time_base = tick, self._time_base
                self.output.push_video(frame)
                end = (tick + 1) * RATE // self.fps
                sound = self.audio.mix(end - samples, self.muted)
                sound.pts, sound.time_base = samples, Fraction(1, RATE)
                samples = end
                self.output.push_audio(sound)
                self.stats.frames += 1
            except Exception:
                log.exception("%s: a program frame failed", self._thread.name)
            self.stats.busy_seconds += time.perf_counter() - began
            tick += 1
