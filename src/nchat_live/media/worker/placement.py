"""Which media worker a WHIP publisher should talk to (API processes redirect, RFC 9725 §4.5)."""

from __future__ import annotations

from ...auth import Claims
from ...db import Database
from . import leases


async def lease_holder_url(db: Database, stream_id: str, lease_ttl: float) -> str | None:
    """The URL of the worker holding an unexpired lease on the stream (it ingests it, or waits for it).

    Workers renew every lease_ttl/3; one that missed two renewals is taken for dead (its lease
    expires soon and the stream is taken over), so nobody is sent there.
    """
    async with db.session(Claims.service()) as s:
        url: str | None = await s.fetchval(
            "SELECT w.url FROM nchat_media_leases l JOIN nchat_media_workers w USING (worker_id) "
            "WHERE l.stream_id = $1 AND l.expires_at > now() AND w.url IS NOT NULL "
            "AND w.heartbeat_at > now() - make_interval(secs => $2)",
            stream_id, 2 * lease_ttl / 3,
        )
    return url


async def worker_for_stream(db: Database, stream_id: str, lease_ttl: float) -> str | None:
    """The lease holder when there is one (a publisher coming back after a takeover must reach the
    worker that waits for it), else the least-loaded worker that renewed within one lease period."""
    holder = await lease_holder_url(db, stream_id, lease_ttl)
    return holder or await leases.pick_worker(db, stale_after_seconds=lease_ttl)
