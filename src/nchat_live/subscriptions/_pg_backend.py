"""A broadcaster backend on PostgreSQL LISTEN/NOTIFY that carries payloads of any size.

broadcaster's own postgres backend publishes on its LISTEN connection (concurrent publishes then
collide on one asyncpg connection) and fails on payloads over NOTIFY's 8000-byte limit. Here
publishing goes through a small pool, a large payload is stored in `nchat.bus_payloads` and only
its id travels ("@<id>"), and a lost LISTEN connection is re-opened.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import asyncpg
from broadcaster._backends.base import BroadcastBackend
from broadcaster._base import Event

log = logging.getLogger(__name__)

# NOTIFY rejects payloads of 8000 bytes or more; leave room for the channel name and encoding.
NOTIFY_LIMIT = 7900
SWEEP_EVERY_S = 60.0
KEEP_SPILLED = "5 minutes"


class PostgresBackend(BroadcastBackend):
    def __init__(self, url: str) -> None:
        self._url = url
        self._channels: set[str] = set()
        self._queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self._pool: asyncpg.Pool | None = None
        self._listen: asyncpg.Connection | None = None
        self._reconnect: asyncio.Task[None] | None = None
        self._last_sweep = 0.0
        self._closing = False

    async def connect(self) -> None:
        self._pool = await asyncpg.create_pool(self._url, min_size=1, max_size=4, timeout=5)
        await self._open_listen()

    async def _open_listen(self) -> None:
        conn = await asyncpg.connect(self._url, timeout=5)
        conn.add_termination_listener(self._lost)
        for channel in self._channels:
            await conn.add_listener(channel, self._on_notify)
        self._listen = conn

    def _lost(self, _conn: Any) -> None:
        if self._closing or (self._reconnect is not None and not self._reconnect.done()):
            return
        log.warning("bus LISTEN connection lost; reconnecting")
        self._reconnect = asyncio.get_running_loop().create_task(self._reopen())

    async def _reopen(self) -> None:
        delay = 0.2
        while not self._closing:
            try:
                await self._open_listen()
                log.info("bus LISTEN connection restored")
                return
            except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
                log.warning("bus reconnect failed (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def disconnect(self) -> None:
        self._closing = True
        if self._reconnect is not None:
            self._reconnect.cancel()
        if self._listen is not None:
            with contextlib.suppress(Exception):
                await self._listen.close()
        if self._pool is not None:
            with contextlib.suppress(Exception):
                await self._pool.close()

    async def subscribe(self, channel: str) -> None:
        self._channels.add(channel)
        if self._listen is not None:
            await self._listen.add_listener(channel, self._on_notify)

    async def unsubscribe(self, channel: str) -> None:
        self._channels.discard(channel)
        if self._listen is not None and not self._listen.is_closed():
            await self._listen.remove_listener(channel, self._on_notify)

    async def publish(self, channel: str, message: Any) -> None:
        assert self._pool is not None, "backend not connected"
        text = str(message)
        if len(text.encode()) < NOTIFY_LIMIT:
            await self._pool.execute("SELECT pg_notify($1, $2)", channel, text)
            return
        # Insert and notify in one statement (one transaction): the NOTIFY is delivered at commit,
        # when the row is already visible to the readers it wakes.
        await self._pool.execute(
            "WITH stored AS (INSERT INTO nchat.bus_payloads (body) VALUES ($2) RETURNING id) "
            "SELECT pg_notify($1, '@' || id) FROM stored",
            channel, text,
        )
        now = time.monotonic()
        if now - self._last_sweep > SWEEP_EVERY_S:
            self._last_sweep = now
            await self._pool.execute(
                f"DELETE FROM nchat.bus_payloads WHERE created_at < now() - interval '{KEEP_SPILLED}'"
            )

    def _on_notify(self, _conn: Any, _pid: int, channel: str, payload: str) -> None:
        self._queue.put_nowait((channel, payload))

    async def next_published(self) -> Event:
        while True:
            channel, payload = await self._queue.get()
            if not payload.startswith("@"):
                return Event(channel=channel, message=payload)
            assert self._pool is not None
            try:
                body = await self._pool.fetchval("SELECT body FROM nchat.bus_payloads WHERE id = $1",
                                                 int(payload[1:]))
            except (ValueError, asyncpg.PostgresError, OSError) as exc:
                log.warning("cannot load spilled bus payload %s: %s", payload, exc)
                continue
            if body is None:
                log.warning("spilled bus payload %s is gone (swept before it was read)", payload)
                continue
            return Event(channel=channel, message=body)
