"""Thumbnails: a JPEG from a keyframe every `thumbnail_interval_seconds` at /hls/<id>/thumbnail.jpg."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from typing import TYPE_CHECKING

import av
from av.video.reformatter import VideoReformatter

from ..transcode.pipeline import PipelineObserver

if TYPE_CHECKING:
    from .stream_extras import StreamExtras

log = logging.getLogger(__name__)

MAX_HEIGHT = 720


def encode_jpeg(frame: av.VideoFrame, max_height: int = MAX_HEIGHT) -> bytes:
    """One frame as a baseline JPEG, no taller than `max_height` (aspect kept, even sizes)."""
    height = min(frame.height, max_height)
    width = max(2, round(frame.width * height / frame.height / 2) * 2)
    # A scaler of its own: the pipeline may be scaling this frame on its thread (`frame.reformat` would share one).
    image = VideoReformatter().reformat(frame, width=width, height=height, format="yuvj420p")
    codec = av.CodecContext.create("mjpeg", "w")
    codec.width, codec.height, codec.pix_fmt = width, height, "yuvj420p"
    codec.time_base = Fraction(1, 30)
    codec.options = {"qscale": "4"}
    image.pts = None
    packets = codec.encode(image) + codec.encode(None)
    return b"".join(bytes(p) for p in packets)


class Thumbnailer(PipelineObserver):
    """Observes one pipeline; JPEG encoding runs on a small shared pool, never the encoder thread."""

    def __init__(self, extras: StreamExtras, stream_id: str, pool: ThreadPoolExecutor) -> None:
        self.extras = extras
        self.stream_id = stream_id
        self.pool = pool
        self.interval = extras.settings.thumbnail_interval_seconds
        self.last_at: float | None = None
        self.count = 0

    def on_keyframe(self, frame: av.VideoFrame, at_seconds: float) -> None:
        if self.last_at is not None and at_seconds - self.last_at < self.interval - 0.05:
            return
        self.last_at = at_seconds
        self.pool.submit(self._write, frame)

    def _write(self, frame: av.VideoFrame) -> None:
        try:
            data = encode_jpeg(frame)
            self.extras.storage.write(f"{self.stream_id}/thumbnail.jpg", data)
        except Exception:
            log.exception("stream %s: thumbnail failed", self.stream_id)
            return
        self.count += 1
        if self.count == 1:
            self.extras.call_soon(self.extras.set_default_thumbnail, self.stream_id)
