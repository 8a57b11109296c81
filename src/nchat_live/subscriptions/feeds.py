"""A subscriber's feed of one stream's bus events, filtered by what its claims may read.

The listener is registered before the first access check, so nothing published between the
check and the subscription is lost; every event is checked again (cached, per visibility key)
because membership can change while a subscription runs. Payloads are never trusted for
access: only the stream id is taken from them, and Postgres answers under the subscriber's role.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Collection
from contextlib import asynccontextmanager

from ..auth import Claims
from ..errors import NotFound
from .access import StreamAccess, parse_stream_id
from .bus import BusEvent, EventBus, Listener


class StreamFeed:
    def __init__(self, access: StreamAccess, claims: Claims, stream_id: str | None, listener: Listener) -> None:
        self.access = access
        self.claims = claims
        self.stream_id = stream_id
        self.listener = listener

    async def allowed(self, stream_id: str) -> bool:
        hit = self.access.cached(self.claims, stream_id)
        return hit if hit is not None else await self.access.can_read(self.claims, stream_id)

    async def next(self, within: float | None = None) -> BusEvent | None:
        """The next readable event; None once `within` seconds pass without one."""
        deadline = None if within is None else time.monotonic() + within
        while True:
            event = self.listener.get_nowait()
            if event is None:
                if deadline is None:
                    event = await self.listener.get()
                else:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return None
                    try:
                        event = await asyncio.wait_for(self.listener.get(), remaining)
                    except TimeoutError:
                        return None
            stream_id = event.stream_id
            if stream_id is not None and await self.allowed(stream_id):
                return event

    def ready(self) -> BusEvent | None:
        """An already-queued event without waiting (access still checked against the cache only)."""
        while True:
            event = self.listener.get_nowait()
            if event is None:
                return None
            stream_id = event.stream_id
            if stream_id is not None and self.access.cached(self.claims, stream_id):
                return event

    async def __aiter__(self) -> AsyncIterator[BusEvent]:
        while True:
            event = await self.next()
            assert event is not None
            yield event


@asynccontextmanager
async def stream_feed(
    bus: EventBus, access: StreamAccess, claims: Claims, stream_id: object, types: Collection[str],
    *, on_ready: Callable[[], None] | None = None,
) -> AsyncIterator[StreamFeed]:
    """Events of `types` on one stream `claims` may read; not-found when they may not.

    `on_ready` is called once the listener is registered and access allowed: whoever runs the
    operation (the websocket transport) learns that events now reach it.
    """
    sid = parse_stream_id(stream_id)
    with bus.listen(streams=[sid], types=types) as listener:
        if not await access.can_read(claims, sid):
            # The same answer as for a stream that does not exist: existence is not leaked.
            raise NotFound(f"stream '{sid}' not found", code="stream-not-found")
        if on_ready is not None:
            on_ready()
        yield StreamFeed(access, claims, sid, listener)


@asynccontextmanager
async def any_stream_feed(
    bus: EventBus, access: StreamAccess, claims: Claims, types: Collection[str],
    *, on_ready: Callable[[], None] | None = None,
) -> AsyncIterator[StreamFeed]:
    """Events of `types` on every stream, each still checked against the caller's access."""
    with bus.listen(streams=None, types=types) as listener:
        if on_ready is not None:
            on_ready()
        yield StreamFeed(access, claims, None, listener)
