"""Solid-colour media for compose tests: frames and tracks of one known colour, and colour checks."""

from __future__ import annotations

import asyncio
import fractions
import time

import av
import numpy as np
from aiortc import VideoStreamTrack

# Y, U, V of colours far apart in every plane (BT.601 limited range).
RED = (81, 90, 240)
BLUE = (41, 240, 110)
GREEN = (145, 54, 34)
YELLOW = (210, 16, 146)
BLACK = (16, 128, 128)
PLACEHOLDER = (40, 128, 128)

VIDEO_CLOCK = 90000


def solid_frame(colour: tuple[int, int, int], width: int = 640, height: int = 360) -> av.VideoFrame:
    data = np.empty(width * height * 3 // 2, dtype=np.uint8)
    luma, chroma = width * height, width * height // 4
    data[:luma], data[luma:luma + chroma], data[luma + chroma:] = colour
    return av.VideoFrame.from_ndarray(data.reshape(height * 3 // 2, width), format="yuv420p")


def colour_at(frame: av.VideoFrame, x: int, y: int) -> tuple[int, int, int]:
    """(Y, U, V) of the pixel at x, y of a yuv420p frame."""
    planes = frame.reformat(format="yuv420p").to_ndarray()
    width, height = frame.width, frame.height
    flat = planes.reshape(-1)
    luma, chroma = width * height, width * height // 4
    u = flat[luma:luma + chroma].reshape(height // 2, width // 2)
    v = flat[luma + chroma:].reshape(height // 2, width // 2)
    return int(flat[y * width + x]), int(u[y // 2, x // 2]), int(v[y // 2, x // 2])


def near(found: tuple[int, int, int], wanted: tuple[int, int, int], tolerance: int = 12) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(found, wanted, strict=True))


class SolidVideo(VideoStreamTrack):
    """An aiortc track of one colour at `fps` (the colour may be changed while it runs)."""

    def __init__(self, colour: tuple[int, int, int], width: int = 320, height: int = 180, fps: int = 15) -> None:
        super().__init__()
        self.colour, self.width, self.height, self.fps = colour, width, height, fps
        self.count = 0
        self._began: float | None = None

    async def recv(self) -> av.VideoFrame:
        if self._began is None:
            self._began = time.monotonic()
        delay = self._began + self.count / self.fps - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        frame = solid_frame(self.colour, self.width, self.height)
        frame.pts = int(self.count * VIDEO_CLOCK / self.fps)
        frame.time_base = fractions.Fraction(1, VIDEO_CLOCK)
        self.count += 1
        return frame
