"""Emoji reactions: an allowed set, positions 0..100, a per-user rate limit, totals per emoji."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from ..db import Session
from ..errors import ValidationFailed
from ._common import Row, event_base, load_stream, require_user, row, set_rule_context, strip_nul

# Mirrors nchat.allowed_emojis() (migration 0009), whose insert rules check and normalise the emoji
# (the text heart and skin-toned thumbs count as the listed ones); a test keeps the two equal.
ALLOWED_EMOJIS = ("👍", "❤️", "😂", "🔥", "🎉", "👏", "😮", "😢", "💯", "🚀")


@dataclass(frozen=True)
class ReactionLimits:
    reactions: int = 20
    window: timedelta = timedelta(seconds=10)


DEFAULT_LIMITS = ReactionLimits()


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
    stream = await load_stream(session, stream_id)
    await set_rule_context(session, now, reaction_max=limits.reactions,
                           reaction_window_s=limits.window.total_seconds())
    record = await session.fetchrow(
        "INSERT INTO nchat_stream_reactions (stream_id, user_id, emoji, position_x, position_y) "
        "VALUES ($1, $2, $3, $4, $5) RETURNING id, stream_id, user_id, emoji, position_x, position_y, created_at",
        stream["id"], user_id, strip_nul(emoji), x, y,
    )
    reaction = row(record)
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
