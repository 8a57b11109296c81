"""Helpers the domain modules share: the clock, input checks, the stream row and who may manage it."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from ..db import Session
from ..errors import AccessDenied, NchatError, NotFound, PermissionDenied, ValidationFailed

Clock = Callable[[], datetime]
Row = dict[str, Any]


def utcnow() -> datetime:
    return datetime.now(UTC)


class StreamNotLive(NchatError):
    code = "stream-not-live"
    http_status = 409


# Control characters other than tab/newline are stripped: they break rendering and logs.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")


def clean_text(value: str, *, field: str, max_length: int = 500) -> str:
    """Trimmed text without control characters, 1..max_length characters, or validation-failed."""
    if not isinstance(value, str):
        raise ValidationFailed(f"{field} must be text")
    cleaned = _CONTROL.sub("", value).strip()
    if not cleaned:
        raise ValidationFailed(f"{field} is empty; expected 1 to {max_length} characters")
    if len(cleaned) > max_length:
        raise ValidationFailed(f"{field} has {len(cleaned)} characters; at most {max_length} are allowed")
    return cleaned


def strip_nul(value: str) -> str:
    """Text without U+0000: Postgres text cannot hold it, so it must go before the value is sent (the
    rest of the cleaning is the insert rules' own, migration 0009)."""
    return value.replace("\x00", "") if isinstance(value, str) else value


async def set_rule_context(session: Session, now: datetime | None, **limits: float) -> None:
    """The clock (and limits, e.g. chat_max=5, chat_window_s=10) the insert rules of migration 0009
    apply in this transaction; always set, so an earlier operation's clock in a shared transaction
    does not carry over."""
    await session.fetchval(f"SELECT {RULE_CONTEXT.format(names='$1', values='$2')}", *rule_context(now, **limits))


# set_config of each (name, value) pair, as one value; {names} and {values} are the parameters' markers
# (a statement that must set the rule context itself, before its insert's triggers read it, embeds it).
RULE_CONTEXT = "(SELECT count(set_config(n, v, true)) FROM unnest({names}::text[], {values}::text[]) AS t(n, v))"


def rule_context(now: datetime | None, **limits: float) -> tuple[list[str], list[str]]:
    """The settings `set_rule_context` makes, as (names, values)."""
    names = ["nchat.now", *(f"nchat.{k}" for k in limits)]
    values = [now.isoformat() if now is not None else "", *(str(v) for v in limits.values())]
    return names, values


def parse_uuid(value: str, *, field: str) -> str:
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise ValidationFailed(f"{field} '{value}' is not a UUID") from None


def require_user(session: Session, action: str) -> str:
    user_id = session.claims.user_id
    if not user_id:
        raise AccessDenied(f"sign in to {action}", code="access-denied")
    return user_id


# Columns every request role may read; the stream key is never among them.
STREAM_COLUMNS = (
    "id, channel_id, broadcaster_id, title, description, thumbnail_url, scheduled_at, status, ingest_url, "
    "hls_manifest_url, max_resolution, bitrate_kbps, fps, is_recorded, enable_chat, enable_reactions, enable_qa, "
    "chat_mode, slow_mode_seconds, tags, language, current_viewers, peak_viewers, total_views, total_reactions, "
    "total_chat_messages, started_at, ended_at, duration_seconds, recording_url, end_reason, created_at, updated_at, "
    "program_layout, program_focus"
)


def row(record: Any) -> Row:
    """An asyncpg record as a plain dict with uuids as strings (JSON- and GraphQL-ready)."""
    return {k: (str(v) if isinstance(v, uuid.UUID) else v) for k, v in dict(record).items()}


async def load_stream(session: Session, stream_id: str) -> Row:
    """The stream as the caller may see it, or stream-not-found (RLS hides unreadable streams)."""
    sid = parse_uuid(stream_id, field="streamId")
    record = await session.fetchrow(f"SELECT {STREAM_COLUMNS} FROM nchat_streams WHERE id = $1", sid)
    if record is None:
        raise NotFound(f"stream '{stream_id}' not found", code="stream-not-found")
    return row(record)


async def require_manager(session: Session, stream_id: str, action: str) -> None:
    """Broadcaster, the channel's owner/admin/moderator, or staff; RLS enforces the same."""
    if not await session.fetchval("SELECT nchat.can_manage_stream($1)", stream_id):
        raise PermissionDenied(f"only the broadcaster or a moderator of the channel may {action}")


def require_live(stream: Row, action: str) -> None:
    if stream["status"] != "live":
        raise StreamNotLive(f"cannot {action}: the stream is '{stream['status']}', not 'live'")


def event_base(stream: Row) -> dict[str, Any]:
    return {"stream_id": str(stream["id"]), "channel_id": str(stream["channel_id"])}


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None
