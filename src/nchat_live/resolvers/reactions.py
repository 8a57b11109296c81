"""Emoji reactions: an allowed set, positions 0..100, a per-user rate limit, totals per emoji."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from ..db import Session
from ..errors import NchatError, RateLimited, ValidationFailed
from ._common import Row, event_base, load_stream, require_live, require_user, row, utcnow
from .moderation import check_not_banned

# The guide's five first, then a few more; the text form of the heart is accepted as the emoji.
ALLOWED_EMOJIS = ("👍", "❤️", "😂", "🔥", "🎉", "👏", "😮", "😢", "💯", "🚀")
_ALIASES = {"❤": "❤️", "👍🏻": "👍", "👍🏼": "👍", "👍🏽": "👍", "👍🏾": "👍", "👍🏿": "👍"}


@dataclass(frozen=True)
class ReactionLimits:
    reactions: int = 20
    window: timedelta = timedelta(seconds=10)


DEFAULT_LIMITS = ReactionLimits()


class ReactionsDisabled(NchatError):
    code = "reactions-disabled"
    http_status = 403


def normalise_emoji(emoji: str) -> str:
    value = _ALIASES.get(emoji.strip(), emoji.strip())
    if value not in ALLOWED_EMOJIS:
        raise ValidationFailed(f"emoji '{emoji}' is not allowed; use one of {' '.join(ALLOWED_EMOJIS)}",
                               code="invalid-emoji")
    return value


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
    user_id = require_user(session, "react")
    value = normalise_emoji(emoji)
    x, y = _position(position_x, "positionX"), _position(position_y, "positionY")
    now = now or utcnow()
    stream = await load_stream(session, stream_id)
    require_live(stream, "react")
    if not stream["enable_reactions"]:
        raise ReactionsDisabled("reactions are disabled for this stream")
    await check_not_banned(session, stream, user_id, now)
    await session.fetchval("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", f"react:{user_id}:{stream['id']}")
    recent = await session.fetchval(
        "SELECT count(*) FROM nchat_stream_reactions WHERE user_id = $1 AND stream_id = $2 "
        "AND created_at > $3 AND created_at <= $4",
        user_id, stream["id"], now - limits.window, now,
    )
    if recent >= limits.reactions:
        raise RateLimited(
            f"at most {limits.reactions} reactions per {int(limits.window.total_seconds())} s",
            extensions={"retryAfterSeconds": int(limits.window.total_seconds())},
        )
    record = await session.fetchrow(
        "INSERT INTO nchat_stream_reactions (stream_id, user_id, emoji, position_x, position_y, created_at) "
        "VALUES ($1, $2, $3, $4, $5, $6) RETURNING id, stream_id, user_id, emoji, position_x, position_y, created_at",
        stream["id"], user_id, value, x, y, now,
    )
    reaction = row(record)
    for key in ("position_x", "position_y"):
        reaction[key] = float(reaction[key]) if reaction[key] is not None else None
    session.emit("reaction", {
        **event_base(stream), "id": reaction["id"], "emoji": value, "position_x": reaction["position_x"],
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
