"""Emoji reactions: an allowed set, positions 0..100, a per-user rate limit, totals per emoji."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from ..db import Session
from ..errors import NotFound, ValidationFailed
from ._common import (
    RULE_CONTEXT,
    Row,
    event_base,
    load_stream,
    parse_uuid,
    require_user,
    row,
    rule_context,
    strip_nul,
)

# Mirrors nchat.allowed_emojis() (migration 0009), whose insert rules check and normalise the emoji
# (the text heart and skin-toned thumbs count as the listed ones); a test keeps the two equal.
ALLOWED_EMOJIS = ("👍", "❤️", "😂", "🔥", "🎉", "👏", "😮", "😢", "💯", "🚀")


@dataclass(frozen=True)
class ReactionLimits:
    reactions: int = 20
    window: timedelta = timedelta(seconds=10)


DEFAULT_LIMITS = ReactionLimits()

# sendReaction in one statement (one round trip), as chat.py's _SEND: the stream as the caller may see
# it (none: nothing inserted, stream-not-found), the rule context set while that row is read (before
# the insert trigger of 0009 reads it), then the insert.
_REACT = (
    "WITH s AS (SELECT st.id, st.channel_id FROM nchat_streams st, "
    f"{RULE_CONTEXT.format(names='$6', values='$7')} AS _rules(n) WHERE st.id = $1) "
    "INSERT INTO nchat_stream_reactions (stream_id, user_id, emoji, position_x, position_y) "
    "SELECT s.id, $2, $3, $4, $5 FROM s "
    "RETURNING id, stream_id, user_id, emoji, position_x, position_y, created_at, "
    "(SELECT s.channel_id FROM s) AS _channel_id"
)


def _position(value: float | None, name: str) -> float | None:
    if value is None:
        return None
    if not isinstance(value, int | float) or not 0 <= value <= 100:
        raise ValidationFailed(f"{name} {value} is outside 0..100", code="invalid-position")
    return float(value)


async def send_reaction(
    session: Session, stream_id: str, emoji: str, position_x: float | None = None, position_y: float | None = None,
    *, now: datetime | None = None, limits: ReactionLimits = DEFAULT_LIMITS,
) -> Row:
    """React as the caller. The rules (allowed emoji, stream live, reactions enabled, bans, rate limit)
    are the insert trigger's (migration 0009); a refusal arrives as NchatError with its code."""
    user_id = require_user(session, "react")
    x, y = _position(position_x, "positionX"), _position(position_y, "positionY")
    sid = parse_uuid(stream_id, field="streamId")
    record = await session.fetchrow(_REACT, sid, user_id, strip_nul(emoji), x, y, *rule_context(
        now, reaction_max=limits.reactions, reaction_window_s=limits.window.total_seconds()))
    if record is None:  # no row of the stream as the caller may see it (RLS): nothing inserted
        raise NotFound(f"stream '{stream_id}' not found", code="stream-not-found")
    reaction = row(record)
    stream = {"id": reaction["stream_id"], "channel_id": str(reaction.pop("_channel_id"))}
    for key in ("position_x", "position_y"):
        reaction[key] = float(reaction[key]) if reaction[key] is not None else None
    session.emit("reaction", {
        **event_base(stream), "id": reaction["id"], "emoji": reaction["emoji"], "position_x": reaction["position_x"],
        "position_y": reaction["position_y"], "user_id": user_id,
    })
    return reaction


async def reaction_totals(session: Session, stream_id: str) -> list[Row]:
    """[{"emoji", "count"}], most used first."""
    stream = await load_stream(session, stream_id)
    records = await session.fetch(
        "SELECT emoji, count(*)::int AS count FROM nchat_stream_reactions WHERE stream_id = $1 "
        "GROUP BY emoji ORDER BY count DESC, emoji",
        stream["id"],
    )
    return [row(r) for r in records]
