"""Viewer sessions: join, heartbeat, leave, and expiry of sessions that went silent.

A session is identified by a random token (the GraphQL `sessionId`); holding it is what lets a
viewer, anonymous or not, keep the session alive. Counters (current/peak/total views) are kept by
the database trigger on nchat_stream_viewers, so concurrent joins give exact totals.
"""

from __future__ import annotations

import asyncio
import secrets
from datetime import datetime, timedelta
from typing import Any

from ..db import Session
from ..errors import NotFound, ValidationFailed
from . import audience
from ._common import Row, StreamNotLive, event_base, load_stream, require_live, row, utcnow

SILENCE_TIMEOUT = timedelta(seconds=30)
QUALITIES = ("auto", "1080p", "720p", "480p", "360p", "audio")
_SESSION_COLUMNS = (
    "id", "stream_id", "user_id", "viewer_session_id", "quality", "joined_at", "last_seen_at", "left_at",
    "watch_duration_seconds", "buffering_ms", "quality_switches", "sent_chat_messages", "sent_reactions",
)


def _session_row(record: Any) -> Row:
    data = row(record)
    return {k: data[k] for k in _SESSION_COLUMNS}


def _check_quality(quality: str | None) -> str | None:
    if quality is not None and quality not in QUALITIES:
        raise ValidationFailed(f"quality '{quality}' is not one of {', '.join(QUALITIES)}")
    return quality


async def _count(session: Session, stream_id: str) -> int:
    # current_viewers is not readable back through RLS for every role's update, but is for select.
    return int(await session.fetchval("SELECT current_viewers FROM nchat_streams WHERE id = $1", stream_id) or 0)


async def join_stream(
    session: Session, stream_id: str, quality: str | None = None, *, user_agent: str | None = None,
    ip: str | None = None, now: datetime | None = None,
) -> Row:
    """Open a viewer session on a live stream the caller can read (anonymous on public streams).

    The session is described (country, device, OS, browser: resolvers/audience.py); the address is
    kept as a pseudonym unless NCHAT_ANALYTICS_STORE_IP."""
    quality = _check_quality(quality)
    stream = await load_stream(session, stream_id)
    require_live(stream, "join")
    token = secrets.token_urlsafe(16)
    # Off the event loop: the first lookup loads the country data and the user-agent rules (~2 s).
    profile = await asyncio.to_thread(audience.describe, ip, user_agent)
    record = await session.fetchrow(
        "SELECT * FROM nchat.viewer_join($1, $2, $3, $4, $5::inet, $6)",
        stream["id"], token, quality, (user_agent or "")[:512] or None, audience.stored_address(ip), now or utcnow(),
    )
    if record is None:
        # The stream stopped being live between the look and the join.
        raise StreamNotLive("cannot join: the stream is no longer live")
    viewer = _session_row(record)
    await audience.record_client(session, viewer["viewer_session_id"], profile)
    count = await _count(session, stream["id"])
    session.emit("viewer.joined", {**event_base(stream), "user_id": viewer["user_id"], "quality": quality})
    session.emit("viewer.count", {**event_base(stream), "count": count})
    # A repeated join shares the viewer's open session (migration 0011): its token, not the new one.
    return {**viewer, "session_id": viewer["viewer_session_id"], "current_viewers": count}


async def _touch(
    session: Session, session_id: str, *, quality: str | None, buffering_ms: int | None, now: datetime | None,
    leave: bool,
) -> Row:
    if buffering_ms is not None and buffering_ms < 0:
        raise ValidationFailed(f"bufferingMs {buffering_ms} is negative")
    record = await session.fetchrow(
        "SELECT * FROM nchat.viewer_touch($1, $2, $3, $4, $5)",
        session_id, _check_quality(quality), buffering_ms, now or utcnow(), leave,
    )
    if record is None:
        raise NotFound(
            "viewer session not found, or it has ended (left, expired after 30 s of silence, or the stream ended)",
            code="viewer-session-not-found",
        )
    return {**_session_row(record), "session_id": session_id}


async def viewer_heartbeat(
    session: Session, session_id: str, quality: str | None = None, buffering_ms: int | None = None,
    *, now: datetime | None = None,
) -> Row:
    """Keep a session alive; `buffering_ms` is the buffering since the previous heartbeat."""
    viewer = await _touch(session, session_id, quality=quality, buffering_ms=buffering_ms, now=now, leave=False)
    viewer["current_viewers"] = await _count(session, viewer["stream_id"])
    return viewer


async def leave_stream(
    session: Session, session_id: str, buffering_ms: int | None = None, *, now: datetime | None = None
) -> Row:
    viewer = await _touch(session, session_id, quality=None, buffering_ms=buffering_ms, now=now, leave=True)
    channel_id = await session.fetchval("SELECT channel_id FROM nchat_streams WHERE id = $1", viewer["stream_id"])
    count = await _count(session, viewer["stream_id"])
    base = {"stream_id": viewer["stream_id"], "channel_id": str(channel_id)}
    session.emit("viewer.left", {**base, "user_id": viewer["user_id"],
                                 "watch_duration_seconds": viewer["watch_duration_seconds"]})
    session.emit("viewer.count", {**base, "count": count})
    viewer["current_viewers"] = count
    return viewer


async def expire_silent_sessions(session: Session, now: datetime, silence: timedelta = SILENCE_TIMEOUT) -> int:
    """Close sessions not heard from for `silence` (run as the service). Watch time ends at the last beat."""
    records = await session.fetch(
        "UPDATE nchat_stream_viewers v SET left_at = v.last_seen_at, "
        "watch_duration_seconds = greatest(0, extract(epoch FROM v.last_seen_at - v.joined_at))::int "
        "FROM nchat_streams s WHERE s.id = v.stream_id AND v.left_at IS NULL AND v.last_seen_at < $1 "
        "RETURNING v.stream_id, s.channel_id, v.user_id",
        now - silence,
    )
    streams: dict[str, str] = {}
    for r in records:
        sid, cid = str(r["stream_id"]), str(r["channel_id"])
        streams[sid] = cid
        session.emit("viewer.left", {"stream_id": sid, "channel_id": cid,
                                     "user_id": str(r["user_id"]) if r["user_id"] else None, "reason": "expired"})
    for sid, cid in streams.items():
        session.emit("viewer.count", {"stream_id": sid, "channel_id": cid, "count": await _count(session, sid)})
    return len(records)
