"""The program's audio: each source resampled to 48 kHz stereo s16 and summed with clipping.

Sources push decoded frames from any thread (a cheap append); resampling and mixing run on the
compositor's thread. Each source keeps a short buffer: it is heard once PREROLL_SECONDS are buffered
(and again so after running dry), so packets arriving unevenly against the mixer's ticks do not cut
holes into the sound; samples that arrive late are played late (up to MAX_BUFFER_SECONDS, older ones
are dropped so delay cannot grow), and a source with nothing buffered (no audio track, a stall)
contributes silence. A muted source's samples are consumed and not heard.
"""

from __future__ import annotations

import threading
from collections.abc import Collection

import av
import numpy as np
import numpy.typing as npt

RATE = 48000
PREROLL_SECONDS = 0.04
MAX_BUFFER_SECONDS = 0.2
# What a source's buffer is cut back to when it overflows (late bursts are played, long backlogs not).
KEEP_SECONDS = 0.06

Samples = npt.NDArray[np.int16]


class _Source:
    def __init__(self) -> None:
        self.pending: list[av.AudioFrame] = []
        self.resampler: av.AudioResampler | None = None
        self.buffer: Samples = np.zeros((0, 2), dtype=np.int16)
        self.playing = False


class AudioMixer:
    """Mixes the audio of keyed sources into 48 kHz stereo s16."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sources: dict[str, _Source] = {}

    def add(self, key: str) -> None:
        with self._lock:
            self._sources.setdefault(key, _Source())

    def remove(self, key: str) -> None:
        with self._lock:
            self._sources.pop(key, None)

    def push(self, key: str, frame: av.AudioFrame) -> None:
        """Queue a decoded frame of source `key` (ignored for an unknown source). Any thread."""
        with self._lock:
            source = self._sources.get(key)
            if source is not None:
                source.pending.append(frame)

    def mix_samples(self, count: int, muted: Collection[str] = ()) -> Samples:
        """The next `count` samples of the mix, shape (count, 2). Muted sources are consumed, not heard."""
        with self._lock:
            sources = list(self._sources.items())
        total = np.zeros((count, 2), dtype=np.int32)
        for key, source in sources:
            self._take_pending(source)
            if not source.playing and len(source.buffer) < PREROLL_SECONDS * RATE:
                continue
            source.playing = len(source.buffer) >= count
            available = min(count, len(source.buffer))
            taken, source.buffer = source.buffer[:available], source.buffer[available:]
            if key not in muted and available:
                total[:available] += taken
        return np.clip(total, -32768, 32767).astype(np.int16)

    def mix(self, count: int, muted: Collection[str] = ()) -> av.AudioFrame:
        samples = self.mix_samples(count, muted)
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="stereo")
        frame.sample_rate = RATE
        return frame

    def _take_pending(self, source: _Source) -> None:
        with self._lock:
            pending, source.pending = source.pending, []
        chunks = [source.buffer]
        for frame in pending:
            chunks.extend(self._resample(source, frame))
        if len(chunks) > 1:
            source.buffer = np.concatenate(chunks)
        if len(source.buffer) > MAX_BUFFER_SECONDS * RATE:
            source.buffer = source.buffer[-int(KEEP_SECONDS * RATE):]

    @staticmethod
    def _resample(source: _Source, frame: av.AudioFrame) -> list[Samples]:
        # The mixer keeps its own timeline: the source's timestamps would only make the resampler
        # insert or drop samples at a gap.
        frame.pts = None
        if source.resampler is None:
            source.resampler = av.AudioResampler(format="s16", layout="stereo", rate=RATE)
        try:
            converted = source.resampler.resample(frame)
        except ValueError:
            # The source changed its format (a reconnect): a new resampler.
            source.resampler = av.AudioResampler(format="s16", layout="stereo", rate=RATE)
            converted = source.resampler.resample(frame)
        return [np.asarray(out.to_ndarray(), dtype=np.int16).reshape(-1, 2) for out in converted]
