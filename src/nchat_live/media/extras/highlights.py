"""Suggested highlights of a recorded stream: engagement counted per bucket (nchat.engagement_refresh),
peaks found (resolvers/engagement.py's detect_peaks), each peak cut as a clip of the recording
(clips.create_clip: from `lead` seconds before the peak's run to `tail` after it), titled from the chat's
most used terms around it, stored as a `suggested` highlight, and marked with an automatic chapter.
Runs as the server when a recording is ready (HighlightSuggester, started by the runtime with the media
worker) or on the broadcaster's `detectHighlights`; the broadcaster then keeps or discards each highlight.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ...auth import Claims
from ...config import Settings
from ...db import Database
from ...errors import NchatError
from ...resolvers.engagement import (
    HIGHLIGHT_COLUMNS,
    PeakParams,
    detect_peaks,
    highlight_title,
    score_series,
    top_terms,
)
from ...subscriptions.bus import EventBus, SlowSubscriber
from .clips import create_clip

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class HighlightParams:
    bucket_seconds: int = 5
    lead_seconds: float = 10.0
    tail_seconds: float = 5.0
    peaks: PeakParams = field(default_factory=PeakParams)


async def detect_highlights(db: Database, settings: Settings, stream_id: str,
                            params: HighlightParams = HighlightParams()) -> list[dict[str, Any]]:
    """Suggest highlights for a stream's peaks (a peak that already has a highlight is not suggested again)."""
    size = params.bucket_seconds
    async with db.session(Claims.service()) as session:
        await session.fetchval("SELECT nchat.engagement_refresh($1, $2)", stream_id, size)
        rows = await session.fetch("SELECT * FROM nchat_stream_engagement WHERE stream_id = $1", stream_id)
        stream = await session.fetchrow(
            "SELECT s.started_at, r.duration_seconds FROM nchat_streams s LEFT JOIN nchat_stream_recordings r "
            "ON r.stream_id = s.id AND r.kind = 'full' WHERE s.id = $1", stream_id)
        existing = [float(r["peak_seconds"]) for r in await session.fetch(
            "SELECT peak_seconds FROM nchat_stream_highlights WHERE stream_id = $1", stream_id)]
    if stream is None or stream["started_at"] is None:
        return []
    duration = float(stream["duration_seconds"]) if stream["duration_seconds"] is not None else None
    scores = score_series([dict(r) for r in rows], int((duration or 0) // size) + 1 if duration else 0)
    made: list[dict[str, Any]] = []
    separation = params.peaks.min_separation_buckets * size
    for peak in detect_peaks(scores, params.peaks):
        at = (peak.peak + 0.5) * size
        if any(abs(at - other) < separation for other in existing):
            continue
        start = max(0.0, peak.first * size - params.lead_seconds)
        end = (peak.last + 1) * size + params.tail_seconds
        if duration is not None:
            end = min(end, duration)
            if start >= end:
                continue
        async with db.session(Claims.service()) as session:
            messages = await session.fetch(
                "SELECT content FROM nchat_stream_chat_messages WHERE stream_id = $1 AND NOT is_deleted "
                "AND created_at >= $2::timestamptz + make_interval(secs => $3::float8) "
                "AND created_at < $2::timestamptz + make_interval(secs => $4::float8)",
                stream_id, stream["started_at"], float(peak.first * size - size), float((peak.last + 1) * size))
            terms = top_terms(str(m["content"]) for m in messages)
            title = highlight_title(terms, at)
            clip = await create_clip(session, settings, stream_id, start, end)
            row = await session.fetchrow(
                "INSERT INTO nchat_stream_highlights (stream_id, clip_id, peak_seconds, start_seconds, end_seconds, "
                f"score, title, terms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {HIGHLIGHT_COLUMNS}",
                stream_id, clip["id"], at, start, end, peak.score, title, terms)
            assert row is not None
            await session.fetchval(
                "INSERT INTO nchat_stream_chapters (stream_id, start_seconds, title, source, highlight_id) "
                "VALUES ($1, $2, $3, 'auto', $4) RETURNING id", stream_id, start, title, row["id"])
        existing.append(at)
        made.append(dict(row))
    if made:
        async with db.session(Claims.service()) as session:
            # A first chapter from the start, so the chapter list covers the whole recording.
            await session.fetchval(
                "INSERT INTO nchat_stream_chapters (stream_id, start_seconds, title, source) "
                "SELECT $1, 0, 'Start', 'auto' WHERE NOT EXISTS "
                "(SELECT 1 FROM nchat_stream_chapters WHERE stream_id = $1 AND start_seconds < 1) RETURNING id",
                stream_id)
        log.info("stream %s: %d highlights suggested", stream_id, len(made))
    return made


class HighlightSuggester:
    """Suggests highlights when a stream's recording is ready: listens for this process's own
    `stream.recording` events (the worker that finalised the recording), so each recording is looked at
    once however many processes share the bus. `params = None` pauses it. While streams are live on this
    worker (`live_streams`), their engagement table is brought up to date every `refresh_seconds`."""

    def __init__(self, bus: EventBus, db: Database, settings: Settings,
                 live_streams: Callable[[], Iterable[str]] = tuple, refresh_seconds: float = 15.0) -> None:
        self.bus = bus
        self.db = db
        self.settings = settings
        self.params: HighlightParams | None = HighlightParams()
        self.live_streams = live_streams
        self.refresh_seconds = refresh_seconds
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._run()), asyncio.create_task(self._refresh_live())]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def _refresh_live(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_seconds)
            params = self.params or HighlightParams()
            for stream_id in list(self.live_streams()):
                try:
                    async with self.db.session(Claims.service()) as session:
                        await session.fetchval("SELECT nchat.engagement_refresh($1, $2)", stream_id,
                                               params.bucket_seconds)
                except NchatError as exc:
                    log.warning("stream %s: engagement not counted: %s", stream_id, exc)

    async def _run(self) -> None:
        while True:
            try:
                with self.bus.listen(types={"stream.recording"}, maxsize=1000) as listener:
                    while True:
                        event = await listener.get()
                        stream_id = str(event.payload.get("stream_id") or "")
                        if event.origin != self.bus.origin or event.payload.get("status") != "ready":
                            continue
                        if self.params is None or not stream_id:
                            continue
                        try:
                            await detect_highlights(self.db, self.settings, stream_id, self.params)
                        except NchatError as exc:
                            log.warning("stream %s: no highlights: %s", stream_id, exc)
            except SlowSubscriber:
                log.warning("highlight suggester fell behind; re-listening")
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("highlight suggester failed; restarting")
                await asyncio.sleep(1)
