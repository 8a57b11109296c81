"""DVR: a second, longer playlist per rendition (`dvr.m3u8`) so viewers can rewind a live stream.

The live playlist keeps its short window; the manager keeps segment files past it
(`keep_segments`), and this observer lists the last `dvr_window_seconds` of them and deletes the
ones that fall out of that window.

A rendition trimmed from the ladder (the worker cannot encode the whole ladder in real time) leaves
the DVR master as it leaves the live one; the packager removes its files, its DVR playlist with them.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from ..hls.packager import SegmentInfo
from ..hls.playlists import dvr_master, render_dvr
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
        packager = self.extras.manager.packager(self.stream_id)
        trimmed = {name for name in (*self.entries, info.rendition)
                   if packager is not None and (r := packager.rendition(name)) is not None and r.removed}
        for name in trimmed:
            self.entries.pop(name, None)
            self.discontinuity_sequence.pop(name, None)
        storage = self.extras.storage
        if trimmed and self.master_written and packager is not None:
            storage.write(f"{self.stream_id}/dvr.m3u8", dvr_master(packager.render_master().encode()))
        if info.rendition in trimmed:
            return  # its last segment: the packager deletes the rendition's files right after
        entries = self.entries.setdefault(info.rendition, deque())
        init_uri = info.init_key.rsplit("/", 1)[-1]
        entries.append(_Entry(info.msn, info.duration, info.discontinuity, info.program_date_time, init_uri))
        while len(entries) > self.protected and sum(e.duration for e in entries) - entries[0].duration >= self.window:
            old = entries.popleft()
            if old.discontinuity:
                self.discontinuity_sequence[info.rendition] = self.discontinuity_sequence.get(info.rendition, 0) + 1
            storage.delete(f"{self.stream_id}/{info.rendition}/seg{old.msn}.m4s")
        storage.write(f"{self.stream_id}/{info.rendition}/dvr.m3u8", self.render(info.rendition).encode())
        if not self.master_written:
            # The packager's own master when it has one: the stored one may still list a rung being trimmed.
            if packager is not None:
                master = packager.render_master().encode() if packager.master_written else None
            else:
                master = storage.read(f"{self.stream_id}/master.m3u8")
            if master is not None:
                storage.write(f"{self.stream_id}/dvr.m3u8", dvr_master(master))
                self.master_written = True

    def on_closed(self, stream_id: str) -> None:
        storage = self.extras.storage
        for name in self.entries:
            storage.write(f"{self.stream_id}/{name}/dvr.m3u8", self.render(name, ended=True).encode())

    def render(self, rendition: str, *, ended: bool = False) -> str:
        return render_dvr(list(self.entries.get(rendition, ())),
                          discontinuity_sequence=self.discontinuity_sequence.get(rendition, 0), ended=ended)
