"""Everything a process owns while it runs, started and stopped in one order."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TypeVar

from .auth import Authenticator
from .config import Settings
from .db import Database
from .db.embedded import EmbeddedPostgres
from .graphql.hasura.live_queries import LiveQueryEngine
from .graphql.schema import RoleSchemas
from .media.extras.archive import Archiver
from .media.extras.highlights import HighlightSuggester
from .media.extras.metrics import QualitySampler
from .media.extras.simulcast import Simulcast
from .media.extras.stream_extras import StreamExtras
from .media.ingest.rtmp.ingest import RtmpIngest, start_rtmp
from .media.worker.control import follow_status
from .media.worker.manager import MediaManager
from .resolvers import audience, simulcast
from .resolvers.limits import apply_limits
from .resolvers.scheduler import StreamScheduler
from .subscriptions.access import StreamAccess
from .subscriptions.bus import BusStats, EventBus
from .subscriptions.presence import Presence
from .subscriptions.transport.fanout import SharedFeeds
from .subscriptions.transport.limits import Limits
from .subscriptions.transport.wire import WriteBatcher

log = logging.getLogger(__name__)

PROCESS_ROLES = ("all", "api", "media")
T = TypeVar("T")


def _running(part: T | None, what: str) -> T:
    assert part is not None, f"{what} is not running in this process (not started, or not served by its role)"
    return part


class Runtime:
    """Everything a process of one role runs, started in `start` and undone in reverse by `stop`.

    Every role: the database, the event bus and stream access checks (media routes are served by
    every role). API ("all", "api"): the GraphQL schemas, live queries, the websocket transport's
    shared feeds, presence and the scheduler. Media ("all", "media", when media is enabled): the
    media manager, its extras and the status follower. The accessors (`bus`, `graphql`, ...) are
    typed and fail loudly when a part is asked of a process that does not run it.

    The app's lifespan starts it when the CLI has not already.
    """

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        self.auth = Authenticator(
            self.settings.jwt_secret, self.settings.admin_secret, self.settings.unauthorized_role
        )
        self.role = "all"
        self.started = False
        self.embedded: EmbeddedPostgres | None = None
        self.db: Database | None = None
        # Every role: subscriptions/bus (media workers publish stream and quality events too) and
        # subscriptions/access (HLS access checks).
        self._bus: EventBus | None = None
        self._access: StreamAccess | None = None
        # API roles: graphql/ (one schema per role, from the catalog once migrations ran), the
        # Hasura live queries, the websocket transport's shared feeds and limits, presence, and
        # resolvers/scheduler (reminders, expiry of stale streams and silent viewers).
        self._graphql: RoleSchemas | None = None
        self._live: LiveQueryEngine | None = None
        self._shared_feeds: SharedFeeds | None = None
        self._presence: Presence | None = None
        self.ws_limits = Limits.from_settings(self.settings)
        self.ws_writes = WriteBatcher(self.ws_limits.batch_delay_s)
        self.scheduler: StreamScheduler | None = None
        # Media roles with settings.media_enabled: the media worker (WHIP ingest, transcoding, HLS)
        # and its RTMP server.
        self.media: MediaManager | None = None
        # Attached to the media worker from outside: recording, DVR, thumbnails, clean-up; quality samples.
        self.media_extras: StreamExtras | None = None
        self.quality: QualitySampler | None = None
        self.simulcast: Simulcast | None = None
        self.archiver: Archiver | None = None
        self.rtmp: RtmpIngest | None = None
        self._media_follower: asyncio.Task[None] | None = None
        # Suggests highlights when a recording this worker finalised is ready (issue 18).
        self.highlights: HighlightSuggester | None = None

    def _live_stream_ids(self) -> list[str]:
        return list(self.media.streams) if self.media is not None else []

    @property
    def serves_api(self) -> bool:
        return self.role in ("all", "api")

    @property
    def serves_media(self) -> bool:
        return self.settings.media_enabled and self.role in ("all", "media")

    @property
    def database(self) -> Database:
        return _running(self.db, "the database")

    @property
    def bus(self) -> EventBus:
        return _running(self._bus, "the event bus")

    @property
    def bus_stats(self) -> BusStats:
        return self.bus.stats

    @property
    def access(self) -> StreamAccess:
        """Who may read a stream's events and media (cached answers of Postgres)."""
        return _running(self._access, "stream access")

    @property
    def graphql(self) -> RoleSchemas:
        return _running(self._graphql, "GraphQL")

    @property
    def live(self) -> LiveQueryEngine:
        """The live-query engine of the Hasura subscription root fields."""
        return _running(self._live, "the live-query engine")

    @property
    def shared_feeds(self) -> SharedFeeds:
        """Event subscriptions shared by many sockets (subscriptions/transport/fanout.py)."""
        return _running(self._shared_feeds, "the websocket transport")

    @property
    def presence(self) -> Presence:
        return _running(self._presence, "presence")

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
            database = await self.open_database(migrate=migrate)
            audience.configure(self.settings)  # how viewer sessions keep addresses and find countries
            simulcast.configure(self.settings)  # whether simulcast destinations may be internal addresses
            await apply_limits(database, self.settings)  # the quotas the rules of migration 0012 read
            if self.serves_api:
                self._graphql = await RoleSchemas.build(self)
            self._bus = EventBus(self.settings.bus_url, database_url=database.url)
            await self._bus.start()
            # After-commit events of the database go out on the bus.
            database.publisher = self._bus.publish
            self._access = StreamAccess(database)
            if self.serves_api:
                self._live = LiveQueryEngine(database, bus=self._bus,
                                             min_interval_s=self.settings.live_query_min_interval_ms / 1000)
                await self._live.start()
                self._presence = Presence()
                self._shared_feeds = SharedFeeds(self._bus.stats, self.ws_writes)
            if self.serves_media:
                self.media = MediaManager(self.settings, database)
                self.media_extras = StreamExtras(self.media)
                self.media_extras.start()
                self.media.attach(self.media_extras)
                self.quality = QualitySampler(database, self.settings.media_metrics_seconds)
                self.media.attach(self.quality)
                self.simulcast = Simulcast(self.media)  # pushes to the streams' RTMP destinations
                self.media.attach(self.simulcast)
                if self.settings.archive_url:  # old recordings and metrics to cold storage, on a schedule
                    self.archiver = Archiver(self.settings, database)
                    self.archiver.start()
                await self.media.start()
                self.rtmp = await start_rtmp(self.media)
                self._media_follower = asyncio.create_task(follow_status(self))
                self.highlights = HighlightSuggester(self._bus, database, self.settings, self._live_stream_ids)
                self.highlights.start()
            if self.serves_api:
                self.scheduler = StreamScheduler.from_settings(database, self.settings)
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
        if self.highlights is not None:
            await self.highlights.stop()
            self.highlights = None
        if self._media_follower is not None:
            self._media_follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._media_follower
            self._media_follower = None
        if self.media is not None:
            # Ending live streams closes their segments, so recordings stay valid.
            async with _timed("media"):
                await self.media.stop()
        if self.archiver is not None:
            await self.archiver.stop()
            self.archiver = None
        if self.simulcast is not None:
            async with _timed("simulcast"):
                await self.simulcast.stop()
            self.simulcast = None
        if self.rtmp is not None:
            async with _timed("rtmp"):
                await self.rtmp.stop()
            self.rtmp = None
        if self.quality is not None:
            self.quality.stop()
            self.quality = None
        if self.media_extras is not None:
            async with _timed("media extras"):
                await self.media_extras.stop()
        self.media_extras = None
        self.media = None
        if self._presence is not None:
            # Leaves of closed viewer sessions write and publish: let them finish first.
            async with _timed("presence"):
                await self._presence.drain()
            self._presence = None
        if self._shared_feeds is not None:
            async with _timed("shared feeds"):
                await self._shared_feeds.stop()
            self._shared_feeds = None
        if self._live is not None:
            async with _timed("live queries"):
                with contextlib.suppress(Exception):
                    await self._live.stop()
            self._live = None
        self._access = None
        if self._bus is not None:
            if self.db is not None and self.db.publisher == self._bus.publish:
                self.db.publisher = None
            async with _timed("event bus"):
                with contextlib.suppress(Exception):
                    await self._bus.stop()
            self._bus = None
        self._graphql = None
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
