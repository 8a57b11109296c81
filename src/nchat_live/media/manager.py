"""The media side of a process: live streams, their publishers, pipelines, lifecycle and metrics.

Ingests (WHIP here, RTMP in `media/rtmp/`) use three calls::

    live = await runtime.media.publisher_connected(stream_id, publisher)   # Conflict if one is active
    live.pipeline.push_video(frame); live.media_arrived()                  # first media: stream goes live
    await runtime.media.publisher_disconnected(stream_id, publisher)       # grace period, then ended

A publisher that returns within `settings.publisher_grace_seconds` continues the same pipeline
(EXT-X-DISCONTINUITY in the playlists); otherwise the pipeline closes and the stream ends.
Other features attach observers to every new pipeline with `observer_factories`.
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

import av

from ..auth import Claims
from ..errors import Conflict, NchatError, NotFound
from ..resolvers import lifecycle
from .packager import PackagingConfig, SegmentInfo, StreamPackager
from .pipeline import PipelineObserver, StreamPipeline
from .storage import LocalStorage, MediaStorage

if TYPE_CHECKING:
    from ..runtime import Runtime

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


def is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


class _FanOut(PipelineObserver):
    def __init__(self, observers: list[PipelineObserver]) -> None:
        self.observers = observers

    def _each(self, name: str, *args: Any) -> None:
        for observer in self.observers:
            try:
                getattr(observer, name)(*args)
            except Exception:
                log.exception("pipeline observer %s.%s failed", type(observer).__name__, name)

    def on_segment(self, info: SegmentInfo) -> None:
        self._each("on_segment", info)

    def on_keyframe(self, frame: av.VideoFrame, at_seconds: float) -> None:
        self._each("on_keyframe", frame, at_seconds)

    def on_master(self, stream_id: str) -> None:
        self._each("on_master", stream_id)

    def on_closed(self, stream_id: str) -> None:
        self._each("on_closed", stream_id)


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


class MediaManager:
    """Owns live streams of this process: `runtime.media`."""

    def __init__(self, runtime: Runtime, storage: MediaStorage | None = None) -> None:
        self.runtime = runtime
        self.settings = runtime.settings
        self.storage: MediaStorage = storage or LocalStorage(self.settings.media_dir)
        self.streams: dict[str, LiveStream] = {}
        self.observer_factories: list[ObserverFactory] = []
        self.config = PackagingConfig()
        # Segments leaving the live window stay on disk (the DVR playlist trims them itself).
        self.keep_segments = False
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        log.info("media: HLS under %s, encoder %s", self.settings.media_dir, self.settings.video_encoder)

    async def stop(self) -> None:
        for live in list(self.streams.values()):
            await self._end(live, reason="server-shutdown")
        for task in list(self._tasks):
            task.cancel()
        self._tasks.clear()

    # -- lookups ------------------------------------------------------------------------------

    def packager(self, stream_id: str) -> StreamPackager | None:
        live = self.streams.get(stream_id)
        return live.pipeline.packager if live is not None else None

    def manifest_url(self, stream_id: str) -> str:
        return f"{self.settings.public_url.rstrip('/')}/hls/{stream_id}/master.m3u8"

    async def stream_info(self, stream_id: str) -> StreamInfo:
        if not is_uuid(stream_id):
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
                live.reconnects += 1
                live.pipeline.discontinuity()
                log.info("stream %s: publisher back within the grace period (%s)", info.stream_id, publisher.kind)
                return live
            if live is not None and live.ending is not None:
                await live.ending
            live = self._new_live(info)
            live.publisher = publisher
            self.streams[info.stream_id] = live
            return live

    def _new_live(self, info: StreamInfo) -> LiveStream:
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
        # Old files of an earlier run under the same id would confuse players.
        self.storage.delete_prefix(stream_id)
        pipeline = StreamPipeline(
            stream_id, self.storage,
            max_resolution=info.max_resolution,
            encoder=self.settings.video_encoder,
            observer=_FanOut(observers),
            config=self.config,
            keep_segments=self.keep_segments,
            loop=loop,
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
        await live.pipeline.aclose()
        if self.streams.get(live.stream_id) is live:
            del self.streams[live.stream_id]
        if transition and live.went_live:
            try:
                async with self.runtime.database.session(Claims.service()) as session:
                    await lifecycle.transition(session, live.stream_id, lifecycle.ENDED, reason=reason)
            except NchatError as exc:
                # Ended meanwhile through the API (or cancelled): nothing left to do.
                log.info("stream %s: not ended by media (%s)", live.stream_id, exc.message)
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

    async def _set_manifest(self, stream_id: str) -> None:
        async with self.runtime.database.session(Claims.service()) as session:
            await session.fetchval(
                "UPDATE nchat_streams SET hls_manifest_url = $2 WHERE id = $1 RETURNING id",
                stream_id, self.manifest_url(stream_id),
            )

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
        from .metrics import collect_and_store

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
