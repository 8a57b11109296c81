"""Recording, DVR, thumbnails, clean-up and RTMP ingest, attached to the process's MediaManager.

`await MediaFeatures(manager).start()` registers one observer of each kind on every new pipeline,
guards the live storage (a write that fails for lack of disk ends that stream as failed) and
starts the RTMP server; `stop()` undoes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...auth import Claims
from ...errors import NchatError
from ...resolvers import lifecycle
from ..hls.packager import SegmentInfo
from ..storage.local import MediaStorage
from ..transcode.pipeline import ObserverGroup, PipelineObserver
from .dvr import DvrPlaylists
from .recording import Recorder
from .thumbnails import Thumbnailer

if TYPE_CHECKING:
    from ...db import Database
    from ..ingest.rtmp.ingest import RtmpIngest
    from ..worker.manager import MediaManager, StreamInfo

log = logging.getLogger(__name__)


class MediaUrls:
    def __init__(self, public_url: str) -> None:
        self.base = public_url.rstrip("/")

    def thumbnail(self, stream_id: str) -> str:
        return f"{self.base}/hls/{stream_id}/thumbnail.jpg"

    def recording(self, stream_id: str, path: str) -> str:
        return f"{self.base}/recordings/{stream_id}/{path}"


class GuardedStorage:
    """Live storage that reports write failures (disk full, unwritable path) once per stream."""

    def __init__(self, inner: MediaStorage, on_failure: Callable[[str, OSError], None]) -> None:
        self.inner = inner
        self.on_failure = on_failure

    def write(self, key: str, data: bytes) -> None:
        try:
            self.inner.write(key, data)
        except OSError as exc:
            self.on_failure(key.split("/", 1)[0], exc)
            raise

    def read(self, key: str) -> bytes | None:
        return self.inner.read(key)

    def delete(self, key: str) -> None:
        self.inner.delete(key)

    def delete_prefix(self, prefix: str) -> None:
        self.inner.delete_prefix(prefix)

    def local_path(self, key: str) -> Path | None:
        return self.inner.local_path(key)

    def url(self, key: str) -> str | None:
        inner = getattr(self.inner, "url", None)
        return inner(key) if callable(inner) else None


class _Cleanup(PipelineObserver):
    """Knows a stream's renditions; when its pipeline closes, schedules removal of the live files."""

    def __init__(self, features: MediaFeatures, stream_id: str) -> None:
        self.features = features
        self.stream_id = stream_id
        self.renditions: set[str] = set()

    def on_segment(self, info: SegmentInfo) -> None:
        self.renditions.add(info.rendition)

    def on_closed(self, stream_id: str) -> None:
        self.features.call_soon(self.features.remove_live_files, self.stream_id, sorted(self.renditions))


class MediaFeatures:
    def __init__(self, manager: MediaManager, *, rtmp_port: int | None = None) -> None:
        self.manager = manager
        self.settings = manager.settings
        self.urls = MediaUrls(self.settings.public_url)
        self.recorders: dict[str, Recorder] = {}
        self.rtmp: RtmpIngest | None = None
        self._rtmp_port = rtmp_port
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="thumbnails")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Future[Any]] = set()
        # Set on shutdown: delayed clean-ups run at once instead of holding the process.
        self._stopping = asyncio.Event()
        self._failing: set[str] = set()

    @property
    def db(self) -> Database:
        return self.manager.runtime.database

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.manager.storage = GuardedStorage(self.manager.storage, self._storage_failed)
        self.manager.keep_segments = self.settings.dvr_window_seconds > 0
        self.manager.observer_factories.append(self._observers)
        if self.settings.rtmp_enabled:
            from ..ingest.rtmp.ingest import RtmpIngest

            self.rtmp = RtmpIngest(
                self.manager, port=self._rtmp_port, media_timeout=self.settings.rtmp_media_timeout_seconds
            )
            try:
                await self.rtmp.start()
            except OSError as exc:
                # Another process holds the port: WHIP, HLS and the API keep working without RTMP.
                log.error("RTMP ingest not started on port %s: %s", self.rtmp.server.port, exc)
                self.rtmp = None

    async def stop(self) -> None:
        if self.rtmp is not None:
            await self.rtmp.stop()
            self.rtmp = None
        with contextlib.suppress(ValueError):
            self.manager.observer_factories.remove(self._observers)
        self._stopping.set()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
        self._pool.shutdown(wait=True)

    async def wait_idle(self) -> None:
        """Wait for scheduled work (finalizing recordings, clean-ups) to finish."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _observers(self, info: StreamInfo) -> PipelineObserver:
        observers: list[PipelineObserver] = [Thumbnailer(self, info.stream_id, self._pool)]
        if info.is_recorded and self.settings.recording_enabled:
            recorder = self.recorders[info.stream_id] = Recorder(self, info.stream_id)
            observers.append(recorder)
        if self.settings.dvr_window_seconds > 0:
            observers.append(DvrPlaylists(self, info.stream_id))
        observers.append(_Cleanup(self, info.stream_id))
        return ObserverGroup(observers)

    # -- scheduling from worker threads ---------------------------------------------------------

    def call_soon(self, func: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """Run `func(*args)` as a task on the event loop; callable from any thread."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return

        def spawn() -> None:
            task = asyncio.ensure_future(func(*args))
            self._tasks.add(task)
            task.add_done_callback(self._done)

        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(spawn)

    def _done(self, task: asyncio.Future[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("media feature task failed", exc_info=task.exception())

    # -- what observers ask for -----------------------------------------------------------------

    def _storage_failed(self, stream_id: str, exc: OSError) -> None:
        self.call_soon(self.fail_stream, stream_id, f"writing live media failed: {exc.strerror or exc}")

    async def fail_stream(self, stream_id: str, reason: str) -> None:
        """Stop ingest and mark the stream failed (once); other streams are untouched."""
        if stream_id in self._failing:
            return
        self._failing.add(stream_id)
        log.error("stream %s: failing: %s", stream_id, reason)
        await self.manager.end_stream(stream_id, reason=reason)
        try:
            async with self.db.session(Claims.service()) as session:
                await lifecycle.transition(session, stream_id, lifecycle.FAILED, reason=reason)
        except NchatError as exc:
            log.info("stream %s: not marked failed (%s)", stream_id, exc.message)

    async def set_default_thumbnail(self, stream_id: str) -> None:
        async with self.db.session(Claims.service()) as session:
            await session.fetchval(
                "UPDATE nchat_streams SET thumbnail_url = $2 WHERE id = $1 AND thumbnail_url IS NULL RETURNING id",
                stream_id, self.urls.thumbnail(stream_id),
            )

    async def remove_live_files(self, stream_id: str, renditions: list[str]) -> None:
        """Live HLS files of an ended stream go after a delay; the last thumbnail stays."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), self.settings.media_cleanup_delay_seconds)
        if stream_id in self.manager.streams or stream_id in self.manager.handed_off:
            return  # a new pipeline (here, or another worker's after a lost lease) took over this stream id
        self.recorders.pop(stream_id, None)
        storage = self.manager.storage

        def remove() -> None:
            for name in renditions:
                storage.delete_prefix(f"{stream_id}/{name}")
            for name in ("master.m3u8", "dvr.m3u8"):
                storage.delete(f"{stream_id}/{name}")

        await asyncio.to_thread(remove)
        log.info("stream %s: live files removed", stream_id)
