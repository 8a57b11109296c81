"""Recording: every segment of every rendition kept, and a VOD playlist set when the stream ends.

A `Recorder` observes one stream's pipeline. Segments are written through to
`settings.recording_dir/<stream_id>/<rendition>/` as the packager finishes them (the live window
deletes its own copies later); a publisher reconnect stays one recording, its
EXT-X-DISCONTINUITY kept. Each rendition's `journal.jsonl` gets a line per segment as it lands, so
another worker can continue the recording after a takeover, or finalise it from the journal when
the worker that recorded it died. When the pipeline closes, `finalize` writes the VOD master and media
playlists, a `recording.json` index (what clips are cut from) and the `nchat_stream_recordings`
row, and points the stream's `recording_url` at the master.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...auth import Claims
from ..hls.packager import SegmentInfo
from ..hls.playlists import fallback_variants, master_variants, render_master, render_vod
from ..transcode.pipeline import PipelineObserver

if TYPE_CHECKING:
    from .stream_extras import StreamExtras

log = logging.getLogger(__name__)

INDEX = "recording.json"
JOURNAL = "journal.jsonl"


@dataclass(frozen=True, slots=True)
class RecordedSegment:
    uri: str
    duration: float
    discontinuity: bool
    # The init segment (EXT-X-MAP) of this segment's encoder: a reconnect or a takeover brings a new one.
    map: str = "init.mp4"


class RecordingFailed(OSError):
    """Writing the recording failed (disk full, unwritable path)."""


class Recorder(PipelineObserver):
    """Write-through recording of one stream's pipeline (methods run on the pipeline's thread)."""

    def __init__(self, extras: StreamExtras, stream_id: str) -> None:
        self.extras = extras
        self.stream_id = stream_id
        self.root = extras.settings.recording_dir / stream_id
        self.segments: dict[str, list[RecordedSegment]] = {}
        self.failed: str | None = None
        self._schedule: Callable[..., Any] = extras.call_soon
        self._maps: dict[str, str] = {}
        # Renditions continued from a journal: their next segment follows a gap.
        self._resumed: set[str] = set()
        self.load_journal()

    def load_journal(self) -> None:
        """Pick up what an earlier worker recorded of this stream (a takeover), from each rendition's journal."""
        if not self.root.is_dir():
            return
        for journal in sorted(self.root.glob(f"*/{JOURNAL}")):
            name = journal.parent.name
            segments: list[RecordedSegment] = []
            for line in journal.read_text(errors="replace").splitlines():
                try:
                    entry = json.loads(line)
                    segment = RecordedSegment(
                        str(entry["uri"]), float(entry["duration"]), bool(entry["discontinuity"]),
                        str(entry.get("map") or "init.mp4"),
                    )
                except (ValueError, KeyError, TypeError):
                    continue  # a line cut short by a crash
                if (journal.parent / segment.uri).is_file():
                    segments.append(segment)
            if segments:
                self.segments[name] = segments
                self._maps[name] = segments[-1].map
                self._resumed.add(name)
        if self.segments:
            log.info("stream %s: recording continues from its journal (%s)", self.stream_id,
                     ", ".join(f"{n}: {len(s)} segments" for n, s in self.segments.items()))

    def on_segment(self, info: SegmentInfo) -> None:
        if self.failed is not None:
            return
        recorded = self.segments.get(info.rendition, [])
        uri = f"seg{info.msn}.m4s"
        if any(s.uri == uri for s in recorded[-64:]):
            uri = f"seg{info.msn}_{len(recorded)}.m4s"  # never overwrite what an earlier worker recorded
        map_name = info.init_key.rsplit("/", 1)[-1]
        discontinuity = info.discontinuity or info.rendition in self._resumed
        segment = RecordedSegment(uri, info.duration, discontinuity, map_name)
        try:
            folder = self.root / info.rendition
            if self._maps.get(info.rendition) != map_name or not (folder / map_name).is_file():
                folder.mkdir(parents=True, exist_ok=True)
                init = self.extras.storage.read(info.init_key)
                if init is None:
                    raise RecordingFailed(f"init segment {info.init_key} is missing")
                _write(folder / map_name, init)
                self._maps[info.rendition] = map_name
            _write(folder / uri, info.data)
            # After the segment file: a journal line never names a file that is not there.
            with (folder / JOURNAL).open("a") as journal:
                journal.write(json.dumps(asdict(segment)) + "\n")
        except OSError as exc:
            self.failed = f"recording to {self.root} failed: {exc.strerror or exc}"
            log.error("stream %s: %s", self.stream_id, self.failed)
            self._schedule(self.extras.fail_stream, self.stream_id, self.failed)
            return
        self._resumed.discard(info.rendition)
        self.segments.setdefault(info.rendition, []).append(segment)

    def on_closed(self, stream_id: str) -> None:
        if self.extras.handed_off(stream_id):
            return  # another worker owns the stream now and goes on recording it
        self._schedule(self.finalize)

    async def finalize(self) -> str | None:
        """VOD playlists, index and database row; returns the recording id (None: nothing recorded)."""
        if not self.segments:
            return None
        storage = self.extras.storage
        master = await asyncio.to_thread(storage.read, f"{self.stream_id}/master.m3u8")
        variants = [v for v in master_variants(master.decode() if master else "") if v[1] in self.segments]
        if not variants:
            variants = fallback_variants(self.segments)
        thumbnail = await asyncio.to_thread(storage.read, f"{self.stream_id}/thumbnail.jpg")
        status = "failed" if self.failed else "ready"
        try:
            size = await asyncio.to_thread(self._write_vod, variants, thumbnail)
        except OSError as exc:
            status, size = "failed", 0
            self.failed = self.failed or f"writing the VOD playlists failed: {exc.strerror or exc}"
        names = [name for _, name in variants]
        duration = round(sum(s.duration for s in self.segments[names[0]]), 3)
        urls = self.extras.urls
        url = urls.recording(self.stream_id, "master.m3u8") if status == "ready" else None
        thumb_url = urls.recording(self.stream_id, "thumbnail.jpg") if thumbnail and status == "ready" else None
        metadata = {
            "segments": len(self.segments[names[0]]),
            "discontinuities": sum(1 for s in self.segments[names[0]][1:] if s.discontinuity),
            "error": self.failed,
        }
        async with self.extras.db.session(Claims.service()) as session:
            recording_id = await session.fetchval(
                "INSERT INTO nchat_stream_recordings (stream_id, kind, status, url, thumbnail_url, duration_seconds, "
                "size_bytes, renditions, metadata) VALUES ($1, 'full', $2, $3, $4, $5, $6, $7, $8::jsonb) "
                "ON CONFLICT (stream_id) WHERE kind = 'full' DO UPDATE SET status = EXCLUDED.status, "
                "url = EXCLUDED.url, duration_seconds = EXCLUDED.duration_seconds, size_bytes = EXCLUDED.size_bytes, "
                "renditions = EXCLUDED.renditions, metadata = EXCLUDED.metadata RETURNING id",
                self.stream_id, status, url, thumb_url, duration, size, names, json.dumps(metadata),
            )
            if url is not None:
                live_thumb = urls.thumbnail(self.stream_id)
                await session.fetchval(
                    "UPDATE nchat_streams SET recording_url = $2, thumbnail_url = CASE WHEN thumbnail_url = $3 "
                    "THEN coalesce($4, thumbnail_url) ELSE thumbnail_url END WHERE id = $1 RETURNING id",
                    self.stream_id, url, live_thumb, thumb_url,
                )
            session.emit("stream.recording", {
                "stream_id": self.stream_id, "recording_id": str(recording_id), "status": status, "url": url,
                "duration_seconds": duration,
            })
        log.info("stream %s: recording %s (%s, %.1f s, %d bytes)", self.stream_id, recording_id, status, duration, size)
        return str(recording_id)

    def _write_vod(self, variants: list[tuple[str, str]], thumbnail: bytes | None) -> int:
        for name, segments in self.segments.items():
            _write(self.root / name / "index.m3u8", render_vod(segments).encode())
        _write(self.root / "master.m3u8", render_master(variants).encode())
        if thumbnail:
            _write(self.root / "thumbnail.jpg", thumbnail)
        index = {
            "stream_id": self.stream_id,
            "variants": [list(v) for v in variants],
            "renditions": {name: [asdict(s) for s in segs] for name, segs in self.segments.items()},
        }
        _write(self.root / INDEX, json.dumps(index).encode())
        return folder_size(self.root)


def _write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def folder_size(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
