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
    """Move a stream to `target` through nchat.stream_transition (who may: those who manage the stream).

    Locks the row, checks the transition, stamps times, and emits the status event after commit.
    Returns the updated row (without the stream key).
    """
    row = await session.fetchrow(
        "SELECT id, status, channel_id FROM nchat_streams WHERE id = $1 FOR UPDATE", stream_id
    )
    if row is None:
        raise NotFound(f"stream '{stream_id}' not found", code="stream-not-found")
    check_transition(row["status"], target)
    # Status and its times are server-owned (migration 0011): the definer function checks the caller may
    # manage the stream, applies the same state machine, stamps the times and closes viewer sessions.
    updated = await session.fetchrow(
        "SELECT id, channel_id, broadcaster_id, status, title, started_at, ended_at, duration_seconds, end_reason, "
        "current_viewers, peak_viewers, total_views, total_reactions, total_chat_messages, hls_manifest_url, "
        "recording_url FROM nchat.stream_transition($1, $2, $3)",
        stream_id, target, reason,
    )
    if updated is None:
        # The row was readable but the caller may not manage it.
        raise PermissionDenied(f"not allowed to change the status of stream '{stream_id}'")
    result = dict(updated)
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

