"""Everything a process owns while it runs, started and stopped in one order."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from .auth import Authenticator
from .config import Settings
from .db import Database
from .db.embedded import EmbeddedPostgres

if TYPE_CHECKING:
    from .graphql.hasura.live_queries import LiveQueries
    from .graphql.registry import SchemaRegistry
    from .media.extras.features import MediaFeatures
    from .media.worker.manager import MediaManager
    from .resolvers.scheduler import StreamScheduler
    from .subscriptions.bus import BusStats, EventBus
    from .subscriptions.realtime import Realtime

log = logging.getLogger(__name__)

PROCESS_ROLES = ("all", "api", "media")


class Runtime:
    """Settings, database, authentication, and (as they start) the bus and media.

    The app's lifespan starts it when the CLI has not already; `stop` undoes `start` in reverse.
    """

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        self.auth = Authenticator(
            self.settings.jwt_secret, self.settings.admin_secret, self.settings.unauthorized_role
        )
        self.embedded: EmbeddedPostgres | None = None
        self.db: Database | None = None
        # graphql/: one schema per role, generated from the catalog once migrations ran.
        self.graphql: SchemaRegistry | None = None
        # subscriptions/: the event bus (and what hangs off it), set up by start().
        self.realtime: Realtime | None = None
        # resolvers/scheduler: reminders, expiry of stale streams and silent viewers.
        self.scheduler: StreamScheduler | None = None
        # media/: WHIP/RTMP ingest, transcoding and HLS, when settings.media_enabled.
        self.media: MediaManager | None = None
        # Recording, DVR, thumbnails, clean-up and RTMP ingest on top of media.
        self.media_features: MediaFeatures | None = None
        self.role = "all"
        self._media_follower: asyncio.Task[None] | None = None
        self.started = False

    @property
    def database(self) -> Database:
        assert self.db is not None, "runtime not started"
        return self.db

    @property
    def bus(self) -> EventBus:
        assert self.realtime is not None, "runtime not started"
        return self.realtime.bus

    @property
    def bus_stats(self) -> BusStats:
        return self.bus.stats

    @property
    def live(self) -> LiveQueries | None:
        """The live-query engine for Hasura subscription root fields; None until started."""
        return self.realtime.live if self.realtime is not None else None

    @property
    def data_location(self) -> str:
        if self.embedded is not None:
            return str(Path(self.embedded.data_dir).resolve() / "pgdata")
        return self.database.url.split("@")[-1]

    async def open_database(self, *, migrate: bool = True) -> Database:
        """The database alone (embedded server if needed, migrations): enough for the CLI's commands."""
        if self.db is not None:
            return self.db
        url = self.settings.database_url
        if not url:
            self.embedded = EmbeddedPostgres(self.settings.data_dir)
            url = await asyncio.to_thread(self.embedded.start)
        self.db = Database(url, pool_size=self.settings.db_pool_size)
        if migrate:
            applied = await self.db.migrate()
            if applied:
                log.info("applied migrations %s", applied)
        return self.db

    async def start(self, *, migrate: bool = True, role: str = "all") -> None:
        """Start what a process of `role` runs: "all" (serve), "api" or "media" (a media worker)."""
        if self.started:
            return
        if role not in PROCESS_ROLES:
            raise ValueError(f"process role '{role}' is not one of {', '.join(PROCESS_ROLES)}")
        self.role = role
        try:
            await self.open_database(migrate=migrate)
            assert self.db is not None
            from .resolvers.limits import apply_limits

            await apply_limits(self.db, self.settings)  # the quotas the rules of migration 0012 read
            if role in ("all", "api"):
                from .graphql.registry import SchemaRegistry

                self.graphql = await SchemaRegistry.build(self)
            # Media workers publish events too (stream started, quality), so every role has the bus.
            from .subscriptions.realtime import start_realtime

            self.realtime = await start_realtime(self)
            if self.settings.media_enabled and role in ("all", "media"):
                from .media.worker.manager import MediaManager

                self.media = MediaManager(self)
                await self.media.start()
                from .media.extras.features import MediaFeatures

                self.media_features = MediaFeatures(self.media)
                await self.media_features.start()
                from .media.worker.control import follow_status

                self._media_follower = asyncio.create_task(follow_status(self))
            if role in ("all", "api"):
                from .resolvers.scheduler import StreamScheduler

                self.scheduler = StreamScheduler.from_settings(self.db, self.settings)
                self.scheduler.start()
            self.started = True
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Undo `start` in reverse order; each step is timed in the log (shutdown must stay quick)."""
        if self.scheduler is not None:
            async with _timed("scheduler"):
                await self.scheduler.stop()
            self.scheduler = None
        if self._media_follower is not None:
            self._media_follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._media_follower
            self._media_follower = None
        if self.media is not None:
            # Ending live streams closes their segments, so recordings stay valid.
            async with _timed("media"):
                await self.media.stop()
        if self.media_features is not None:
            async with _timed("media features"):
                await self.media_features.stop()
        self.media_features = None
        self.media = None
        if self.realtime is not None:
            from .subscriptions.realtime import stop_realtime

            async with _timed("realtime"):
                await stop_realtime(self, self.realtime)
            self.realtime = None
        if self.db is not None:
            async with _timed("database pool"):
                await self.db.close()
            self.db = None
        if self.embedded is not None:
            async with _timed("embedded postgres"):
                await asyncio.to_thread(self.embedded.stop)
            self.embedded = None
        self.started = False


@asynccontextmanager
async def _timed(what: str) -> AsyncIterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        log.info("stopped %s in %.2fs", what, time.perf_counter() - started)
