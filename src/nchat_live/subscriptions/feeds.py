"""A subscriber's feed of one stream's bus events, filtered by what its claims may read.

The listener is registered before the first access check, so nothing published between the
check and the subscription is lost; every event is checked again (cached, per visibility key)
because membership can change while a subscription runs. Payloads are never trusted for
access: only the stream id is taken from them, and Postgres answers under the subscriber's role.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from ..auth import Claims
from ..errors import NotFound
from .access import parse_stream_id
from .bus import BusEvent, Listener

# Context.extra key: a callback a feed calls once its bus listener is registered and access allowed.
FEED_READY = "nchat.feed_ready"

if TYPE_CHECKING:
    from ..graphql.context import Context
    from .realtime import Realtime


def _announce(ctx: Context) -> None:
    """Tell whoever runs the operation (websocket.py, fanout.py) that events now reach it."""
    ready = ctx.extra.get(FEED_READY)
    if ready is not None:
        ready()


def realtime_of(ctx: Context) -> Realtime:
    realtime = ctx.runtime.realtime
    assert realtime is not None, "runtime not started"
    return realtime


class StreamFeed:
    def __init__(self, realtime: Realtime, claims: Claims, stream_id: str | None, listener: Listener) -> None:
        self.realtime = realtime
        self.claims = claims
        self.stream_id = stream_id
        self.listener = listener

    async def allowed(self, stream_id: str) -> bool:
        access = self.realtime.access
        hit = access.cached(self.claims, stream_id)
        return hit if hit is not None else await access.can_read(self.claims, stream_id)

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
            if stream_id is not None and self.realtime.access.cached(self.claims, stream_id):
                return event

    async def __aiter__(self) -> AsyncIterator[BusEvent]:
        while True:
            event = await self.next()
            assert event is not None
            yield event


@asynccontextmanager
async def stream_feed(ctx: Context, stream_id: object, types: Collection[str]) -> AsyncIterator[StreamFeed]:
    """Events of `types` on one stream the caller may read; not-found when it may not."""
    realtime = realtime_of(ctx)
    sid = parse_stream_id(stream_id)
    with realtime.bus.listen(streams=[sid], types=types) as listener:
        if not await realtime.access.can_read(ctx.claims, sid):
            # The same answer as for a stream that does not exist: existence is not leaked.
            raise NotFound(f"stream '{sid}' not found", code="stream-not-found")
        _announce(ctx)
        yield StreamFeed(realtime, ctx.claims, sid, listener)


@asynccontextmanager
async def any_stream_feed(ctx: Context, types: Collection[str]) -> AsyncIterator[StreamFeed]:
    """Events of `types` on every stream, each still checked against the caller's access."""
    realtime = realtime_of(ctx)
    with realtime.bus.listen(streams=None, types=types) as listener:
        _announce(ctx)
        yield StreamFeed(realtime, ctx.claims, None, listener)
