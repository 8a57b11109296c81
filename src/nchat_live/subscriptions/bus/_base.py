"""The event bus: domain events from committed transactions to every API process.

One `broadcaster` channel carries every event between processes (memory, postgres or redis);
inside a process the bus fans events out to listeners indexed by stream, each with a bounded
queue. Handing an event to a listener never waits: a listener whose queue is full is marked
overflowed (a counted drop) and its consumer ends, so one slow subscriber never holds back the
others.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import decimal
import json
import logging
import os
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Collection, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from broadcaster import Broadcast

from ...errors import NchatError
from ...observability import BUS_LAG
from .backends import backend_for

log = logging.getLogger(__name__)


CHANNEL = "nchat_events"
# Keys that never leave the server inside an event, whatever the emitter put in the payload.
SECRET_KEYS = frozenset({"stream_key", "streamKey"})


class SlowSubscriber(NchatError):
    """The subscriber fell further behind than its queue allows and was dropped."""

    code = "slow-subscriber"
    http_status = 503


@dataclass
class BusStats:
    """Counters for health pages and metrics: what went through the bus and what was dropped."""

    published: int = 0
    received: int = 0
    delivered: int = 0
    listeners: int = 0
    # Subscription operations that receive bus events (several may share one listener).
    subscribers: int = 0
    connections: int = 0
    # Frames written straight from the fan-out without a task switch (websocket.py's fast path).
    direct_sends: int = 0
    # Write calls to websocket transports (transport/wire.py): frames that arrive together share one.
    socket_writes: int = 0
    publish_errors: int = 0
    dropped: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {
            "published": self.published, "received": self.received, "delivered": self.delivered,
            "listeners": self.listeners, "subscribers": self.subscribers,
            "connections": self.connections, "publish_errors": self.publish_errors,
            "dropped": dict(self.dropped),
        }


@dataclass(frozen=True)
class BusEvent:
    type: str
    payload: dict[str, Any]
    origin: str = ""
    # Wall-clock time of publishing (the publisher's clock), for the bus-lag histogram.
    published_at: float | None = None

    @property
    def stream_id(self) -> str | None:
        value = self.payload.get("stream_id")
        return str(value) if value is not None else None


def _default(value: Any) -> Any:
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"event payload value of type {type(value).__name__} is not JSON-serialisable")


def scrub(value: Any) -> Any:
    """A copy without secret keys at any depth."""
    if isinstance(value, dict):
        return {k: scrub(v) for k, v in value.items() if k not in SECRET_KEYS}
    if isinstance(value, list):
        return [scrub(v) for v in value]
    return value


def encode(event_type: str, payload: dict[str, Any], origin: str) -> str:
    clean = scrub(payload)
    if event_type == "chat.deleted":
        # A deletion carries the fact, never the text that was deleted.
        clean.pop("content", None)
    return json.dumps({"t": event_type, "p": clean, "o": origin, "at": time.time()}, default=_default,
                      separators=(",", ":"))


def decode(message: str) -> BusEvent | None:
    try:
        data = json.loads(message)
        at = data.get("at")
        event = BusEvent(type=str(data["t"]), payload=dict(data["p"]), origin=str(data.get("o", "")),
                         published_at=float(at) if isinstance(at, (int, float)) else None)
    except (ValueError, KeyError, TypeError):
        log.warning("dropping a malformed bus message (%d bytes)", len(message))
        return None
    return event


class Listener:
    """One consumer's bounded view of the bus: events of some streams (or all) and some types."""

    def __init__(
        self, bus: EventBus, streams: Collection[str] | None, types: Collection[str] | None, maxsize: int
    ) -> None:
        self.bus = bus
        self.streams = frozenset(streams) if streams is not None else None
        self.types = frozenset(types) if types is not None else None
        self.queue: asyncio.Queue[BusEvent | None] = asyncio.Queue(maxsize)
        self.overflowed = False

    def offer(self, event: BusEvent) -> None:
        if self.overflowed or (self.types is not None and event.type not in self.types):
            return
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.overflowed = True
            self.bus.stats.dropped["listener_queue_full"] += 1
            # Make room for the wake-up so the consumer sees the overflow at once.
            with contextlib.suppress(asyncio.QueueEmpty):
                self.queue.get_nowait()
            self.queue.put_nowait(None)
            return
        self.bus.stats.delivered += 1

    async def get(self) -> BusEvent:
        event = await self.queue.get()
        if event is None or self.overflowed:
            raise SlowSubscriber("subscriber fell too far behind and was dropped")
        return event

    def get_nowait(self) -> BusEvent | None:
        """The next queued event, or None when the queue is empty."""
        try:
            event = self.queue.get_nowait()
        except asyncio.QueueEmpty:
            return None
        if event is None or self.overflowed:
            raise SlowSubscriber("subscriber fell too far behind and was dropped")
        return event

    async def __aiter__(self) -> AsyncIterator[BusEvent]:
        while True:
            yield await self.get()


