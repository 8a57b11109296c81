"""DVR: a second, longer playlist per rendition (`dvr.m3u8`) so viewers can rewind a live stream.

The live playlist keeps its short window; the manager keeps segment files past it
(`keep_segments`), and this observer lists the last `dvr_window_seconds` of them and deletes the
ones that fall out of that window.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from ..hls.packager import SegmentInfo
from ..transcode.pipeline import PipelineObserver

if TYPE_CHECKING:
    from .stream_extras import StreamExtras


@dataclass(frozen=True, slots=True)
class _Entry:
    msn: int
    duration: float
    discontinuity: bool
    program_date_time: datetime
    init_uri: str = "init.mp4"


class DvrPlaylists(PipelineObserver):
    def __init__(self, extras: StreamExtras, stream_id: str) -> None:
        self.extras = extras
        self.stream_id = stream_id
        self.window = extras.settings.dvr_window_seconds
        self.entries: dict[str, deque[_Entry]] = {}
        self.discontinuity_sequence: dict[str, int] = {}
        self.master_written = False
        config = extras.config
        # Never delete what the live window (and players still fetching from it) may use.
        self.protected = config.window_segments + config.keep_extra_segments + 1

    def on_segment(self, info: SegmentInfo) -> None:
        entries = self.entries.setdefault(info.rendition, deque())
        init_uri = info.init_key.rsplit("/", 1)[-1]
        entries.append(_Entry(info.msn, info.duration, info.discontinuity, info.program_date_time, init_uri))
        storage = self.extras.storage
        while len(entries) > self.protected and sum(e.duration for e in entries) - entries[0].duration >= self.window:
            old = entries.popleft()
            if old.discontinuity:
                self.discontinuity_sequence[info.rendition] = self.discontinuity_sequence.get(info.rendition, 0) + 1
            storage.delete(f"{self.stream_id}/{info.rendition}/seg{old.msn}.m4s")
        storage.write(f"{self.stream_id}/{info.rendition}/dvr.m3u8", self.render(info.rendition).encode())
        if not self.master_written:
            master = storage.read(f"{self.stream_id}/master.m3u8")
            if master is not None:
                storage.write(f"{self.stream_id}/dvr.m3u8", master.replace(b"/index.m3u8", b"/dvr.m3u8"))
                self.master_written = True

    def on_closed(self, stream_id: str) -> None:
        storage = self.extras.storage
        for name in self.entries:
            storage.write(f"{self.stream_id}/{name}/dvr.m3u8", self.render(name, ended=True).encode())

    def render(self, rendition: str, *, ended: bool = False) -> str:
        entries = list(self.entries.get(rendition, ()))
        target = max(1, math.ceil(max((e.duration for e in entries), default=1.0) - 1e-3))
        lines = [
            "#EXTM3U",
            "#EXT-X-VERSION:7",
            f"#EXT-X-TARGETDURATION:{target}",
            f"#EXT-X-MEDIA-SEQUENCE:{entries[0].msn if entries else 0}",
            f"#EXT-X-DISCONTINUITY-SEQUENCE:{self.discontinuity_sequence.get(rendition, 0)}",
            "#EXT-X-INDEPENDENT-SEGMENTS",
        ]
        current_map = None
        for index, entry in enumerate(entries):
            if entry.discontinuity and index > 0:
                lines.append("#EXT-X-DISCONTINUITY")
            # A reconnect or a takeover brings a new encoder, and with it a new init segment.
            if entry.init_uri != current_map:
                current_map = entry.init_uri
                lines.append(f'#EXT-X-MAP:URI="{current_map}"')
            pdt = entry.program_date_time.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
            lines += [f"#EXT-X-PROGRAM-DATE-TIME:{pdt}", f"#EXTINF:{entry.duration:.5f},", f"seg{entry.msn}.m4s"]
        if ended:
            lines.append("#EXT-X-ENDLIST")
        return "\n".join(lines) + "\n"
