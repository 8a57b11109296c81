"""The stream state machine: the one place that knows which status may follow which."""

from __future__ import annotations

from typing import Any

from ..db import Session
from ..errors import NchatError, NotFound, PermissionDenied

SCHEDULED, PREPARING, LIVE, ENDING, ENDED, CANCELLED, FAILED = (
    "scheduled", "preparing", "live", "ending", "ended", "cancelled", "failed",
)
STATUSES = (SCHEDULED, PREPARING, LIVE, ENDING, ENDED, CANCELLED, FAILED)
TERMINAL = frozenset({ENDED, CANCELLED, FAILED})

TRANSITIONS: dict[str, frozenset[str]] = {
    SCHEDULED: frozenset({PREPARING, LIVE, CANCELLED, FAILED}),
    PREPARING: frozenset({LIVE, CANCELLED, FAILED, SCHEDULED}),
    LIVE: frozenset({ENDING, ENDED, FAILED}),
    ENDING: frozenset({ENDED, FAILED}),
    ENDED: frozenset(),
    CANCELLED: frozenset(),
    FAILED: frozenset(),
}


class IllegalTransition(NchatError):
    code = "invalid-transition"
    http_status = 409


def check_transition(current: str, target: str) -> None:
    if target not in TRANSITIONS:
        raise IllegalTransition(f"unknown stream status '{target}'; expected one of {', '.join(STATUSES)}")
    if target not in TRANSITIONS.get(current, frozenset()):
        allowed = ", ".join(sorted(TRANSITIONS.get(current, frozenset()))) or "none (it is final)"
        raise IllegalTransition(f"a stream that is '{current}' cannot become '{target}'; allowed: {allowed}")


# Columns a transition stamps, in SQL evaluated against the locked row.
_STAMPS: dict[str, str] = {
    LIVE: "started_at = coalesce(started_at, now())",
    ENDED: (
        "ended_at = coalesce(ended_at, now()), "
        "duration_seconds = CASE WHEN started_at IS NULL THEN 0 "
        "ELSE greatest(0, extract(epoch FROM coalesce(ended_at, now()) - started_at))::int END, "
        "current_viewers = 0"
    ),
    FAILED: "ended_at = coalesce(ended_at, now()), current_viewers = 0",
    CANCELLED: "ended_at = coalesce(ended_at, now())",
}

EVENT_FOR_STATUS = {
    LIVE: "stream.started",
    ENDED: "stream.ended",
    CANCELLED: "stream.cancelled",
    FAILED: "stream.failed",
    PREPARING: "stream.preparing",
    ENDING: "stream.ending",
    SCHEDULED: "stream.scheduled",
}


async def transition(session: Session, stream_id: str, target: str, *, reason: str | None = None) -> dict[str, Any]:
    """Move a stream to `target` under the caller's role; RLS decides whether they may.

    Locks the row, checks the transition, stamps times, and emits the status event after commit.
    Returns the updated row (without the stream key).
    """
    row = await session.fetchrow(
        "SELECT id, status, channel_id FROM nchat_streams WHERE id = $1 FOR UPDATE", stream_id
    )
    if row is None:
        raise NotFound(f"stream '{stream_id}' not found", code="stream-not-found")
    check_transition(row["status"], target)
    stamps = _STAMPS.get(target)
    sets = "status = $2, end_reason = coalesce($3, end_reason)" + (f", {stamps}" if stamps else "")
    updated = await session.fetchrow(
        f"UPDATE nchat_streams SET {sets} WHERE id = $1 RETURNING id, channel_id, broadcaster_id, status, "
        "title, started_at, ended_at, duration_seconds, end_reason, current_viewers, peak_viewers, total_views, "
        "total_reactions, total_chat_messages, hls_manifest_url, recording_url",
        stream_id, target, reason,
    )
    if updated is None:
        # The row was readable but RLS refused the update.
        raise PermissionDenied(f"not allowed to change the status of stream '{stream_id}'")
    result = dict(updated)
    if target in (ENDED, FAILED):
        await close_viewer_sessions(session, stream_id)
    session.emit(
        EVENT_FOR_STATUS[target],
        {
            "stream_id": str(result["id"]),
            "channel_id": str(result["channel_id"]),
            "status": target,
            "previous_status": row["status"],
            "reason": reason,
        },
    )
    return result


async def close_viewer_sessions(session: Session, stream_id: str) -> int:
    """Close every open viewer session of a stream that has stopped, crediting watch time until now.

    The counter trigger keeps current_viewers at 0 (already stamped by the transition).
    """
    closed = await session.fetch(
        "UPDATE nchat_stream_viewers SET left_at = greatest(now(), last_seen_at), "
        "watch_duration_seconds = greatest(0, extract(epoch FROM greatest(now(), last_seen_at) - joined_at))::int "
        "WHERE stream_id = $1 AND left_at IS NULL RETURNING id",
        stream_id,
    )
    return len(closed)
