"""Bans and timeouts: a ban names a stream or its whole channel; a timeout is a ban that expires.

The insert rules of migration 0009 refuse a banned (`banned`) or timed-out (`timed-out`) user's chat,
reactions and questions.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from ..db import Session
from ..errors import ValidationFailed
from ._common import Row, clean_text, event_base, load_stream, parse_uuid, require_manager, require_user, row, utcnow

MAX_TIMEOUT = timedelta(days=14)


async def _ban(
    session: Session, stream_id: str, user_id: str, *, reason: str | None, expires_at: datetime | None,
    channel_wide: bool, action: str,
) -> Row:
    me = require_user(session, action)
    stream = await load_stream(session, stream_id)
    await require_manager(session, stream["id"], action)
    target = parse_uuid(user_id, field="userId")
    if target == me:
        raise ValidationFailed("you cannot ban or time out yourself")
    if target == stream["broadcaster_id"]:
        raise ValidationFailed("the broadcaster cannot be banned from their own stream")
    text = clean_text(reason, field="reason", max_length=500) if reason and reason.strip() else None
    record = await session.fetchrow(
        "INSERT INTO nchat_stream_bans (stream_id, channel_id, user_id, banned_by, reason, expires_at) "
        "VALUES ($1, $2, $3, $4, $5, $6) RETURNING id, stream_id, channel_id, user_id, banned_by, reason, "
        "expires_at, created_at",
        None if channel_wide else stream["id"], stream["channel_id"] if channel_wide else None,
        target, me, text, expires_at,
    )
    ban = row(record)
    session.emit("chat.banned", {**event_base(stream), "user_id": target, "expires_at":
                                 expires_at.isoformat() if expires_at else None})
    return ban


async def ban_user(
    session: Session, stream_id: str, user_id: str, reason: str | None = None, *, channel_wide: bool = False
) -> Row:
    return await _ban(session, stream_id, user_id, reason=reason, expires_at=None, channel_wide=channel_wide,
                      action="ban users")


async def timeout_user(
    session: Session, stream_id: str, user_id: str, duration_seconds: int, reason: str | None = None,
    *, now: datetime | None = None,
) -> Row:
    if not 1 <= duration_seconds <= MAX_TIMEOUT.total_seconds():
        raise ValidationFailed(
            f"durationSeconds {duration_seconds} is outside 1..{int(MAX_TIMEOUT.total_seconds())}")
    expires = (now or utcnow()) + timedelta(seconds=duration_seconds)
    return await _ban(session, stream_id, user_id, reason=reason, expires_at=expires, channel_wide=False,
                      action="time out users")


async def unban_user(session: Session, stream_id: str, user_id: str) -> int:
    """Lift every ban and timeout of the user on this stream and its channel; returns how many."""
    stream = await load_stream(session, stream_id)
    await require_manager(session, stream["id"], "unban users")
    target = parse_uuid(user_id, field="userId")
    removed = await session.fetch(
        "DELETE FROM nchat_stream_bans WHERE user_id = $1 AND (stream_id = $2 OR channel_id = $3) RETURNING id",
        target, stream["id"], stream["channel_id"],
    )
    if removed:
        session.emit("chat.unbanned", {**event_base(stream), "user_id": target})
    return len(removed)
