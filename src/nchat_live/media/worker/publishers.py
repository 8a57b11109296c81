"""The streams a worker ingests: publishers attach and leave, pipelines start and close, streams go
live and end.

A publisher that returns within `settings.publisher_grace_seconds` continues the same pipeline
(EXT-X-DISCONTINUITY in the playlists, none while a guest program runs: guests.py); otherwise the
pipeline closes and the stream ends. Guests' publishers are guests.py's; they leave with the stream. A
rotated key or a ban disconnects the publisher (`recheck`); a failed write of live media or of
the recording fails the stream (`fail`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from collections.abc import Callable

from ...auth import Claims
from ...config import Settings
from ...db import Database
from ...errors import Conflict, NchatError, Unavailable
from ...observability import LIVE_STREAMS
from ...resolvers import lifecycle
from ..hls.packager import PackagingConfig
from ..storage.base import MediaStorage
from ..storage.guarded import DiscardStorage
from ..transcode.pipeline import ObserverGroup, PipelineObserver, StreamPipeline
from .guests import close_guests
from .leases import LeaseKeeper
from .observers import StreamObservers
from .resume import ResumeState, read_resume
from .streams import IngestSession, Publisher, StreamInfo
from .tasks import BackgroundTasks

log = logging.getLogger(__name__)


def key_matches(info: StreamInfo, presented: str | None) -> bool:
    return presented is not None and hmac.compare_digest(info.stream_key.encode(), presented.encode())


class _ManifestWritten(PipelineObserver):
    """Sets the stream's hls_manifest_url once its master playlist exists."""

    def __init__(self, loop: asyncio.AbstractEventLoop, publish: Callable[[], None]) -> None:
        self.loop = loop
        self.publish = publish

    def on_master(self, stream_id: str) -> None:
        self.loop.call_soon_threadsafe(self.publish)


