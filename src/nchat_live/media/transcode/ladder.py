"""The adaptive bitrate ladder and how it is capped for one stream."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Rendition:
    """One rung: output size, frame rate and bitrates (kbit/s)."""

    name: str
    width: int
    height: int
    fps: int
    video_kbps: int
    audio_kbps: int = 128

    @property
    def gop(self) -> int:
        """GOP = 2 x fps: one keyframe per 2 s segment."""
        return 2 * self.fps

    @property
    def average_bandwidth(self) -> int:
        return (self.video_kbps + self.audio_kbps) * 1000

    @property
    def peak_bandwidth(self) -> int:
        # The encoder's VBV cap is 1.2 x the target; container overhead is a few percent on top.
        return int((self.video_kbps * 1.2 + self.audio_kbps) * 1000 * 1.05)


# The guide's table.
LADDER: tuple[Rendition, ...] = (
    Rendition("1080p", 1920, 1080, 30, 3000),
    Rendition("720p", 1280, 720, 30, 1500),
    Rendition("480p", 854, 480, 24, 800),
    Rendition("360p", 640, 360, 24, 400),
)
HEIGHTS = {r.name: r.height for r in LADDER}


def _even(value: float) -> int:
    return max(2, round(value / 2) * 2)


def select_ladder(source_width: int, source_height: int, max_resolution: str = "1080p") -> list[Rendition]:
    """The rungs no taller than the source and `max_resolution`, widths following the source's aspect.

    A source smaller than the lowest rung still gets one rendition at its own size.
    """
    if max_resolution not in HEIGHTS:
        raise ValueError(f"max_resolution '{max_resolution}' is not one of {', '.join(HEIGHTS)}")
    cap = min(HEIGHTS[max_resolution], source_height)
    aspect = source_width / source_height if source_height else 16 / 9
    rungs = [
        Rendition(r.name, _even(r.height * aspect), r.height, r.fps, r.video_kbps, r.audio_kbps)
        for r in LADDER
        if r.height <= cap
    ]
    if not rungs:
        low = LADDER[-1]
        height = _even(source_height)
        rungs = [Rendition(f"{height}p", _even(height * aspect), height, low.fps, low.video_kbps, low.audio_kbps)]
    return rungs
