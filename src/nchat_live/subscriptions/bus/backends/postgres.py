"""A broadcaster backend on PostgreSQL LISTEN/NOTIFY that carries payloads of any size and loses
nothing across a lost LISTEN connection.

broadcaster's own postgres backend publishes on its LISTEN connection (concurrent publishes then
collide on one asyncpg connection) and fails on payloads over NOTIFY's 8000-byte limit. Here
publishing goes through a small pool, and every event is written to `nchat.bus_payloads` (kept a
few minutes) in the same statement as its NOTIFY: a small one travels as "<id>:<body>", a large one
as "@<id>" and is read back. When a LISTEN connection is lost (a database restart), notifications
sent meanwhile never arrive; on reconnect the backend replays the log after the last id it saw.
Ids come from a sequence, so they can commit out of order; the replay starts a margin below the
highest id seen and skips ids already delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from typing import Any

import asyncpg
from broadcaster import BroadcastBackend, Event

from ....db.errors import database_unavailable

log = logging.getLogger(__name__)

# NOTIFY rejects payloads of 8000 bytes or more; leave room for the channel name and encoding.
NOTIFY_LIMIT = 7900
SWEEP_EVERY_S = 60.0
KEEP_LOGGED = "5 minutes"
# Publishes in flight may commit out of id order: replay this many ids below the highest one seen.
REPLAY_MARGIN = 1000
SEEN_WINDOW = 20000
# How long a publish waits for a database that went away (a restart) before its event is given up.
PUBLISH_RETRY_S = 15.0

# Logged and notified in one statement (one transaction): the NOTIFY is delivered at commit, when the
# row is already visible to any process that replays or reads it.
_NOTIFY = "SELECT pg_notify($1, CASE WHEN $3 THEN id || ':' || $2 ELSE '@' || id END) FROM stored"
PUBLISH = f"WITH stored AS (INSERT INTO nchat.bus_payloads (channel, body) VALUES ($1, $2) RETURNING id) {_NOTIFY}"
# A try after one whose answer was lost: the body (which carries its origin and send time) is logged at
# most once. The window is the log's: anything older is swept, and a retry gives up well before.
PUBLISH_AGAIN = (
    "WITH stored AS (INSERT INTO nchat.bus_payloads (channel, body) SELECT $1, $2 WHERE NOT EXISTS ("
    f"SELECT 1 FROM nchat.bus_payloads WHERE created_at > now() - interval '{KEEP_LOGGED}' "
    f"AND channel = $1 AND body = $2) RETURNING id) {_NOTIFY}"
)


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
        self._high = 0
        self._seen: set[int] = set()
        self._seen_order: deque[int] = deque()
        self.replayed = 0

    async def connect(self) -> None:
        self._pool = await asyncpg.create_pool(self._url, min_size=1, max_size=4, timeout=5)
        # Start from now: history before this process started is not ours to deliver.
        self._high = int(await self._pool.fetchval("SELECT coalesce(max(id), 0) FROM nchat.bus_payloads"))
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
                replayed = await self._replay()
                log.info("bus LISTEN connection restored; %d missed events replayed", replayed)
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
        """Log and notify `message`; while the database is away (a restart), wait for it and send again.

        A publish follows a committed write, whose event must not be lost because the database
        restarted between the two: it is sent again for up to PUBLISH_RETRY_S. A try whose answer was
        lost may have committed, so a second try logs and notifies only if the first did not.
        """
        assert self._pool is not None, "backend not connected"
        text = str(message)
        small = len(text.encode()) + 24 < NOTIFY_LIMIT
        deadline = time.monotonic() + PUBLISH_RETRY_S
        delay = 0.1
        statement = PUBLISH
        while True:
            try:
                await self._pool.execute(statement, channel, text, small)
                break
            except Exception as exc:
                if not database_unavailable(exc) or time.monotonic() + delay > deadline:
                    raise
                log.warning("bus publish failed (%s); sending again in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                statement = PUBLISH_AGAIN
        now = time.monotonic()
        if now - self._last_sweep > SWEEP_EVERY_S:
            self._last_sweep = now
            try:
                await self._pool.execute(
                    f"DELETE FROM nchat.bus_payloads WHERE created_at < now() - interval '{KEEP_LOGGED}'"
                )
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
                # The event is out; the sweep runs again on a later publish.
                log.warning("bus log sweep failed: %s", exc)

    def _on_notify(self, _conn: Any, _pid: int, channel: str, payload: str) -> None:
        self._queue.put_nowait((channel, payload))

    def _first_time(self, event_id: int) -> bool:
        """True once per id: notifications and replays may both bring the same event."""
        if event_id in self._seen:
            return False
        self._seen.add(event_id)
        self._seen_order.append(event_id)
        if len(self._seen_order) > SEEN_WINDOW:
            self._seen.discard(self._seen_order.popleft())
        self._high = max(self._high, event_id)
        return True

    async def _replay(self) -> int:
        """Queue logged events of our channels that we have not delivered (missed while disconnected)."""
        assert self._pool is not None
        rows = await self._pool.fetch(
            "SELECT id, channel, body FROM nchat.bus_payloads WHERE id > $1 AND channel = ANY($2::text[]) "
            "ORDER BY id",
            max(0, self._high - REPLAY_MARGIN), sorted(self._channels),
        )
        count = 0
        for row in rows:
            if row["id"] not in self._seen:
                self._queue.put_nowait((row["channel"], f"{row['id']}:{row['body']}"))
                count += 1
        self.replayed += count
        return count

    async def next_published(self) -> Event:
        while True:
            channel, payload = await self._queue.get()
            if payload.startswith("@"):
                body = await self._load(payload)
                if body is None:
                    continue
                event_id, message = int(payload[1:]), body
            else:
                head, sep, message = payload.partition(":")
                if not sep or not head.isdigit():
                    # A NOTIFY from something other than this backend; deliver it as it is.
                    return Event(channel=channel, message=payload)
                event_id = int(head)
            if self._first_time(event_id):
                return Event(channel=channel, message=message)

    async def _load(self, payload: str) -> str | None:
        assert self._pool is not None
        try:
            body: str | None = await self._pool.fetchval(
                "SELECT body FROM nchat.bus_payloads WHERE id = $1", int(payload[1:])
            )
        except (ValueError, asyncpg.PostgresError, OSError) as exc:
            log.warning("cannot load logged bus payload %s: %s", payload, exc)
            return None
        if body is None:
            log.warning("logged bus payload %s is gone (swept before it was read)", payload)
        return body
