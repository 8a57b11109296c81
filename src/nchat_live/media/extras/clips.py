"""Domain operations on recordings: cut a clip, delete a recording (rows under the caller's RLS)."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

from ...config import Settings
from ...db import Session
from ...errors import NotFound, PermissionDenied, ValidationFailed
from ...ids import is_canonical_uuid
from ..hls.playlists import fallback_variants, master_variants, render_master, render_vod
from .recording import INDEX, RecordedSegment, _write, remove_tree
from .stream_extras import MediaUrls

MAX_CLIP_SECONDS = 3600.0


def _recorded(settings: Settings, stream_id: str, live: dict[str, list[RecordedSegment]] | None) -> tuple[
    list[tuple[str, str]], dict[str, list[RecordedSegment]]
]:
    """(variants, segments per rendition) of a stream's recording: finished, or still being written."""
    if live:
        variants = fallback_variants(live)
        master = settings.media_dir / stream_id / "master.m3u8"
        if master.is_file():
            variants = [v for v in master_variants(master.read_text()) if v[1] in live] or variants
        return variants, {name: list(segments) for name, segments in live.items()}
    path = settings.recording_dir / stream_id / INDEX
    try:
        index = json.loads(path.read_text())
    except FileNotFoundError:
        return [], {}
    segments = {name: [RecordedSegment(**s) for s in segs] for name, segs in index["renditions"].items()}
    return [(str(v[0]), str(v[1])) for v in index["variants"]], segments


def _select(segments: list[RecordedSegment], start: float, end: float) -> tuple[list[RecordedSegment], float]:
    """Segments overlapping [start, end) of the recording's timeline, and where the first begins."""
    chosen: list[RecordedSegment] = []
    at, first_start = 0.0, 0.0
    for segment in segments:
        if at + segment.duration > start and at < end:
            if not chosen:
                first_start = at
            chosen.append(segment)
        at += segment.duration
    return chosen, first_start


def _write_clip(root: Path, clip_dir: Path, variants: list[tuple[str, str]],
                chosen: dict[str, list[RecordedSegment]]) -> int:
    size = 0
    for name, segments in chosen.items():
        (clip_dir / name).mkdir(parents=True, exist_ok=True)
        _write(clip_dir / name / "index.m3u8", render_vod(segments, prefix=f"../../../{name}/").encode())
        size += sum((root / name / s.uri).stat().st_size for s in segments if (root / name / s.uri).is_file())
    _write(clip_dir / "master.m3u8", render_master([v for v in variants if v[1] in chosen]).encode())
    return size


async def create_clip(
    session: Session, settings: Settings, stream_id: str, start: float, end: float,
    live_segments: dict[str, list[RecordedSegment]] | None = None,
) -> dict[str, Any]:
    """A VOD playlist over the recorded segments covering [start, end) seconds of the stream."""
    if not (0 <= start < end) or end - start > MAX_CLIP_SECONDS:
        raise ValidationFailed(
            f"clip range {start:g}..{end:g} s is invalid; need 0 <= from < to and at most {MAX_CLIP_SECONDS:g} s",
            code="invalid-clip-range",
        )
    if not is_canonical_uuid(stream_id):
        raise NotFound(f"stream '{stream_id}' not found", code="stream-not-found")
    if await session.fetchval("SELECT id FROM nchat_streams WHERE id = $1", stream_id) is None:
        raise NotFound(f"stream '{stream_id}' not found", code="stream-not-found")
    if not await session.fetchval("SELECT nchat.can_manage_stream($1) OR nchat.is_admin()", stream_id):
        raise PermissionDenied(f"only the broadcaster or channel staff can clip stream '{stream_id}'")
    variants, segments = await asyncio.to_thread(_recorded, settings, stream_id, live_segments)
    if not segments:
        raise NotFound(f"stream '{stream_id}' has no recording to clip", code="recording-not-found")
    chosen: dict[str, list[RecordedSegment]] = {}
    first_start = 0.0
    for name, segs in segments.items():
        picked, first_start = _select(segs, start, end)
        if picked:
            chosen[name] = picked
    if not chosen:
        total = sum(s.duration for s in next(iter(segments.values())))
        raise ValidationFailed(
            f"clip range {start:g}..{end:g} s is outside the recording (0..{total:.1f} s)", code="invalid-clip-range"
        )
    clip_id = str(uuid.uuid4())
    root = settings.recording_dir / stream_id
    clip_dir = root / "clips" / clip_id
    size = await asyncio.to_thread(_write_clip, root, clip_dir, variants, chosen)
    first = next(iter(chosen.values()))
    url = MediaUrls(settings.public_url).recording(stream_id, f"clips/{clip_id}/master.m3u8")
    try:
        # The URL is the server's (migration 0013): request roles cannot insert it; nchat.clip_set_url
        # stores this clip's own recordings path.
        row = await session.fetchrow(
            "INSERT INTO nchat_stream_recordings (id, stream_id, kind, status, duration_seconds, size_bytes, "
            "renditions, clip_start_seconds, clip_end_seconds, created_by, metadata) "
            "VALUES ($1, $2, 'clip', 'ready', $3, $4, $5, $6, $7, $8, $9::jsonb) "
            "RETURNING id, stream_id, kind, status, url, duration_seconds, size_bytes, renditions, "
            "clip_start_seconds, clip_end_seconds, created_at",
            clip_id, stream_id, round(sum(s.duration for s in first), 3), size, list(chosen),
            start, end, session.claims.user_id, json.dumps({"covers_from_seconds": round(first_start, 3)}),
        )
        stored = await session.fetchval("SELECT nchat.clip_set_url($1, $2)", clip_id, url)
    except BaseException:
        await asyncio.to_thread(remove_tree, clip_dir)
        raise
    assert row is not None
    return {**dict(row), "url": stored}


async def delete_recording(session: Session, settings: Settings, recording_id: str) -> dict[str, Any]:
    """Delete a recording (or clip): row under the caller's RLS, files once the transaction commits."""
    if not is_canonical_uuid(recording_id):
        raise NotFound(f"recording '{recording_id}' not found", code="recording-not-found")
    row = await session.fetchrow(
        "SELECT id, stream_id, kind FROM nchat_stream_recordings WHERE id = $1", recording_id
    )
    if row is None:
        raise NotFound(f"recording '{recording_id}' not found", code="recording-not-found")
    deleted = await session.fetchval("DELETE FROM nchat_stream_recordings WHERE id = $1 RETURNING id", recording_id)
    if deleted is None:
        raise PermissionDenied(f"only the broadcaster or an admin can delete recording '{recording_id}'")
    stream_id = str(row["stream_id"])
    root = settings.recording_dir / stream_id
    if row["kind"] == "full":
        # Clips point into the full recording's segments: they go with it.
        await session.fetch("DELETE FROM nchat_stream_recordings WHERE stream_id = $1 AND kind = 'clip'", stream_id)
        # recording_url is server-owned: deleting the full recording clears it (trigger, migration 0011).
        target = root
    else:
        target = root / "clips" / recording_id

    async def remove_files() -> None:
        await asyncio.to_thread(remove_tree, target)

    session.after_commit(remove_files)
    session.emit("stream.recording_deleted", {"stream_id": stream_id, "recording_id": recording_id})
    return {"id": recording_id, "stream_id": stream_id, "kind": row["kind"]}
