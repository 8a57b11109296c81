"""An in-process backend: what is published in this process is received by this process alone."""

from __future__ import annotations

import asyncio
from typing import Any

from broadcaster import BroadcastBackend, Event


class MemoryBackend(BroadcastBackend):
    def __init__(self, url: str = "memory://") -> None:
        self._subscribed: set[str] = set()
        self._published: asyncio.Queue[Event] = asyncio.Queue()

    async def connect(self) -> None:
        self._published = asyncio.Queue()

    async def disconnect(self) -> None:
        pass

    async def subscribe(self, channel: str) -> None:
        self._subscribed.add(channel)

    async def unsubscribe(self, channel: str) -> None:
        self._subscribed.discard(channel)

    async def publish(self, channel: str, message: Any) -> None:
        await self._published.put(Event(channel=channel, message=str(message)))

    async def next_published(self) -> Event:
        while True:
            event = await self._published.get()
            if event.channel in self._subscribed:
                return event
