"""Which media worker ingests which stream: leases in PostgreSQL with a heartbeat.

A worker claims a stream when its publisher connects and renews all its leases every few seconds.
A worker that dies stops renewing; once its leases expire, any other worker's sweep takes the
orphaned streams over (`FOR UPDATE SKIP LOCKED`, so two sweepers never take the same stream) and
either continues them when the publisher reconnects or ends them after the grace period. The
generation number grows with every takeover, so a worker that comes back from a pause can tell
that it no longer owns a stream (fencing).
"""

from __future__ import annotations

from dataclasses import dataclass

from ...auth import Claims
from ...db import Database


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
    """Take over streams whose worker stopped renewing, and live streams that have no lease at all
    (left `live` by a process that crashed before leases existed for them)."""
    async with db.session(Claims.service()) as s:
        await s.fetchval(
            "INSERT INTO nchat_media_leases (stream_id, worker_id, expires_at, generation) "
            "SELECT id, '', now() - interval '1 second', 0 FROM nchat_streams st "
            "WHERE st.status IN ('live', 'ending') "
            "  AND NOT EXISTS (SELECT 1 FROM nchat_media_leases l WHERE l.stream_id = st.id) "
            "ON CONFLICT (stream_id) DO NOTHING RETURNING 1",
        )
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
