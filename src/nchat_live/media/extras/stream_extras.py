"""Recording, DVR, thumbnails and clean-up of live files: one `StreamObserver` attached to the worker.

The runtime builds it and attaches it (`manager.attach(StreamExtras(manager))`); the worker calls
its hooks and never imports it. For every new pipeline it adds a thumbnailer, a recorder (when the
stream is recorded), the DVR playlists (when `dvr_window_seconds` > 0) and a clean-up observer
that removes the live files some time after the stream ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ...auth import Claims
from ...config import Settings
from ...db import Database
from ..hls.packager import PackagingConfig, SegmentInfo
from ..storage.base import MediaStorage
from ..transcode.pipeline import ObserverGroup, PipelineObserver
from ..worker.manager import MediaManager
from ..worker.observers import StreamObserver
from ..worker.streams import StreamInfo
from .dvr import DvrPlaylists
from .recording import Recorder
from .thumbnails import Thumbnailer

log = logging.getLogger(__name__)


class MediaUrls:
    def __init__(self, public_url: str) -> None:
        self.base = public_url.rstrip("/")

    def thumbnail(self, stream_id: str) -> str:
        return f"{self.base}/hls/{stream_id}/thumbnail.jpg"

    def recording(self, stream_id: str, path: str) -> str:
        return f"{self.base}/recordings/{stream_id}/{path}"


class _Cleanup(PipelineObserver):
    """Knows a stream's renditions; when its pipeline closes, schedules removal of the live files."""

    def __init__(self, extras: StreamExtras, stream_id: str) -> None:
        self.extras = extras
        self.stream_id = stream_id
        self.renditions: set[str] = set()

    def on_segment(self, info: SegmentInfo) -> None:
        self.renditions.add(info.rendition)

    def on_closed(self, stream_id: str) -> None:
        self.extras.call_soon(self.extras.remove_live_files, self.stream_id, sorted(self.renditions))


class StreamExtras(StreamObserver):
    def __init__(self, manager: MediaManager) -> None:
        self.manager = manager
        self.settings: Settings = manager.settings
        self.db: Database = manager.database
        self.urls = MediaUrls(self.settings.public_url)
        self.keeps_segments = self.settings.dvr_window_seconds > 0
        # The recorder of each stream recorded here (clips of a live stream read its segments).
        self.recorders: dict[str, Recorder] = {}
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="thumbnails")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Future[Any]] = set()
        # Set on shutdown: delayed clean-ups run at once instead of holding the process.
        self._stopping = asyncio.Event()

    @property
    def storage(self) -> MediaStorage:
        return self.manager.storage

    @property
    def config(self) -> PackagingConfig:
        return self.manager.config

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()

    async def stop(self) -> None:
        self._stopping.set()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
        self._pool.shutdown(wait=True)

    async def wait_idle(self) -> None:
        """Wait for scheduled work (finalizing recordings, clean-ups) to finish."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # -- StreamObserver -------------------------------------------------------------------------

    def pipeline_observer(self, info: StreamInfo) -> PipelineObserver:
        observers: list[PipelineObserver] = [Thumbnailer(self, info.stream_id, self._pool)]
        if info.is_recorded and self.settings.recording_enabled:
            recorder = self.recorders[info.stream_id] = Recorder(self, info.stream_id)
            observers.append(recorder)
        if self.settings.dvr_window_seconds > 0:
            observers.append(DvrPlaylists(self, info.stream_id))
        observers.append(_Cleanup(self, info.stream_id))
        return ObserverGroup(observers)

    async def on_orphan_ended(self, info: StreamInfo, renditions: list[str]) -> None:
        """Finalise what the lost worker recorded, and remove its live files after the delay."""
        if info.is_recorded and self.settings.recording_enabled:
            try:
                await Recorder(self, info.stream_id).finalize()
            except Exception:
                log.exception("stream %s: recording not finalised after takeover", info.stream_id)
        self.call_soon(self.remove_live_files, info.stream_id, renditions)

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
            log.error("media extras task failed", exc_info=task.exception())

    # -- what observers ask for -----------------------------------------------------------------

    async def fail_stream(self, stream_id: str, reason: str) -> None:
        await self.manager.fail_stream(stream_id, reason)

    def handed_off(self, stream_id: str) -> bool:
        """Whether another worker owns the stream now (it goes on recording it there)."""
        return stream_id in self.manager.handed_off

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
        storage = self.storage

        def remove() -> None:
            for name in renditions:
                storage.delete_prefix(f"{stream_id}/{name}")
            for name in ("master.m3u8", "dvr.m3u8"):
                storage.delete(f"{stream_id}/{name}")

        await asyncio.to_thread(remove)
        log.info("stream %s: live files removed", stream_id)
