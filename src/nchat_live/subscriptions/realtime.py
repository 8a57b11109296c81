"""The realtime part of a runtime: bus, access checks, live queries and presence, started together."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..graphql.hasura.live_queries import LiveQueryEngine
from .access import StreamAccess
from .bus import EventBus
from .presence import Presence
from .transport.fanout import SharedFeeds

if TYPE_CHECKING:
    from ..config import Settings
    from ..runtime import Runtime


@dataclass
class Limits:
    """Per-connection limits of the websocket transport."""

    send_queue: int = 512  # frames waiting for a slow client before it is dropped
    max_operations: int = 200  # concurrent operations on one socket
    max_message_bytes: int = 256 * 1024
    init_timeout_s: float = 10.0
    keepalive_s: float = 10.0
    close_timeout_s: float = 1.0
    drain_timeout_s: float = 10.0  # a client that sends but does not read is dropped after this

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(send_queue=settings.ws_send_queue, max_operations=settings.ws_max_operations,
                   max_message_bytes=settings.ws_max_message_bytes, keepalive_s=settings.ws_keepalive_seconds)


@dataclass
class Realtime:
    bus: EventBus
    access: StreamAccess
    live: LiveQueryEngine
    limits: Limits = field(default_factory=Limits)
    presence: Presence = field(default_factory=Presence)
    feeds: SharedFeeds = field(init=False)

    def __post_init__(self) -> None:
        self.feeds = SharedFeeds(self.bus.stats)

    async def stop(self) -> None:
        # Leaves of closed viewer sessions write and publish: let them finish first.
        await self.presence.drain()
        await self.feeds.stop()
        with contextlib.suppress(Exception):
            await self.live.stop()
        with contextlib.suppress(Exception):
            await self.bus.stop()


async def start_realtime(runtime: Runtime) -> Realtime:
    """Start the bus and live queries, and route the database's after-commit events onto it."""
    database = runtime.database
    bus = EventBus(runtime.settings.bus_url, database_url=database.url)
    await bus.start()
    live = LiveQueryEngine(database)
    try:
        await live.start()
    except BaseException:
        await bus.stop()
        raise
    realtime = Realtime(bus=bus, access=StreamAccess(database), live=live,
                        limits=Limits.from_settings(runtime.settings))
    database.publisher = bus.publish
    return realtime


async def stop_realtime(runtime: Runtime, realtime: Realtime) -> None:
    if runtime.db is not None and runtime.db.publisher == realtime.bus.publish:
        runtime.db.publisher = None
    await realtime.stop()
