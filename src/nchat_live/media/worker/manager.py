"""The media side of a process, one media worker: `runtime.media`.

Ingests (WHIP in `media/ingest/whip.py`, RTMP in `media/ingest/rtmp/`) use three calls::

    session = await runtime.media.publisher_connected(info, publisher)   # Conflict if one is active
    session.sink().push_video(frame); session.media_arrived()           # first media: stream goes live
    await runtime.media.publisher_disconnected(stream_id, publisher)    # grace period, then ended

Guest speakers (an admitted guest token, WHIP only) use `guest_connected(stream_id, guest_id,
publisher)`, push into `session.sink(guest_id)` and leave with `guest_disconnected`; `refresh_program`
applies the broadcaster's layout, focus, mutes and removals (guests.py).

The work is done by focused collaborators this façade builds and starts: `Publishers`
(publishers.py: sessions, pipelines, grace periods, key rechecks), `Guests` (guests.py: guest
publishers and the composed program), `LeaseKeeper` (leases.py:
claim, renewal, fencing) and `OrphanSweep` (sweep.py: takeover of streams whose worker died).
Recording, DVR, thumbnails, quality metrics and clean-up are `StreamObserver`s (observers.py)
attached from outside with `attach`; the worker never imports them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from typing import Any

from ...config import Settings
from ...db import Database
from ..hls.packager import PackagingConfig, StreamPackager
from ..storage.base import MediaStorage
from ..storage.guarded import GuardedStorage
from ..storage.select import open_storage
from . import leases
from .guests import Guests
from .leases import LeaseKeeper
from .observers import StreamObserver, StreamObservers
from .publishers import Publishers, key_matches
from .streams import IngestSession, Publisher, StreamInfo, read_stream_info
from .sweep import OrphanSweep
from .tasks import BackgroundTasks
from .throttle import KeyThrottle

log = logging.getLogger(__name__)


class MediaManager:
    """Owns the streams this process ingests."""

    def __init__(self, settings: Settings, database: Database, storage: MediaStorage | None = None) -> None:
        self.settings = settings
        self.database = database
        self.worker_id = settings.worker_id or f"media-{uuid.uuid4().hex[:12]}"
        self.worker_url = (settings.worker_url or settings.public_url).rstrip("/")
        self.lease_ttl = settings.lease_ttl_seconds
        # Admission (issue 13): streams at once, and failed key attempts per client address.
        self.capacity = max(1, settings.media_capacity)
        self.key_throttle = KeyThrottle(settings.ingest_key_failures, settings.ingest_key_window_seconds,
                                        settings.ingest_key_failure_delay_seconds)
        # A write of live media that fails (disk full) fails that stream; the others go on.
        self.storage: MediaStorage = GuardedStorage(storage or open_storage(settings), self._storage_failed)
        self.observers = StreamObservers()
        self.tasks = BackgroundTasks("media")
        self.leases = LeaseKeeper(database, self.worker_id, self.lease_ttl, on_lost=self._lost)
        self.publishers = Publishers(settings, database, self.storage, self.leases, self.observers, self.tasks,
                                     self.capacity)
        self.guests = Guests(settings, database, self.publishers.sessions, self.tasks)
        self.sweep = OrphanSweep(settings, database, self.storage, self.leases, self.observers, self.tasks,
                                 self.stream_info, lambda stream_id: stream_id in self.streams)
        self._loops: list[asyncio.Task[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None

    def attach(self, observer: StreamObserver) -> None:
        """Attach recording, DVR, metrics...: called for every stream from now on."""
        self.observers.attach(observer)

    def detach(self, observer: StreamObserver) -> None:
        self.observers.detach(observer)

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        await leases.register_worker(self.database, self.worker_id, self.worker_url, self.capacity)
        self._loops.append(asyncio.create_task(self.leases.renew_loop(), name="media-lease-renew"))
        if self.settings.ingest_key_check_seconds > 0:
            self._loops.append(asyncio.create_task(
                self._recheck_loop(self.settings.ingest_key_check_seconds), name="media-key-check"))
        if self.settings.orphan_sweep_seconds > 0:
            self._loops.append(asyncio.create_task(self.sweep.loop(), name="media-orphan-sweep"))
        log.info("media worker %s (%s): HLS under %s, encoder %s", self.worker_id, self.worker_url,
                 self.settings.storage_url or self.settings.media_dir, self.settings.video_encoder)

    async def stop(self) -> None:
        for loop_task in self._loops:
            loop_task.cancel()
        self._loops.clear()
        for live in list(self.streams.values()):
            await self.publishers.end(live, reason="server-shutdown")
        await self.leases.release_adopted()
        self.tasks.cancel_all()
        try:
            await leases.unregister_worker(self.database, self.worker_id)
        except Exception as exc:
            log.warning("media worker %s: not unregistered: %s", self.worker_id, exc)

    # -- lookups ------------------------------------------------------------------------------

    @property
    def streams(self) -> dict[str, IngestSession]:
        return self.publishers.sessions

    @property
    def handed_off(self) -> set[str]:
        """Streams another worker took over from this one."""
        return self.publishers.handed_off

    @property
    def config(self) -> PackagingConfig:
        return self.publishers.config

    @config.setter
    def config(self, value: PackagingConfig) -> None:
        self.publishers.config = value

    def packager(self, stream_id: str) -> StreamPackager | None:
        live = self.streams.get(stream_id)
        return live.pipeline.packager if live is not None else None

    def manifest_url(self, stream_id: str) -> str:
        return self.publishers.manifest_url(stream_id)

    async def stream_info(self, stream_id: str) -> StreamInfo:
        return await read_stream_info(self.database, stream_id)

    @staticmethod
    def key_matches(info: StreamInfo, presented: str | None) -> bool:
        return key_matches(info, presented)

    def has_room(self, stream_id: str) -> bool:
        return self.publishers.has_room(stream_id)

    # -- publishers (publishers.py) -------------------------------------------------------------

    async def publisher_connected(self, info: StreamInfo, publisher: Publisher) -> IngestSession:
        return await self.publishers.connected(info, publisher)

    async def publisher_disconnected(self, stream_id: str, publisher: Publisher) -> None:
        await self.publishers.disconnected(stream_id, publisher)

    async def revoke(self, stream_id: str, reason: str) -> None:
        await self.publishers.revoke(stream_id, reason)

    async def recheck(self, stream_ids: list[str] | None = None) -> None:
        await self.publishers.recheck(stream_ids)

    async def _recheck_loop(self, interval: float) -> None:
        """Should an event be lost: keys and bans of publishers, and who is on each program."""
        while True:
            await asyncio.sleep(interval)
            try:
                await self.publishers.recheck()
                await self.guests.recheck()
            except Exception as exc:
                log.warning("media worker %s: publishers not rechecked: %s", self.worker_id, exc)

    # -- guests (guests.py) ---------------------------------------------------------------------

    async def guest_connected(self, stream_id: str, guest_id: str, publisher: Publisher) -> IngestSession:
        return await self.guests.connected(stream_id, guest_id, publisher)

    async def guest_disconnected(self, stream_id: str, publisher: Publisher) -> None:
        await self.guests.disconnected(stream_id, publisher)

    async def refresh_program(self, stream_id: str) -> None:
        await self.guests.refresh(stream_id)

    async def end_stream(self, stream_id: str, reason: str = "ended") -> None:
        await self.publishers.end_stream(stream_id, reason)

    async def fail_stream(self, stream_id: str, reason: str) -> None:
        """Stop ingest and mark the stream failed (a write of its media or recording failed)."""
        await self.publishers.fail(stream_id, reason)

    def call_soon(self, coro_factory: Any, *args: Any) -> None:
        """Run `coro_factory(*args)` as a task of the worker; callable from any thread."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(lambda: self.tasks.spawn(coro_factory(*args)))

    def _storage_failed(self, stream_id: str, exc: OSError) -> None:
        self.call_soon(self.fail_stream, stream_id, f"writing live media failed: {exc.strerror or exc}")

    def _lost(self, stream_id: str) -> None:
        self.publishers.lost(stream_id)
