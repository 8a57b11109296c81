"""Which media worker ingests which stream: leases in PostgreSQL with a heartbeat.

A worker claims a stream when its publisher connects and renews all its leases every few seconds.
A worker that dies stops renewing; once its leases expire, any other worker's sweep takes the
orphaned streams over (`FOR UPDATE SKIP LOCKED`, so two sweepers never take the same stream) and
either continues them when the publisher reconnects or ends them after the grace period. The
generation number grows with every takeover, so a worker that comes back from a pause can tell
that it no longer owns a stream (fencing).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from ...auth import Claims
from ...db import Database
from ...errors import Conflict

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Lease:
    stream_id: str
    worker_id: str
    generation: int


async def register_worker(db: Database, worker_id: str, url: str | None, capacity: int = 4) -> None:
    async with db.session(Claims.service()) as s:
        await s.fetchval(
            "INSERT INTO nchat_media_workers (worker_id, url, capacity) VALUES ($1, $2, $3) "
            "ON CONFLICT (worker_id) DO UPDATE SET url = EXCLUDED.url, capacity = EXCLUDED.capacity, "
            "heartbeat_at = now() RETURNING 1",
            worker_id, url, capacity,
        )


async def unregister_worker(db: Database, worker_id: str) -> None:
    async with db.session(Claims.service()) as s:
        await s.fetchval("DELETE FROM nchat_media_workers WHERE worker_id = $1 RETURNING 1", worker_id)


async def claim(db: Database, stream_id: str, worker_id: str, ttl_seconds: float) -> Lease | None:
    """Take the stream for `worker_id`, unless another worker holds an unexpired lease on it."""
    async with db.session(Claims.service()) as s:
        row = await s.fetchrow(
            "INSERT INTO nchat_media_leases AS l (stream_id, worker_id, expires_at) "
            "VALUES ($1, $2, now() + make_interval(secs => $3)) "
            "ON CONFLICT (stream_id) DO UPDATE SET worker_id = EXCLUDED.worker_id, "
            "  generation = l.generation + CASE WHEN l.worker_id = EXCLUDED.worker_id THEN 0 ELSE 1 END, "
            "  acquired_at = CASE WHEN l.worker_id = EXCLUDED.worker_id THEN l.acquired_at ELSE now() END, "
            "  heartbeat_at = now(), expires_at = EXCLUDED.expires_at "
            "WHERE l.expires_at < now() OR l.worker_id = EXCLUDED.worker_id "
            "RETURNING stream_id, worker_id, generation",
            stream_id, worker_id, ttl_seconds,
        )
    return Lease(str(row["stream_id"]), row["worker_id"], row["generation"]) if row else None


async def renew(db: Database, worker_id: str, ttl_seconds: float) -> set[str]:
    """Extend every lease the worker still holds; returns those stream ids (a missing one was lost)."""
    async with db.session(Claims.service()) as s:
        await s.fetchval(
            "UPDATE nchat_media_workers SET heartbeat_at = now(), "
            "streams = (SELECT count(*) FROM nchat_media_leases WHERE worker_id = $1) "
            "WHERE worker_id = $1 RETURNING 1",
            worker_id,
        )
        rows = await s.fetch(
            "UPDATE nchat_media_leases SET heartbeat_at = now(), expires_at = now() + make_interval(secs => $2) "
            "WHERE worker_id = $1 RETURNING stream_id",
            worker_id, ttl_seconds,
        )
    return {str(r["stream_id"]) for r in rows}


async def release(db: Database, stream_id: str, worker_id: str) -> None:
    async with db.session(Claims.service()) as s:
        await s.fetchval(
            "DELETE FROM nchat_media_leases WHERE stream_id = $1 AND worker_id = $2 RETURNING 1",
            stream_id, worker_id,
        )


async def take_orphans(db: Database, worker_id: str, ttl_seconds: float, limit: int = 10) -> list[Lease]:
    """Take over streams whose worker stopped renewing.

    Only streams some worker actually ingested have a lease (it is claimed when a publisher attaches and
    kept until the stream ends), so a stream made live by the API (`startStream`) that is still waiting
    for its publisher is never taken for an orphan: see `unpublished_live` for those.
    """
    async with db.session(Claims.service()) as s:
        rows = await s.fetch(
            "WITH expired AS ("
            "  SELECT stream_id FROM nchat_media_leases WHERE expires_at < now() "
            "  ORDER BY expires_at LIMIT $3 FOR UPDATE SKIP LOCKED) "
            "UPDATE nchat_media_leases l SET worker_id = $1, generation = l.generation + 1, acquired_at = now(), "
            "  heartbeat_at = now(), expires_at = now() + make_interval(secs => $2) "
            "FROM expired WHERE l.stream_id = expired.stream_id "
            "RETURNING l.stream_id, l.worker_id, l.generation",
            worker_id, ttl_seconds, limit,
        )
    return [Lease(str(r["stream_id"]), r["worker_id"], r["generation"]) for r in rows]


async def unpublished_live(db: Database, older_than_seconds: float, limit: int = 100) -> list[str]:
    """Live streams that no worker ever ingested (no lease) and that went live longer ago than
    `older_than_seconds`: started by the API, their publisher never came."""
    async with db.session(Claims.service()) as s:
        rows = await s.fetch(
            "SELECT id FROM nchat_streams st WHERE st.status = 'live' "
            "  AND st.started_at < now() - make_interval(secs => $1) "
            "  AND NOT EXISTS (SELECT 1 FROM nchat_media_leases l WHERE l.stream_id = st.id) "
            "ORDER BY st.started_at LIMIT $2",
            older_than_seconds, limit,
        )
    return [str(r["id"]) for r in rows]


async def pick_worker(db: Database, stale_after_seconds: float = 10) -> str | None:
    """The URL of the least-loaded live worker, for redirecting a WHIP publisher (RFC 9725 §4.5)."""
    async with db.session(Claims.service()) as s:
        url: str | None = await s.fetchval(
            "SELECT url FROM nchat_media_workers WHERE url IS NOT NULL "
            "AND heartbeat_at > now() - make_interval(secs => $1) AND streams < capacity "
            "ORDER BY streams::float / greatest(capacity, 1), heartbeat_at DESC LIMIT 1",
            stale_after_seconds,
        )
    return url


class LeaseKeeper:
    """The leases of one worker: claimed when a publisher connects (or taken over by the orphan sweep),
    renewed every `ttl/3`, released when the stream ends here.

    A lease the renewal no longer returns was taken over by another worker while this one was paused
    or cut off (fencing): `on_lost(stream_id)` stops the stream here without ending it.
    """

    def __init__(self, db: Database, worker_id: str, ttl_seconds: float, on_lost: Callable[[str], None]) -> None:
        self.db = db
        self.worker_id = worker_id
        self.ttl = ttl_seconds
        self.on_lost = on_lost
        # Streams this worker holds, and since when (a renewal asked before that may not list them).
        self.leased: dict[str, float] = {}
        # Streams taken over from a lost worker and waiting for their publisher (timer: give up).
        self.adopted: dict[str, asyncio.TimerHandle] = {}

    async def claim(self, stream_id: str) -> None:
        """Hold `stream_id` for a publisher connecting here; Conflict if another worker holds it."""
        self.forget_adopted(stream_id)
        lease = await claim(self.db, stream_id, self.worker_id, self.ttl)
        if lease is None:
            raise Conflict(f"stream '{stream_id}' is being ingested by another media worker",
                           code="stream-owned-elsewhere")
        self.leased[stream_id] = time.monotonic()

    def hold(self, stream_id: str) -> None:
        """A lease the orphan sweep took for this worker."""
        self.leased[stream_id] = time.monotonic()

    def forget_adopted(self, stream_id: str) -> None:
        timer = self.adopted.pop(stream_id, None)
        if timer is not None:
            timer.cancel()

    async def release(self, stream_id: str) -> None:
        if self.leased.pop(stream_id, None) is None:
            return
        try:
            await release(self.db, stream_id, self.worker_id)
        except Exception as exc:
            # It expires by itself; a sweeping worker then finds the stream ended and lets it go.
            log.warning("stream %s: lease not released: %s", stream_id, exc)

    async def release_adopted(self) -> None:
        """Taken over but never continued here: another worker may take them at once."""
        for stream_id in list(self.adopted):
            self.forget_adopted(stream_id)
            await self.release(stream_id)

    async def renew_loop(self) -> None:
        while True:
            await asyncio.sleep(self.ttl / 3)
            asked_at = time.monotonic()
            try:
                held = await renew(self.db, self.worker_id, self.ttl)
            except Exception as exc:
                # Media keeps flowing through a database outage; the next renewal says what we still own.
                log.warning("media worker %s: leases not renewed: %s", self.worker_id, exc)
                continue
            for stream_id, since in list(self.leased.items()):
                if stream_id not in held and since < asked_at:
                    self.leased.pop(stream_id, None)
                    self.forget_adopted(stream_id)
                    self.on_lost(stream_id)
