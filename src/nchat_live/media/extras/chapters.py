"""Chapters of a recording as media: WebVTT chapters (`/recordings/{id}/chapters.vtt`) and the
EXT-X-DATERANGE tags of its VOD media playlists (CLASS "com.nchat.chapter", START-DATE = the stream's
start + the chapter's offset, X-TITLE). Chapters are rows of `nchat_stream_chapters` (migration 0016),
edited by the stream's managers; the playlists are rendered with the current rows on each request, so an
edit shows at once.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ...auth import Claims
from ...db import Database
from ..hls.access import PRIVATE_PLAYLIST, MediaGrant, authorize_media
from ..hls.playlists import MEDIA_PLAYLIST, with_dateranges
from ..hls.routes import CORS, NO_CACHE, PLAYLIST_TYPE
from ..storage.archive import read_archived_recording

_RENDITION = re.compile(r"^\d{3,4}p$")


@dataclass(frozen=True, slots=True)
class Chapter:
    id: str
    start: float
    title: str


@dataclass(frozen=True, slots=True)
class RecordingChapters:
    started_at: datetime | None
    duration: float | None
    chapters: list[Chapter]


async def load(db: Database, stream_id: str) -> RecordingChapters:
    """A stream's chapters and the recording's time base. The caller has been granted the stream's media
    (media/hls/access.py), and chapters are readable with the stream, so the server reads them."""
    async with db.session(Claims.service()) as session:
        stream = await session.fetchrow(
            "SELECT s.started_at, r.duration_seconds FROM nchat_streams s LEFT JOIN nchat_stream_recordings r "
            "ON r.stream_id = s.id AND r.kind = 'full' WHERE s.id = $1", stream_id)
        rows = await session.fetch(
            "SELECT id, start_seconds, title FROM nchat_stream_chapters WHERE stream_id = $1 "
            "ORDER BY start_seconds, created_at", stream_id)
    chapters = [Chapter(str(r["id"]), float(r["start_seconds"]), str(r["title"])) for r in rows]
    if stream is None:
        return RecordingChapters(None, None, chapters)
    duration = stream["duration_seconds"]
    return RecordingChapters(stream["started_at"], None if duration is None else float(duration), chapters)


def spans(chapters: Sequence[Chapter], duration: float | None) -> list[tuple[Chapter, float]]:
    """Each chapter with its end: the next chapter's start, else the recording's end. Chapters at or
    past the end, and all but the last of chapters starting at the same time, are left out."""
    ordered = sorted(chapters, key=lambda c: c.start)
    out: list[tuple[Chapter, float]] = []
    for index, chapter in enumerate(ordered):
        end = ordered[index + 1].start if index + 1 < len(ordered) else duration
        if end is None:
            end = chapter.start + 1.0
        if duration is not None:
            end = min(end, duration)
        if end > chapter.start:
            out.append((chapter, end))
    return out


def _timestamp(seconds: float) -> str:
    millis = round(seconds * 1000)
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}.{millis:03d}"


def render_vtt(chapters: Sequence[Chapter], duration: float | None) -> str:
    """WebVTT chapters (`<track kind="chapters">`): one cue per chapter, its id the chapter's."""
    lines = ["WEBVTT", ""]
    for chapter, end in spans(chapters, duration):
        title = " ".join(chapter.title.replace("-->", "->").split())
        lines += [chapter.id, f"{_timestamp(chapter.start)} --> {_timestamp(end)}", title, ""]
    return "\n".join(lines)


def playlist_with_chapters(vod: str, recording: RecordingChapters) -> str:
    """A recording's VOD media playlist with its chapters as EXT-X-DATERANGE tags."""
    if recording.started_at is None or not recording.chapters:
        return vod
    ranges = [(c.id, c.start, end - c.start, c.title) for c, end in spans(recording.chapters, recording.duration)]
    return with_dateranges(vod, recording.started_at, ranges)


# -- HTTP ---------------------------------------------------------------------------------------


async def chapters_vtt(request: Request) -> Response:
    """`/recordings/{stream_id}/chapters.vtt`: the same access rules as the recording's files."""
    stream_id = request.path_params["stream_id"]
    grant = await authorize_media(request, stream_id)
    if not isinstance(grant, MediaGrant):
        return grant
    recording = await load(request.app.state.runtime.database, stream_id)
    cache = grant.cache(NO_CACHE, PRIVATE_PLAYLIST)
    return Response(render_vtt(recording.chapters, recording.duration), media_type="text/vtt",
                    headers=CORS | cache)


async def recording_playlist(request: Request) -> Response:
    """A full recording's media playlist, with the chapters as EXT-X-DATERANGE (clips keep their files)."""
    stream_id = request.path_params["stream_id"]
    rendition = request.path_params["rendition"]
    grant = await authorize_media(request, stream_id)
    if not isinstance(grant, MediaGrant):
        return grant
    runtime = request.app.state.runtime
    file = runtime.settings.recording_dir / stream_id / rendition / MEDIA_PLAYLIST
    found = _RENDITION.match(rendition) is not None and await asyncio.to_thread(file.is_file)
    # An archived recording's playlist comes from cold storage (media/extras/archive.py).
    archived = None if found or not _RENDITION.match(rendition) else await asyncio.to_thread(
        read_archived_recording, runtime.settings, stream_id, f"{rendition}/{MEDIA_PLAYLIST}")
    if not found and archived is None:
        return JSONResponse({"error": {"code": "not-found", "message": f"no recording playlist '{rendition}' "
                                       f"for stream '{stream_id}'"}}, status_code=404, headers=CORS | NO_CACHE)
    text = archived.decode() if archived is not None else await asyncio.to_thread(file.read_text)
    recording = await load(runtime.database, stream_id)
    # Chapters change when the broadcaster edits them: short-lived in caches.
    cache = grant.cache({"Cache-Control": "public, max-age=10"}, PRIVATE_PLAYLIST)
    return Response(playlist_with_chapters(text, recording), media_type=PLAYLIST_TYPE, headers=CORS | cache)


def chapter_routes() -> list[Route]:
    """Before the replay routes (their `/recordings/{id}/{path}` would take these)."""
    return [
        Route("/recordings/{stream_id}/chapters.vtt", chapters_vtt, methods=["GET", "HEAD"]),
        Route("/recordings/{stream_id}/{rendition}/index.m3u8", recording_playlist, methods=["GET", "HEAD"]),
    ]
