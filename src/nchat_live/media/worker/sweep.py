"""The orphan sweep: take over streams whose worker died, and end those whose publisher never returns.

Only streams a worker ingested (they hold a lease) are taken over; a stream the API made live waits for
its first publisher for the scheduling grace (`NCHAT_SCHEDULE_GRACE_MINUTES`), then ends "no-publisher".

Every `orphan_sweep_seconds` the worker takes expired leases (media/worker/leases.py). A publisher
reconnecting here within the grace period continues the stream (the HLS numbering and the
recording go on from storage, after a discontinuity); otherwise the stream ends with reason
"worker-lost", its playlists are closed and the observers finish what the lost worker left
(its recording, its live files).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from ...auth import Claims
from ...config import Settings
from ...db import Database
from ...errors import NchatError, NotFound
from ...resolvers import lifecycle
from ..storage.base import MediaStorage
from . import leases
from .leases import LeaseKeeper
from .observers import StreamObservers
from .resume import end_playlists, read_resume
from .streams import StreamInfo
from .tasks import BackgroundTasks

log = logging.getLogger(__name__)


class OrphanSweep:
    def __init__(self, settings: Settings, database: Database, storage: MediaStorage, keeper: LeaseKeeper,
                 observers: StreamObservers, tasks: BackgroundTasks,
                 stream_info: Callable[[str], Awaitable[StreamInfo]], is_ingesting: Callable[[str], bool]) -> None:
        self.settings = settings
        self.database = database
        self.storage = storage
        self.keeper = keeper
        self.observers = observers
        self.tasks = tasks
        self.stream_info = stream_info
        self.is_ingesting = is_ingesting

    async def loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.orphan_sweep_seconds)
            try:
                taken = await leases.take_orphans(self.database, self.keeper.worker_id, self.keeper.ttl)
                for lease in taken:
                    await self.adopt(lease)
                await self.end_unpublished()
            except Exception:
                log.exception("media worker %s: orphan sweep failed", self.keeper.worker_id)

    async def end_unpublished(self) -> list[str]:
        """End the streams started by the API whose publisher never came within the scheduling grace.

        Until then they wait: `startStream` before the broadcaster's WHIP or RTMP publish is the normal
        order, and such a stream has no lease (no worker ingested it), so it is never taken over.
        """
        grace = self.settings.schedule_grace_minutes * 60
        ended = []
        for stream_id in await leases.unpublished_live(self.database, grace):
            if self.is_ingesting(stream_id):
                continue
            try:
                async with self.database.session(Claims.service()) as session:
                    await lifecycle.transition(session, stream_id, lifecycle.ENDED, reason="no-publisher")
            except NchatError as exc:
                log.info("stream %s: not ended (%s)", stream_id, exc.message)
                continue
            ended.append(stream_id)
            log.warning("stream %s: ended, started %d min ago and no publisher came", stream_id,
                        self.settings.schedule_grace_minutes)
        return ended

    async def adopt(self, lease: leases.Lease) -> None:
        stream_id = lease.stream_id
        self.keeper.hold(stream_id)
        if self.is_ingesting(stream_id) or stream_id in self.keeper.adopted:
            return
        try:
            info = await self.stream_info(stream_id)
        except NotFound:
            await self.keeper.release(stream_id)
            return
        if info.status not in (lifecycle.LIVE, lifecycle.ENDING):
            # Ended already, or not live yet (no publisher has come): nothing to take over.
            await self.keeper.release(stream_id)
            return
        grace = self.settings.publisher_grace_seconds
        log.warning("stream %s: taken over from a lost worker (generation %d); its publisher has %.1f s to "
                    "reconnect here", stream_id, lease.generation, grace)
        loop = asyncio.get_running_loop()
        self.keeper.adopted[stream_id] = loop.call_later(grace, lambda: self.tasks.spawn(self._expired(info)))

    async def _expired(self, info: StreamInfo) -> None:
        """No publisher came back: end the stream and let the observers finish what the lost worker left."""
        stream_id = info.stream_id
        if self.keeper.adopted.pop(stream_id, None) is None or self.is_ingesting(stream_id):
            return
        try:
            async with self.database.session(Claims.service()) as session:
                await lifecycle.transition(session, stream_id, lifecycle.ENDED, reason="worker-lost")
        except NchatError as exc:
            log.info("stream %s: not ended after takeover (%s)", stream_id, exc.message)
        renditions = sorted(await asyncio.to_thread(read_resume, self.storage, stream_id))
        await asyncio.to_thread(end_playlists, self.storage, stream_id)
        await self.observers.orphan_ended(info, renditions)
        await self.keeper.release(stream_id)
        log.warning("stream %s: ended, its worker was lost and no publisher returned", stream_id)
