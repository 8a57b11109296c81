"""Recording: every segment of every rendition kept, and a VOD playlist set when the stream ends.

A `Recorder` observes one stream's pipeline. Segments are written through to
`settings.recording_dir/<stream_id>/<rendition>/` as the packager finishes them (the live window
deletes its own copies later); a publisher reconnect stays one recording, its
EXT-X-DISCONTINUITY kept. When the pipeline closes, `finalize` writes the VOD master and media
playlists, a `recording.json` index (what clips are cut from) and the `nchat_stream_recordings`
row, and points the stream's `recording_url` at the master.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import math
import os
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..auth import Claims
from .packager import SegmentInfo
from .pipeline import PipelineObserver

if TYPE_CHECKING:
    from .features import MediaFeatures

log = logging.getLogger(__name__)

INDEX = "recording.json"


@dataclass(frozen=True, slots=True)
class RecordedSegment:
    uri: str
    duration: float
    discontinuity: bool


def render_vod(segments: list[RecordedSegment], map_uri: str = "init.mp4", prefix: str = "") -> str:
    """A VOD media playlist; `prefix` is put before every URI (clips point into the recording)."""
    target = max(1, math.ceil(max((s.duration for s in segments), default=1.0) - 1e-3))
    lines = [
        "#EXTM3U",
        "#EXT-X-VERSION:7",
        f"#EXT-X-TARGETDURATION:{target}",
        "#EXT-X-PLAYLIST-TYPE:VOD",
        "#EXT-X-MEDIA-SEQUENCE:0",
        "#EXT-X-INDEPENDENT-SEGMENTS",
        f'#EXT-X-MAP:URI="{prefix}{map_uri}"',
    ]
    for index, segment in enumerate(segments):
        if segment.discontinuity and index > 0:
            lines.append("#EXT-X-DISCONTINUITY")
        lines.append(f"#EXTINF:{segment.duration:.5f},")
        lines.append(prefix + segment.uri)
    lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


def master_variants(master: str) -> list[tuple[str, str]]:
    """(EXT-X-STREAM-INF line, rendition name) pairs of a master playlist."""
    lines = master.splitlines()
    pairs = []
    for line, uri in itertools.pairwise(lines):
        if line.startswith("#EXT-X-STREAM-INF") and uri.endswith("/index.m3u8"):
            pairs.append((line, uri.split("/", 1)[0]))
    return pairs


def render_master(variants: list[tuple[str, str]]) -> str:
    lines = ["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-INDEPENDENT-SEGMENTS"]
    for inf, name in variants:
        lines += [inf, f"{name}/index.m3u8"]
    return "\n".join(lines) + "\n"


class RecordingFailed(OSError):
    """Writing the recording failed (disk full, unwritable path)."""


class Recorder(PipelineObserver):
    """Write-through recording of one stream's pipeline (methods run on the pipeline's thread)."""

    def __init__(self, features: MediaFeatures, stream_id: str) -> None:
        self.features = features
        self.stream_id = stream_id
        self.root = features.settings.recording_dir / stream_id
        self.segments: dict[str, list[RecordedSegment]] = {}
        self.failed: str | None = None
        self._schedule: Callable[..., Any] = features.call_soon

    def on_segment(self, info: SegmentInfo) -> None:
        if self.failed is not None:
            return
        try:
            folder = self.root / info.rendition
            if info.rendition not in self.segments:
                folder.mkdir(parents=True, exist_ok=True)
                init = self.features.manager.storage.read(info.init_key)
                if init is None:
                    raise RecordingFailed(f"init segment {info.init_key} is missing")
                _write(folder / "init.mp4", init)
            _write(folder / f"seg{info.msn}.m4s", info.data)
        except OSError as exc:
            self.failed = f"recording to {self.root} failed: {exc.strerror or exc}"
            log.error("stream %s: %s", self.stream_id, self.failed)
            self._schedule(self.features.fail_stream, self.stream_id, self.failed)
            return
        self.segments.setdefault(info.rendition, []).append(
            RecordedSegment(f"seg{info.msn}.m4s", info.duration, info.discontinuity)
        )

    def on_closed(self, stream_id: str) -> None:
        self._schedule(self.finalize)

    async def finalize(self) -> str | None:
        """VOD playlists, index and database row; returns the recording id (None: nothing recorded)."""
        if not self.segments:
            return None
        storage = self.features.manager.storage
        master = await asyncio.to_thread(storage.read, f"{self.stream_id}/master.m3u8")
        variants = [v for v in master_variants(master.decode() if master else "") if v[1] in self.segments]
        if not variants:
            variants = [(f"#EXT-X-STREAM-INF:BANDWIDTH={500_000}", name) for name in self.segments]
        thumbnail = await asyncio.to_thread(storage.read, f"{self.stream_id}/thumbnail.jpg")
        status = "failed" if self.failed else "ready"
        try:
            size = await asyncio.to_thread(self._write_vod, variants, thumbnail)
        except OSError as exc:
            status, size = "failed", 0
            self.failed = self.failed or f"writing the VOD playlists failed: {exc.strerror or exc}"
        names = [name for _, name in variants]
        duration = round(sum(s.duration for s in self.segments[names[0]]), 3)
        urls = self.features.urls
        url = urls.recording(self.stream_id, "master.m3u8") if status == "ready" else None
        thumb_url = urls.recording(self.stream_id, "thumbnail.jpg") if thumbnail and status == "ready" else None
        metadata = {
            "segments": len(self.segments[names[0]]),
            "discontinuities": sum(1 for s in self.segments[names[0]][1:] if s.discontinuity),
            "error": self.failed,
        }
        async with self.features.db.session(Claims.service()) as session:
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
