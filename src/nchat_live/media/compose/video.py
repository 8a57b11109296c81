"""One output frame from the latest frame of each shown source: yuv420p planes copied with numpy.

Each source is scaled once per new frame (swscale, in C) to its aspect-fitted tile; a held frame
(the source sent nothing new since the last tick) reuses the scaled planes. The canvas is black
(letterbox bars); a source with no picture yet is a dark grey tile.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import av
import numpy as np
import numpy.typing as npt
from av.video.reformatter import Interpolation, VideoReformatter

from .layout import Rect, fit

BLACK = (16, 128, 128)
PLACEHOLDER = (40, 128, 128)

Planes = tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8], npt.NDArray[np.uint8]]


@dataclass
class _Scaled:
    frame: av.VideoFrame | None
    target: Rect
    planes: Planes | None
    # One per source: it keeps its scaling context between frames (a frame's own reformat() builds a
    # new one every call, twice the cost at 720p).
    reformatter: VideoReformatter


def split_planes(data: npt.NDArray[np.uint8], width: int, height: int) -> Planes:
    """Views of the Y, U and V planes of a packed I420 buffer (`to_ndarray` of a yuv420p frame)."""
    flat = data.reshape(-1)
    luma = width * height
    chroma = luma // 4
    return (flat[:luma].reshape(height, width),
            flat[luma:luma + chroma].reshape(height // 2, width // 2),
            flat[luma + chroma:luma + 2 * chroma].reshape(height // 2, width // 2))


class VideoCompositor:
    """Builds `width`x`height` yuv420p frames from tiles (see `compose`)."""

    def __init__(self, width: int, height: int) -> None:
        if width % 2 or height % 2:
            raise ValueError(f"the canvas must have an even size, not {width}x{height}")
        self.width, self.height = width, height
        self._buffer: npt.NDArray[np.uint8] = np.empty(width * height * 3 // 2, dtype=np.uint8)
        self._planes = split_planes(self._buffer, width, height)
        self._scaled: dict[str, _Scaled] = {}

    def forget(self, key: str) -> None:
        self._scaled.pop(key, None)

    def compose(self, tiles: Sequence[tuple[str, Rect, av.VideoFrame | None]]) -> av.VideoFrame:
        """A new frame: each (source key, cell, latest frame or None for a placeholder) drawn in its cell."""
        for plane, value in zip(self._planes, BLACK, strict=True):
            plane.fill(value)
        for key, cell, frame in tiles:
            if frame is None:
                self._fill(cell, PLACEHOLDER)
                continue
            (sy, su, sv), target = self._scale(key, frame, cell)
            y, u, v = self._planes
            y[target.y:target.y + target.height, target.x:target.x + target.width] = sy
            cx, cy, cw, ch = target.x // 2, target.y // 2, target.width // 2, target.height // 2
            u[cy:cy + ch, cx:cx + cw] = su
            v[cy:cy + ch, cx:cx + cw] = sv
        return av.VideoFrame.from_ndarray(self._buffer.reshape(self.height * 3 // 2, self.width), format="yuv420p")

    def _scale(self, key: str, frame: av.VideoFrame, cell: Rect) -> tuple[Planes, Rect]:
        target = fit(frame.width, frame.height, cell)
        scaled = self._scaled.get(key)
        if scaled is None:
            scaled = self._scaled[key] = _Scaled(None, target, None, VideoReformatter())
        if scaled.planes is not None and scaled.frame is frame and scaled.target == target:
            return scaled.planes, target
        if (frame.width, frame.height, frame.format.name) == (target.width, target.height, "yuv420p"):
            picture = frame
        else:
            # Area averaging: tiles are mostly downscaled, where it aliases least, at bilinear's cost.
            picture = scaled.reformatter.reformat(frame, width=target.width, height=target.height,
                                                  format="yuv420p", interpolation=Interpolation.AREA)
        scaled.frame, scaled.target = frame, target
        scaled.planes = split_planes(np.asarray(picture.to_ndarray(), dtype=np.uint8), target.width, target.height)
        return scaled.planes, target

    def _fill(self, cell: Rect, colour: tuple[int, int, int]) -> None:
        y, u, v = self._planes
        y[cell.y:cell.y + cell.height, cell.x:cell.x + cell.width] = colour[0]
        cx, cy, cw, ch = cell.x // 2, cell.y // 2, cell.width // 2, cell.height // 2
        u[cy:cy + ch, cx:cx + cw] = colour[1]
        v[cy:cy + ch, cx:cx + cw] = colour[2]