class Publishers:
    """Ingest sessions of one worker, by stream id (`sessions`)."""

    def __init__(self, settings: Settings, database: Database, storage: MediaStorage, leases: LeaseKeeper,
                 observers: StreamObservers, tasks: BackgroundTasks, capacity: int) -> None:
        self.settings = settings
        self.database = database
        self.storage = storage
        self.leases = leases
        self.observers = observers
        self.tasks = tasks
        self.capacity = capacity
        self.config = PackagingConfig()
        self.sessions: dict[str, IngestSession] = {}
        # Streams another worker took from this one (fencing): stopped here without being ended.
        self.handed_off: set[str] = set()
        self._failing: set[str] = set()
        self._lock = asyncio.Lock()

    def has_room(self, stream_id: str) -> bool:
        """Whether a publish of `stream_id` fits: it is held here already, or a slot is free."""
        if stream_id in self.sessions or stream_id in self.leases.adopted:
            return True
        return len(self.sessions) + len(self.leases.adopted) < self.capacity

    def manifest_url(self, stream_id: str) -> str:
        return f"{self.settings.public_url.rstrip('/')}/hls/{stream_id}/master.m3u8"

    # -- publishers come and go ---------------------------------------------------------------

    async def connected(self, info: StreamInfo, publisher: Publisher) -> IngestSession:
        """Attach a publisher: a new pipeline, or the same one (with a discontinuity) within the grace period."""
        if info.status in lifecycle.TERMINAL:
            raise Conflict(f"stream '{info.stream_id}' is {info.status}; create a new stream to go live again",
                           code="stream-ended")
        # A banned broadcaster, or one at her live-stream quota, is refused before any media (migration 0013).
        async with self.database.session(Claims.service()) as session:
            await session.fetchval("SELECT nchat.publish_admission($1)", info.stream_id)
        async with self._lock:
            live = self.sessions.get(info.stream_id)
            if live is not None and live.publisher is not None:
                raise Conflict(f"stream '{info.stream_id}' already has a publisher ({live.publisher.kind})",
                               code="publisher-exists")
            if live is not None and live.ending is None:
                if live.grace is not None:
                    live.grace.cancel()
                    live.grace = None
                live.publisher = publisher
                # The key this publisher presented (it may be a rotated one): what recheck compares.
                live.info = info
                live.reconnects += 1
                if live.program is None:
                    live.pipeline.discontinuity()
                # else the program's clock ran on through the host's absence (worker/guests.py).
                log.info("stream %s: publisher back within the grace period (%s)", info.stream_id, publisher.kind)
                return live
            if live is not None and live.ending is not None:
                await live.ending
            if not self.has_room(info.stream_id):
                raise Unavailable(f"this media worker ingests {self.capacity} streams already; try again later",
                                  code="media-worker-full")
            await self.leases.claim(info.stream_id)
            self.handed_off.discard(info.stream_id)
            resume: dict[str, ResumeState] = {}
            if info.status == lifecycle.LIVE:
                # Live without a pipeline here: another worker was ingesting it (a takeover).
                resume = await asyncio.to_thread(read_resume, self.storage, info.stream_id)
                if resume:
                    log.info("stream %s: continuing HLS from storage (%s)", info.stream_id,
                             ", ".join(f"{n} at msn {s.next_msn}" for n, s in resume.items()))
            live = self._start(info, resume)
            live.publisher = publisher
            self.sessions[info.stream_id] = live
            LIVE_STREAMS.inc()
            self.observers.started(live)
            return live

    def _start(self, info: StreamInfo, resume: dict[str, ResumeState]) -> IngestSession:
        loop = asyncio.get_running_loop()
        stream_id = info.stream_id
        observers = self.observers.pipeline_observers(info)
        observers.append(_ManifestWritten(loop, lambda: self.tasks.spawn(self._set_manifest(stream_id))))
        if not resume:
            # Old files of an earlier run under the same id would confuse players.
            self.storage.delete_prefix(stream_id)
        pipeline = StreamPipeline(
            stream_id, self.storage,
            max_resolution=info.max_resolution,
            encoder=self.settings.video_encoder,
            observer=ObserverGroup(observers),
            config=self.config,
            keep_segments=self.observers.keep_segments,
            loop=loop,
            resume=resume,
        )
        return IngestSession(info=info, pipeline=pipeline, on_first_media=self._go_live)

    async def disconnected(self, stream_id: str, publisher: Publisher) -> None:
        """The publisher left: end the stream unless another one arrives within the grace period."""
        live = self.sessions.get(stream_id)
        if live is None or live.publisher is not publisher:
            return
        live.publisher = None
        grace = self.settings.publisher_grace_seconds
        log.info("stream %s: publisher gone; ending in %.1f s unless it returns", stream_id, grace)
        loop = asyncio.get_running_loop()
        live.grace = loop.call_later(grace, lambda: self.tasks.spawn(self._grace_expired(live)))

    async def _grace_expired(self, live: IngestSession) -> None:
        if live.publisher is None and self.sessions.get(live.stream_id) is live:
            await self.end(live, reason="publisher-left")

    async def revoke(self, stream_id: str, reason: str) -> None:
        """Disconnect the stream's publisher at once (its key was rotated, its broadcaster banned).
        The stream waits out the grace period: the owner's publish with the new key continues it."""
        live = self.sessions.get(stream_id)
        if live is None or live.publisher is None or live.ending is not None:
            return
        publisher = live.publisher
        log.warning("stream %s: %s publisher disconnected: %s", stream_id, publisher.kind, reason)
        await self.disconnected(stream_id, publisher)
        with contextlib.suppress(Exception):
            await publisher.close()

    async def recheck(self, stream_ids: list[str] | None = None) -> None:
        """Check the publishers of these streams (default: all here) against the database: a key that
        changed or a banned broadcaster disconnects the publisher; an ended stream stops."""
        ids = [sid for sid in (self.sessions if stream_ids is None else stream_ids)
               if (live := self.sessions.get(sid)) is not None and live.publisher is not None]
        if not ids:
            return
        async with self.database.session(Claims.service()) as session:
            rows = await session.fetch(
                "SELECT s.id, s.stream_key, s.status, EXISTS ("
                "  SELECT 1 FROM nchat_stream_bans b WHERE b.user_id = s.broadcaster_id"
                "  AND (b.stream_id = s.id OR b.channel_id = s.channel_id)"
                "  AND (b.expires_at IS NULL OR b.expires_at > now())) AS banned "
                "FROM nchat_streams s WHERE s.id = ANY($1::uuid[])",
                ids,
            )
        found = {str(row["id"]): row for row in rows}
        for stream_id in ids:
            live = self.sessions.get(stream_id)
            if live is None or live.publisher is None:
                continue
            row = found.get(stream_id)
            if row is None or row["status"] in lifecycle.TERMINAL:
                await self.end_stream(stream_id, reason="ended" if row is None else row["status"])
            elif not key_matches(live.info, row["stream_key"]):
                await self.revoke(stream_id, "the stream key was rotated")
            elif row["banned"]:
                await self.revoke(stream_id, "the broadcaster is banned")

    # -- streams go live and end --------------------------------------------------------------

    async def end_stream(self, stream_id: str, reason: str = "ended") -> None:
        """Stop ingest of a stream (e.g. the broadcaster ended it through the API)."""
        live = self.sessions.get(stream_id)
        if live is not None:
            await self.end(live, reason=reason, transition=False)

    async def fail(self, stream_id: str, reason: str) -> None:
        """Stop ingest and mark the stream failed (once); other streams are untouched."""
        if stream_id in self._failing:
            return
        self._failing.add(stream_id)
        log.error("stream %s: failing: %s", stream_id, reason)
        await self.end_stream(stream_id, reason=reason)
        try:
            async with self.database.session(Claims.service()) as session:
                await lifecycle.transition(session, stream_id, lifecycle.FAILED, reason=reason)
        except NchatError as exc:
            log.info("stream %s: not marked failed (%s)", stream_id, exc.message)

    def lost(self, stream_id: str) -> None:
        """Fencing: another worker took the stream over (we were paused or cut off too long)."""
        live = self.sessions.get(stream_id)
        if live is not None:
            self.handed_off.add(stream_id)
            self.tasks.spawn(self.end(live, reason="lease-lost", transition=False))

    async def end(self, live: IngestSession, *, reason: str, transition: bool = True) -> None:
        if live.ending is not None:
            await live.ending
            return
        live.ending = asyncio.current_task()
        if live.grace is not None:
            live.grace.cancel()
        publisher, live.publisher = live.publisher, None
        if publisher is not None:
            with contextlib.suppress(Exception):
                await publisher.close()
        await close_guests(live)
        self.observers.ended(live, reason)
        handed_off = live.stream_id in self.handed_off
        if handed_off:
            # The new owner writes these playlists now: our closing ENDLIST must not reach them.
            live.pipeline.packager.storage = DiscardStorage()
        await live.pipeline.aclose()
        if self.sessions.get(live.stream_id) is live:
            del self.sessions[live.stream_id]
            LIVE_STREAMS.dec()
        if handed_off:
            log.warning("stream %s: stopped here; another worker holds its lease now", live.stream_id)
            return
        if transition and live.went_live:
            try:
                async with self.database.session(Claims.service()) as session:
                    await lifecycle.transition(session, live.stream_id, lifecycle.ENDED, reason=reason)
            except NchatError as exc:
                # Ended meanwhile through the API (or cancelled): nothing left to do.
                log.info("stream %s: not ended by media (%s)", live.stream_id, exc.message)
        await self.leases.release(live.stream_id)
        log.info("stream %s: media ended (%s)", live.stream_id, reason)

    async def _go_live(self, live: IngestSession) -> None:
        try:
            async with self.database.session(Claims.service()) as session:
                status = await session.fetchval("SELECT status FROM nchat_streams WHERE id = $1", live.stream_id)
                if status != lifecycle.LIVE:
                    kind = live.publisher.kind if live.publisher else None
                    await lifecycle.transition(session, live.stream_id, lifecycle.LIVE, reason=kind)
        except NchatError as exc:
            log.warning("stream %s: could not go live: %s", live.stream_id, exc.message)
            if exc.code == "quota-exceeded":
                # Admitted, then another stream of hers went live first: no half-started stream.
                await self.revoke(live.stream_id, exc.message)

    async def _set_manifest(self, stream_id: str) -> None:
        async with self.database.session(Claims.service()) as session:
            await session.fetchval(
                "UPDATE nchat_streams SET hls_manifest_url = $2 WHERE id = $1 RETURNING id",
                stream_id, self.manifest_url(stream_id),
            )
