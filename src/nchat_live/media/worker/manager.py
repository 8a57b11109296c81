"""The media side of a process: live streams, their publishers, pipelines, lifecycle and metrics.

Ingests (WHIP here, RTMP in `media/rtmp/`) use three calls::

    live = await runtime.media.publisher_connected(stream_id, publisher)   # Conflict if one is active
    live.pipeline.push_video(frame); live.media_arrived()                  # first media: stream goes live
    await runtime.media.publisher_disconnected(stream_id, publisher)       # grace period, then ended

A publisher that returns within `settings.publisher_grace_seconds` continues the same pipeline
(EXT-X-DISCONTINUITY in the playlists); otherwise the pipeline closes and the stream ends.
Other features attach observers to every new pipeline with `observer_factories`.

Scale-out (media/leases.py): the manager is one media worker. It claims a lease on every stream it
ingests and renews them every `lease_ttl/3`; a stream whose lease it lost (another worker took it
over after a pause) stops here without being ended. Its orphan sweep takes over streams whose
worker died: a publisher reconnecting here within the grace period continues the stream (the HLS
numbering and the recording go on from storage, after a discontinuity); otherwise the stream ends
with reason "worker-lost" and its recording is finalised from the dead worker's journal.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ...auth import Claims
from ...errors import Conflict, NchatError, NotFound, Unavailable
from ...ids import is_canonical_uuid
from ...resolvers import lifecycle
from ..hls.packager import PackagingConfig, StreamPackager
from ..ingest.throttle import KeyThrottle
from ..storage.local import MediaStorage
from ..storage.select import open_storage
from ..transcode.pipeline import ObserverGroup, PipelineObserver, StreamPipeline
from . import leases
from .resume import ResumeState, end_playlists, read_resume

if TYPE_CHECKING:
    from ...runtime import Runtime

log = logging.getLogger(__name__)


class Publisher(Protocol):
    """An ingest connection feeding one stream."""

    kind: str  # "whip" | "rtmp"

    async def stats(self) -> dict[str, Any]:
        """Transport figures for metrics: any of upload_bitrate_kbps, packet_loss_percent, jitter_ms, rtt_ms."""
        ...

    async def close(self) -> None: ...


@dataclass(frozen=True)
class StreamInfo:
    """What ingest and observers need to know about a stream, read once with service rights."""

    stream_id: str
    channel_id: str
    status: str
    max_resolution: str
    is_recorded: bool
    stream_key: str


@dataclass
class LiveStream:
    """One stream this process is ingesting (or holding through a publisher's grace period)."""

    info: StreamInfo
    pipeline: StreamPipeline
    manager: MediaManager
    publisher: Publisher | None = None
    went_live: bool = False
    grace: asyncio.TimerHandle | None = None
    ending: asyncio.Task[None] | None = None
    metrics: asyncio.Task[None] | None = None
    reconnects: int = 0
    _live_task: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def stream_id(self) -> str:
        return self.info.stream_id

    def media_arrived(self) -> None:
        """Call on every frame from the event loop (cheap): the first one takes the stream live."""
        if not self.went_live:
            self.went_live = True
            self._live_task = asyncio.create_task(self.manager._go_live(self))


ObserverFactory = Callable[[StreamInfo], PipelineObserver | None]


class _Discard:
    """Storage that drops writes: a pipeline closing after its stream moved to another worker."""

    def write(self, key: str, data: bytes) -> None:
        pass

    def read(self, key: str) -> bytes | None:
        return None

    def delete(self, key: str) -> None:
        pass

    def delete_prefix(self, prefix: str) -> None:
        pass

    def local_path(self, key: str) -> Any:
        return None


class MediaManager:
    """Owns live streams of this process: `runtime.media`."""

    def __init__(self, runtime: Runtime, storage: MediaStorage | None = None) -> None:
        self.runtime = runtime
        self.settings = runtime.settings
        self.storage: MediaStorage = storage or open_storage(self.settings)
        self.streams: dict[str, LiveStream] = {}
        self.observer_factories: list[ObserverFactory] = []
        self.config = PackagingConfig()
        # Segments leaving the live window stay on disk (the DVR playlist trims them itself).
        self.keep_segments = False
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()
        # Leases (module docstring): this worker's identity, the streams it holds (and since when),
        # streams taken over and waiting for their publisher, and streams another worker took from it.
        self.worker_id = self.settings.worker_id or f"media-{uuid.uuid4().hex[:12]}"
        self.worker_url = (self.settings.worker_url or self.settings.public_url).rstrip("/")
        self.lease_ttl = self.settings.lease_ttl_seconds
        self.leased: dict[str, float] = {}
        self.adopted: dict[str, asyncio.TimerHandle] = {}
        self.handed_off: set[str] = set()
        self._loops: list[asyncio.Task[None]] = []
        # Admission (issue 13): streams at once, and failed key attempts per client address.
        self.capacity = max(1, self.settings.media_capacity)
        self.key_throttle = KeyThrottle(self.settings.ingest_key_failures, self.settings.ingest_key_window_seconds,
                                        self.settings.ingest_key_failure_delay_seconds)

    async def start(self) -> None:
        await leases.register_worker(self.runtime.database, self.worker_id, self.worker_url, self.capacity)
        self._loops.append(asyncio.create_task(self._renew_loop(), name="media-lease-renew"))
        if self.settings.ingest_key_check_seconds > 0:
            self._loops.append(asyncio.create_task(self._key_check_loop(), name="media-key-check"))
        if self.settings.orphan_sweep_seconds > 0:
            self._loops.append(asyncio.create_task(self._sweep_loop(), name="media-orphan-sweep"))
        log.info("media worker %s (%s): HLS under %s, encoder %s", self.worker_id, self.worker_url,
                 self.settings.storage_url or self.settings.media_dir, self.settings.video_encoder)

    async def stop(self) -> None:
        for loop_task in self._loops:
            loop_task.cancel()
        self._loops.clear()
        for live in list(self.streams.values()):
            await self._end(live, reason="server-shutdown")
        for stream_id, timer in list(self.adopted.items()):
            # Taken over but never continued here: another worker may take it at once.
            timer.cancel()
            await self._release(stream_id)
        self.adopted.clear()
        for task in list(self._tasks):
            task.cancel()
        self._tasks.clear()
        try:
            await leases.unregister_worker(self.runtime.database, self.worker_id)
        except Exception as exc:
            log.warning("media worker %s: not unregistered: %s", self.worker_id, exc)

    # -- lookups ------------------------------------------------------------------------------

    def packager(self, stream_id: str) -> StreamPackager | None:
        live = self.streams.get(stream_id)
        return live.pipeline.packager if live is not None else None

    def manifest_url(self, stream_id: str) -> str:
        return f"{self.settings.public_url.rstrip('/')}/hls/{stream_id}/master.m3u8"

    async def stream_info(self, stream_id: str) -> StreamInfo:
        if not is_canonical_uuid(stream_id):
            raise NotFound(f"stream '{stream_id}' not found", code="stream-not-found")
        async with self.runtime.database.session(Claims.service()) as session:
            row = await session.fetchrow(
                "SELECT id, channel_id, status, max_resolution, is_recorded, stream_key FROM nchat_streams "
                "WHERE id = $1",
                stream_id,
            )
        if row is None:
            raise NotFound(f"stream '{stream_id}' not found", code="stream-not-found")
        return StreamInfo(
            stream_id=str(row["id"]), channel_id=str(row["channel_id"]), status=row["status"],
            max_resolution=row["max_resolution"], is_recorded=row["is_recorded"], stream_key=row["stream_key"],
        )

    @staticmethod
    def key_matches(info: StreamInfo, presented: str | None) -> bool:
        return presented is not None and hmac.compare_digest(info.stream_key.encode(), presented.encode())

    # -- publishers -----------------------------------------------------------------------------

    async def publisher_connected(self, info: StreamInfo, publisher: Publisher) -> LiveStream:
        """Attach a publisher: a new pipeline, or the same one (with a discontinuity) within the grace period."""
        if info.status in lifecycle.TERMINAL:
            raise Conflict(f"stream '{info.stream_id}' is {info.status}; create a new stream to go live again",
                           code="stream-ended")
        # A banned broadcaster, or one at her live-stream quota, is refused before any media (migration 0013).
        async with self.runtime.database.session(Claims.service()) as session:
            await session.fetchval("SELECT nchat.publish_admission($1)", info.stream_id)
        async with self._lock:
            live = self.streams.get(info.stream_id)
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
                live.pipeline.discontinuity()
                log.info("stream %s: publisher back within the grace period (%s)", info.stream_id, publisher.kind)
                return live
            if live is not None and live.ending is not None:
                await live.ending
            if not self.has_room(info.stream_id):
                raise Unavailable(f"this media worker ingests {self.capacity} streams already; try again later",
                                  code="media-worker-full")
            await self._claim(info.stream_id)
            resume: dict[str, ResumeState] = {}
            if info.status == lifecycle.LIVE:
                # Live without a pipeline here: another worker was ingesting it (a takeover).
                resume = await asyncio.to_thread(read_resume, self.storage, info.stream_id)
                if resume:
                    log.info("stream %s: continuing HLS from storage (%s)", info.stream_id,
                             ", ".join(f"{n} at msn {s.next_msn}" for n, s in resume.items()))
            live = self._new_live(info, resume)
            live.publisher = publisher
            self.streams[info.stream_id] = live
            return live

    def has_room(self, stream_id: str) -> bool:
        """Whether a publish of `stream_id` fits: it is held here already, or a slot is free."""
        if stream_id in self.streams or stream_id in self.adopted:
            return True
        return len(self.streams) + len(self.adopted) < self.capacity

    async def revoke(self, stream_id: str, reason: str) -> None:
        """Disconnect the stream's publisher at once (its key was rotated, its broadcaster banned).
        The stream waits out the grace period: the owner's publish with the new key continues it."""
        live = self.streams.get(stream_id)
        if live is None or live.publisher is None or live.ending is not None:
            return
        publisher = live.publisher
        log.warning("stream %s: %s publisher disconnected: %s", stream_id, publisher.kind, reason)
        await self.publisher_disconnected(stream_id, publisher)
        with contextlib.suppress(Exception):
            await publisher.close()

    async def recheck(self, stream_ids: list[str] | None = None) -> None:
        """Check the publishers of these streams (default: all here) against the database: a key that
        changed or a banned broadcaster disconnects the publisher; an ended stream stops."""
        ids = [sid for sid in (self.streams if stream_ids is None else stream_ids)
               if (live := self.streams.get(sid)) is not None and live.publisher is not None]
        if not ids:
            return
        async with self.runtime.database.session(Claims.service()) as session:
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
            live = self.streams.get(stream_id)
            if live is None or live.publisher is None:
                continue
            row = found.get(stream_id)
            if row is None or row["status"] in lifecycle.TERMINAL:
                await self.end_stream(stream_id, reason="ended" if row is None else row["status"])
            elif not self.key_matches(live.info, row["stream_key"]):
                await self.revoke(stream_id, "the stream key was rotated")
            elif row["banned"]:
                await self.revoke(stream_id, "the broadcaster is banned")

    async def _key_check_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.ingest_key_check_seconds)
            try:
                await self.recheck()
            except Exception as exc:
                log.warning("media worker %s: publishers not rechecked: %s", self.worker_id, exc)

    async def _claim(self, stream_id: str) -> None:
        timer = self.adopted.pop(stream_id, None)
        if timer is not None:
            timer.cancel()
        lease = await leases.claim(self.runtime.database, stream_id, self.worker_id, self.lease_ttl)
        if lease is None:
            raise Conflict(f"stream '{stream_id}' is being ingested by another media worker",
                           code="stream-owned-elsewhere")
        self.leased[stream_id] = time.monotonic()
        self.handed_off.discard(stream_id)

    def _new_live(self, info: StreamInfo, resume: dict[str, ResumeState] | None = None) -> LiveStream:
        loop = asyncio.get_running_loop()
        observers: list[PipelineObserver] = []
        for factory in self.observer_factories:
            try:
                observer = factory(info)
            except Exception:
                log.exception("observer factory failed for %s", info.stream_id)
                continue
            if observer is not None:
                observers.append(observer)
        stream_id = info.stream_id

        class _Master(PipelineObserver):
            def on_master(inner, _: str) -> None:
                loop.call_soon_threadsafe(self._spawn, self._set_manifest(stream_id))

        observers.append(_Master())
        if not resume:
            # Old files of an earlier run under the same id would confuse players.
            self.storage.delete_prefix(stream_id)
        pipeline = StreamPipeline(
            stream_id, self.storage,
            max_resolution=info.max_resolution,
            encoder=self.settings.video_encoder,
            observer=ObserverGroup(observers),
            config=self.config,
            keep_segments=self.keep_segments,
            loop=loop,
            resume=resume,
        )
        live = LiveStream(info=info, pipeline=pipeline, manager=self)
        live.metrics = asyncio.create_task(self._metrics_loop(live))
        return live

    async def publisher_disconnected(self, stream_id: str, publisher: Publisher) -> None:
        """The publisher left: end the stream unless another one arrives within the grace period."""
        live = self.streams.get(stream_id)
        if live is None or live.publisher is not publisher:
            return
        live.publisher = None
        grace = self.settings.publisher_grace_seconds
        log.info("stream %s: publisher gone; ending in %.1f s unless it returns", stream_id, grace)
        loop = asyncio.get_running_loop()
        live.grace = loop.call_later(grace, lambda: self._spawn(self._grace_expired(live)))

    async def _grace_expired(self, live: LiveStream) -> None:
        if live.publisher is None and self.streams.get(live.stream_id) is live:
            await self._end(live, reason="publisher-left")

    async def end_stream(self, stream_id: str, reason: str = "ended") -> None:
        """Stop ingest of a stream (e.g. the broadcaster ended it through the API)."""
        live = self.streams.get(stream_id)
        if live is not None:
            await self._end(live, reason=reason, transition=False)

    async def _end(self, live: LiveStream, *, reason: str, transition: bool = True) -> None:
        if live.ending is not None:
            await live.ending
            return
        live.ending = asyncio.current_task()  # type: ignore[assignment]
        if live.grace is not None:
            live.grace.cancel()
        publisher, live.publisher = live.publisher, None
        if publisher is not None:
            with contextlib.suppress(Exception):
                await publisher.close()
        if live.metrics is not None:
            live.metrics.cancel()
        handed_off = live.stream_id in self.handed_off
        if handed_off:
            # The new owner writes these playlists now: our closing ENDLIST must not reach them.
            live.pipeline.packager.storage = _Discard()
        await live.pipeline.aclose()
        if self.streams.get(live.stream_id) is live:
            del self.streams[live.stream_id]
        if handed_off:
            log.warning("stream %s: stopped here; another worker holds its lease now", live.stream_id)
            return
        if transition and live.went_live:
            try:
                async with self.runtime.database.session(Claims.service()) as session:
                    await lifecycle.transition(session, live.stream_id, lifecycle.ENDED, reason=reason)
            except NchatError as exc:
                # Ended meanwhile through the API (or cancelled): nothing left to do.
                log.info("stream %s: not ended by media (%s)", live.stream_id, exc.message)
        await self._release(live.stream_id)
        log.info("stream %s: media ended (%s)", live.stream_id, reason)

    async def _go_live(self, live: LiveStream) -> None:
        try:
            async with self.runtime.database.session(Claims.service()) as session:
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
        async with self.runtime.database.session(Claims.service()) as session:
            await session.fetchval(
                "UPDATE nchat_streams SET hls_manifest_url = $2 WHERE id = $1 RETURNING id",
                stream_id, self.manifest_url(stream_id),
            )

    async def _release(self, stream_id: str) -> None:
        if self.leased.pop(stream_id, None) is None:
            return
        try:
            await leases.release(self.runtime.database, stream_id, self.worker_id)
        except Exception as exc:
            # It expires by itself; a sweeping worker then finds the stream ended and lets it go.
            log.warning("stream %s: lease not released: %s", stream_id, exc)

    # -- leases ---------------------------------------------------------------------------------

    async def _renew_loop(self) -> None:
        while True:
            await asyncio.sleep(self.lease_ttl / 3)
            asked_at = time.monotonic()
            try:
                held = await leases.renew(self.runtime.database, self.worker_id, self.lease_ttl)
            except Exception as exc:
                # Media keeps flowing through a database outage; the next renewal says what we still own.
                log.warning("media worker %s: leases not renewed: %s", self.worker_id, exc)
                continue
            for stream_id, since in list(self.leased.items()):
                if stream_id not in held and since < asked_at:
                    self._lost(stream_id)

    def _lost(self, stream_id: str) -> None:
        """Fencing: another worker took the stream over (we were paused or cut off too long)."""
        self.leased.pop(stream_id, None)
        timer = self.adopted.pop(stream_id, None)
        if timer is not None:
            timer.cancel()
        live = self.streams.get(stream_id)
        if live is not None:
            self.handed_off.add(stream_id)
            self._spawn(self._end(live, reason="lease-lost", transition=False))

    async def _sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.orphan_sweep_seconds)
            try:
                taken = await leases.take_orphans(self.runtime.database, self.worker_id, self.lease_ttl)
                for lease in taken:
                    await self._adopt(lease)
            except Exception:
                log.exception("media worker %s: orphan sweep failed", self.worker_id)

    async def _adopt(self, lease: leases.Lease) -> None:
        stream_id = lease.stream_id
        self.leased[stream_id] = time.monotonic()
        if stream_id in self.streams or stream_id in self.adopted:
            return
        try:
            info = await self.stream_info(stream_id)
        except NotFound:
            await self._release(stream_id)
            return
        if info.status not in (lifecycle.LIVE, lifecycle.ENDING):
            # Ended already, or not live yet (no publisher has come): nothing to take over.
            await self._release(stream_id)
            return
        grace = self.settings.publisher_grace_seconds
        log.warning("stream %s: taken over from a lost worker (generation %d); its publisher has %.1f s to "
                    "reconnect here", stream_id, lease.generation, grace)
        loop = asyncio.get_running_loop()
        self.adopted[stream_id] = loop.call_later(grace, lambda: self._spawn(self._orphan_expired(info)))

    async def _orphan_expired(self, info: StreamInfo) -> None:
        """No publisher came back: end the stream and finalise what the lost worker recorded."""
        stream_id = info.stream_id
        if self.adopted.pop(stream_id, None) is None or stream_id in self.streams:
            return
        try:
            async with self.runtime.database.session(Claims.service()) as session:
                await lifecycle.transition(session, stream_id, lifecycle.ENDED, reason="worker-lost")
        except NchatError as exc:
            log.info("stream %s: not ended after takeover (%s)", stream_id, exc.message)
        renditions = sorted(await asyncio.to_thread(read_resume, self.storage, stream_id))
        await asyncio.to_thread(end_playlists, self.storage, stream_id)
        features = self.runtime.media_features
        if features is not None:
            if info.is_recorded and self.settings.recording_enabled:
                from ..extras.recording import Recorder

                try:
                    await Recorder(features, stream_id).finalize()
                except Exception:
                    log.exception("stream %s: recording not finalised after takeover", stream_id)
            self._spawn(features.remove_live_files(stream_id, renditions))
        await self._release(stream_id)
        log.warning("stream %s: ended, its worker was lost and no publisher returned", stream_id)

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("media task failed", exc_info=task.exception())

    # -- metrics --------------------------------------------------------------------------------

    async def _metrics_loop(self, live: LiveStream) -> None:
        from ..extras.metrics import collect_and_store

        interval = self.settings.media_metrics_seconds
        previous: dict[str, Any] = {"at": time.monotonic(), "frames": 0, "dropped": 0}
        while True:
            await asyncio.sleep(interval)
            if not live.went_live:
                continue
            try:
                await collect_and_store(self, live, previous)
            except Exception:
                log.exception("stream %s: metrics failed", live.stream_id)
