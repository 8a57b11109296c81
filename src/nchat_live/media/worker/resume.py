"""Continuing another worker's HLS output after a takeover: what its media playlists in storage say.

A worker that takes over a stream reads each rendition's last playlist, so its packager goes on
from the next media sequence number (players must never see one twice), keeps the old window's
segments listed and puts EXT-X-DISCONTINUITY before its own first segment.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

from ..hls.playlists import end_live
from ..storage.base import MediaStorage

_PART_URI = re.compile(r'URI="seg(\d+)\.\d+\.m4s"')
_SEGMENT_URI = re.compile(r"^seg(\d+)\.m4s$")


@dataclass(frozen=True)
class OldSegment:
    msn: int
    duration: float
    init_uri: str
    discontinuity: bool
    program_date_time: datetime | None


@dataclass
class ResumeState:
    """One rendition's playlist as the previous worker left it."""

    next_msn: int = 0
    discontinuity_sequence: int = 0
    segments: list[OldSegment] = field(default_factory=list)


def parse_media_playlist(text: str) -> ResumeState:
    """The complete segments and the next free media sequence number of a live media playlist."""
    state = ResumeState()
    sequence = 0
    init_uri = "init.mp4"
    discontinuity = False
    pdt: datetime | None = None
    duration: float | None = None
    highest = -1
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#EXT-X-MEDIA-SEQUENCE:"):
            sequence = int(line.split(":", 1)[1])
            highest = max(highest, sequence - 1)
        elif line.startswith("#EXT-X-DISCONTINUITY-SEQUENCE:"):
            state.discontinuity_sequence = int(line.split(":", 1)[1])
        elif line == "#EXT-X-DISCONTINUITY":
            discontinuity = True
        elif line.startswith("#EXT-X-MAP:"):
            match = re.search(r'URI="([^"]+)"', line)
            if match:
                init_uri = match.group(1)
        elif line.startswith("#EXT-X-PROGRAM-DATE-TIME:"):
            try:
                pdt = datetime.fromisoformat(line.split(":", 1)[1].replace("Z", "+00:00"))
            except ValueError:
                pdt = None
        elif line.startswith("#EXT-X-PART:") or line.startswith("#EXT-X-PRELOAD-HINT:"):
            # A segment the old worker had started (or announced) keeps its number too.
            match = _PART_URI.search(line)
            if match:
                highest = max(highest, int(match.group(1)))
        elif line.startswith("#EXTINF:"):
            duration = float(line.split(":", 1)[1].split(",", 1)[0])
        elif line and not line.startswith("#"):
            match = _SEGMENT_URI.match(line)
            if match and duration is not None:
                msn = int(match.group(1))
                state.segments.append(OldSegment(msn, duration, init_uri, discontinuity, pdt))
                highest = max(highest, msn)
            duration, discontinuity, pdt = None, False, None
    state.next_msn = highest + 1
    return state


def read_resume(storage: MediaStorage, stream_id: str) -> dict[str, ResumeState]:
    """Per rendition named in the stream's master playlist, where its output stopped (empty: none)."""
    master = storage.read(f"{stream_id}/master.m3u8")
    if master is None:
        return {}
    states: dict[str, ResumeState] = {}
    for line in master.decode(errors="replace").splitlines():
        if line.endswith("/index.m3u8") and not line.startswith("#"):
            name = line.split("/", 1)[0]
            data = storage.read(f"{stream_id}/{name}/index.m3u8")
            if data is not None:
                states[name] = parse_media_playlist(data.decode(errors="replace"))
    return states


def end_playlists(storage: MediaStorage, stream_id: str) -> None:
    """Close the playlists a dead worker left open (players stop waiting for parts that never come)."""
    for name in read_resume(storage, stream_id):
        key = f"{stream_id}/{name}/index.m3u8"
        data = storage.read(key)
        if data is None:
            continue
        closed = end_live(data.decode(errors="replace"))
        if closed is not None:
            storage.write(key, closed.encode())