class EventBus:
    """Publishes events to every process and fans received ones out to local listeners."""

    def __init__(self, url: str, *, database_url: str | None = None, listener_queue: int = 1000) -> None:
        self.url = url
        self.origin = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.stats = BusStats()
        self.listener_queue = listener_queue
        self._broadcast = Broadcast(backend=backend_for(url, database_url))
        self._by_stream: dict[str, set[Listener]] = {}
        self._everything: set[Listener] = set()
        self._pump: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self.backend_name = urlsplit(url).scheme

    async def start(self) -> None:
        await self._broadcast.connect()
        self._pump = asyncio.create_task(self._run(), name="nchat-bus-pump")
        ready = asyncio.create_task(self._ready.wait())
        # The pump subscribes before anything is published; its failure surfaces here.
        done, _ = await asyncio.wait({ready, self._pump}, return_when=asyncio.FIRST_COMPLETED)
        if self._pump in done:
            ready.cancel()
            self._pump.result()

    async def stop(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._pump
            self._pump = None
        with contextlib.suppress(Exception):
            await self._broadcast.disconnect()
        for listener in [*self._everything, *(x for s in self._by_stream.values() for x in s)]:
            listener.overflowed = True
            with contextlib.suppress(asyncio.QueueFull):
                listener.queue.put_nowait(None)

    async def is_ready(self) -> bool:
        return self._pump is not None and not self._pump.done()

    async def publish(self, event_type: str, payload: dict[str, Any]) -> None:
        """Send an event to every process (this one included). Matches `Database.publisher`."""
        message = encode(event_type, payload, self.origin)
        try:
            await self._broadcast.publish(CHANNEL, message)
        except Exception:
            self.stats.publish_errors += 1
            raise
        self.stats.published += 1

    async def _run(self) -> None:
        async with self._broadcast.subscribe(CHANNEL) as subscriber:
            self._ready.set()
            while True:
                item = await subscriber.get()
                event = decode(item.message)
                if event is not None:
                    self.stats.received += 1
                    self.dispatch(event)

    def dispatch(self, event: BusEvent) -> None:
        if event.published_at is not None:
            BUS_LAG.observe(max(0.0, time.time() - event.published_at))
        for listener in self._everything:
            listener.offer(event)
        stream_id = event.stream_id
        if stream_id is not None:
            for listener in self._by_stream.get(stream_id, ()):
                listener.offer(event)

    @contextlib.contextmanager
    def listen(
        self, *, streams: Collection[str] | None = None, types: Collection[str] | None = None,
        maxsize: int | None = None,
    ) -> Iterator[Listener]:
        """Register a listener for the block's duration. `streams=None` means every stream."""
        listener = Listener(self, streams, types, maxsize or self.listener_queue)
        if listener.streams is None:
            self._everything.add(listener)
        else:
            for stream_id in listener.streams:
                self._by_stream.setdefault(stream_id, set()).add(listener)
        self.stats.listeners += 1
        try:
            yield listener
        finally:
            self.stats.listeners -= 1
            if listener.streams is None:
                self._everything.discard(listener)
            else:
                for stream_id in listener.streams:
                    group = self._by_stream.get(stream_id)
                    if group is not None:
                        group.discard(listener)
                        if not group:
                            del self._by_stream[stream_id]
