"""A broadcaster backend on Redis pub/sub.

broadcaster's own redis backend starts listening when its first subscribe is only under way;
with current redis-py the listen loop then finds no subscription yet, ends, and never resumes,
so no event is ever received. This one subscribes first and then reads the pub/sub connection,
re-subscribing after a lost connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from broadcaster import BroadcastBackend, Event
from redis import asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

log = logging.getLogger(__name__)


class RedisBackend(BroadcastBackend):
    def __init__(self, url: str) -> None:
        self._url = url
        self._conn: aioredis.Redis = aioredis.Redis.from_url(url)
        self._pubsub: Any = self._conn.pubsub(ignore_subscribe_messages=True)
        self._channels: set[str] = set()
        self._queue: asyncio.Queue[Event] = asyncio.Queue()
        self._reader: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()

    async def connect(self) -> None:
        await self._conn.ping()
        self._reader = asyncio.create_task(self._read(), name="nchat-bus-redis")

    async def disconnect(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        with contextlib.suppress(Exception):
            await self._pubsub.aclose()
        with contextlib.suppress(Exception):
            await self._conn.aclose()

    async def subscribe(self, channel: str) -> None:
        self._channels.add(channel)
        await self._pubsub.subscribe(channel)
        self._subscribed.set()

    async def unsubscribe(self, channel: str) -> None:
        self._channels.discard(channel)
        await self._pubsub.unsubscribe(channel)

    async def publish(self, channel: str, message: Any) -> None:
        await self._conn.publish(channel, message)

    async def next_published(self) -> Event:
        return await self._queue.get()

    async def _read(self) -> None:
        await self._subscribed.wait()
        delay = 0.2
        while True:
            try:
                message = await self._pubsub.get_message(timeout=1.0)
                delay = 0.2
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                log.warning("bus redis connection lost (%s); re-subscribing in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                with contextlib.suppress(RedisConnectionError, RedisTimeoutError, OSError):
                    if self._channels:
                        await self._pubsub.subscribe(*self._channels)
                continue
            if message is None or message.get("type") != "message":
                continue
            channel, data = message["channel"], message["data"]
            self._queue.put_nowait(Event(
                channel=channel.decode() if isinstance(channel, bytes) else str(channel),
                message=data.decode() if isinstance(data, bytes) else str(data),
            ))
