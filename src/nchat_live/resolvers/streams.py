"""Stream lifecycle operations and queries: create, update, start, end, cancel, rotate the key, list.

Status changes go through `lifecycle.transition`, the one state machine.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

from ..config import Settings
from ..db import Session
from ..errors import PermissionDenied, ValidationFailed
from . import lifecycle
from ._common import (
    STREAM_COLUMNS,
    Row,
    clean_text,
    event_base,
    load_stream,
    parse_uuid,
    require_manager,
    require_user,
    row,
    set_rule_context,
    utcnow,
)

RESOLUTIONS = ("1080p", "720p", "480p", "360p")
CHAT_MODES = ("open", "followers_only", "subscribers_only")
MAX_TAGS = 20


@dataclass
class StreamInput:
    """createStream/updateStream input; None means "not given" (create uses the column default)."""

    channel_id: str | None = None
    title: str | None = None
    description: str | None = None
    thumbnail_url: str | None = None
    scheduled_at: datetime | None = None
    max_resolution: str | None = None
    enable_chat: bool | None = None
    enable_reactions: bool | None = None
    enable_qa: bool | None = None
    chat_mode: str | None = None
    slow_mode_seconds: int | None = None
    tags: list[str] | None = None
    language: str | None = None
    is_recorded: bool | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_camel(cls, data: dict[str, Any]) -> StreamInput:
        """From a JSON body in the guide's camelCase; unknown keys are refused by name."""
        names = {f.name for f in fields(cls) if f.name != "extra"}
        camel = {_camel(n): n for n in names}
        values: dict[str, Any] = {}
        for key, value in data.items():
            name = camel.get(key) or (key if key in names else None)
            if name is None:
                raise ValidationFailed(f"unknown field '{key}'; expected one of {', '.join(sorted(camel))}")
            values[name] = value
        if isinstance(values.get("scheduled_at"), str):
            try:
                values["scheduled_at"] = datetime.fromisoformat(values["scheduled_at"].replace("Z", "+00:00"))
            except ValueError:
                raise ValidationFailed(f"scheduledAt '{values['scheduled_at']}' is not an ISO 8601 time") from None
        return cls(**values)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)


def stream_urls(settings: Settings, stream_id: str, stream_key: str | None = None) -> dict[str, Any]:
    base = settings.public_url.rstrip("/")
    return {
        "whip_url": f"{base}/whip/{stream_id}",
        "rtmp_url": settings.rtmp_ingest_url,
        "rtmp_stream_key": stream_key,
        "playback_url": f"{base}/hls/{stream_id}/master.m3u8",
    }


def _validated(data: StreamInput, *, creating: bool, now: datetime) -> dict[str, Any]:
    """Column values for the given fields, each checked; raises validation-failed naming the field."""
    values: dict[str, Any] = {}
    if data.title is not None or creating:
        values["title"] = clean_text(data.title or "", field="title", max_length=200)
    if data.description is not None:
        values["description"] = clean_text(data.description, field="description", max_length=5000) \
            if data.description.strip() else None
    if data.thumbnail_url is not None:
        url = data.thumbnail_url.strip()
        if url and not url.startswith(("https://", "http://", "/")):
            raise ValidationFailed(f"thumbnailUrl '{url}' must be an http(s) URL or a path")
        values["thumbnail_url"] = url or None
    if data.scheduled_at is not None:
        if data.scheduled_at.tzinfo is None:
            raise ValidationFailed("scheduledAt needs a time zone (e.g. 2030-01-01T18:00:00Z)")
        values["scheduled_at"] = data.scheduled_at
    if data.max_resolution is not None:
        if data.max_resolution not in RESOLUTIONS:
            raise ValidationFailed(
                f"maxResolution '{data.max_resolution}' is not one of {', '.join(RESOLUTIONS)}")
        values["max_resolution"] = data.max_resolution
    for name in ("enable_chat", "enable_reactions", "enable_qa", "is_recorded"):
        flag = getattr(data, name)
        if flag is not None:
            values[name] = bool(flag)
    if data.chat_mode is not None:
        if data.chat_mode not in CHAT_MODES:
            raise ValidationFailed(f"chatMode '{data.chat_mode}' is not one of {', '.join(CHAT_MODES)}")
        values["chat_mode"] = data.chat_mode
    if data.slow_mode_seconds is not None:
        if not isinstance(data.slow_mode_seconds, int) or not 0 <= data.slow_mode_seconds <= 3600:
            raise ValidationFailed(f"slowModeSeconds {data.slow_mode_seconds} is outside 0..3600")
        values["slow_mode_seconds"] = data.slow_mode_seconds
    if data.tags is not None:
        tags = [clean_text(t, field="tag", max_length=50) for t in data.tags]
        if len(tags) > MAX_TAGS:
            raise ValidationFailed(f"{len(tags)} tags given; at most {MAX_TAGS} are allowed")
        values["tags"] = list(dict.fromkeys(tags))
    if data.language is not None:
        values["language"] = clean_text(data.language, field="language", max_length=35)
    return values


async def create_stream(
    session: Session, settings: Settings, data: StreamInput, *, now: datetime | None = None
) -> Row:
    """A new stream owned by the caller, with its secret key and ingest/playback URLs."""
    user_id = require_user(session, "create a stream")
    # The clock of the insert rules (migration 0012: rates, schedule window) is the operation's.
    await set_rule_context(session, now)
    now = now or utcnow()
    if not data.channel_id:
        raise ValidationFailed("channelId is required")
    channel_id = parse_uuid(data.channel_id, field="channelId")
    values = _validated(data, creating=True, now=now)
    role = await session.fetchval("SELECT nchat.channel_role($1)", channel_id)
    if role not in ("owner", "admin", "moderator", "member") and not session.claims.is_admin:
        raise PermissionDenied(f"only members of channel '{channel_id}' may create streams in it")
    stream_id = str(uuid.uuid4())
    # 256 bits from the OS CSPRNG; the key authorises ingest, so it is as strong as a session token.
    stream_key = secrets.token_urlsafe(32)
    values.update(id=stream_id, channel_id=channel_id, broadcaster_id=user_id, stream_key=stream_key)
    columns = list(values)
    placeholders = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
    await session.fetchval(
        f"INSERT INTO nchat_streams ({', '.join(columns)}) VALUES ({placeholders}) RETURNING id",
        *values.values(),
    )
    urls = stream_urls(settings, stream_id, stream_key)
    status = lifecycle.SCHEDULED if data.scheduled_at is not None and data.scheduled_at > now \
        else lifecycle.PREPARING
    # ingest_url and status are server-owned (migration 0011): set through the definer function.
    await session.fetchval("SELECT nchat.stream_prepare($1, $2, $3)", stream_id, urls["whip_url"], status)
    stream = await load_stream(session, stream_id)
    session.emit("stream.created", {**event_base(stream), "status": status, "title": stream["title"]})
    return {**stream, **urls, "stream_key": stream_key}


async def update_stream(session: Session, stream_id: str, data: StreamInput, *, now: datetime | None = None) -> Row:
    stream = await load_stream(session, stream_id)
    await require_manager(session, stream["id"], "update this stream")
    if data.channel_id is not None and data.channel_id != stream["channel_id"]:
        raise ValidationFailed("channelId cannot change; create a stream in the other channel instead")
    values = _validated(data, creating=False, now=now or utcnow())
    if not values:
        return stream
    await set_rule_context(session, now)  # the schedule window's clock (migration 0012)
    sets = ", ".join(f"{c} = ${i}" for i, c in enumerate(values, start=2))
    record = await session.fetchrow(
        f"UPDATE nchat_streams SET {sets} WHERE id = $1 RETURNING {STREAM_COLUMNS}", stream["id"], *values.values()
    )
    updated = row(record)
    changed = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in values.items()}
    session.emit("stream.updated", {**event_base(updated), "changes": changed})
    return updated


async def _transition(session: Session, stream_id: str, target: str, action: str, reason: str | None) -> Row:
    stream = await load_stream(session, stream_id)
    await require_manager(session, stream["id"], action)
    await lifecycle.transition(session, stream["id"], target, reason=reason)
    return await load_stream(session, stream["id"])


async def start_stream(session: Session, stream_id: str) -> Row:
    """Live now. Media calls `lifecycle.transition` itself when frames arrive; this is the manual path."""
    return await _transition(session, stream_id, lifecycle.LIVE, "start this stream", None)


async def end_stream(session: Session, stream_id: str, reason: str | None = None) -> Row:
    return await _transition(session, stream_id, lifecycle.ENDED, "end this stream", reason or "ended by broadcaster")


async def cancel_stream(session: Session, stream_id: str, reason: str | None = None) -> Row:
    return await _transition(session, stream_id, lifecycle.CANCELLED, "cancel this stream", reason or "cancelled")


async def rotate_stream_key(session: Session, settings: Settings, stream_id: str) -> Row:
    """A new key; the old one stops authorising ingest at once. Broadcaster (or admin) only."""
    stream = await load_stream(session, stream_id)
    is_broadcaster = await session.fetchval("SELECT nchat.is_broadcaster($1)", stream["id"])
    if not is_broadcaster and not session.claims.is_admin:
        raise PermissionDenied("only the broadcaster may rotate the stream key")
    if stream["status"] in lifecycle.TERMINAL:
        raise lifecycle.IllegalTransition(f"the stream is '{stream['status']}'; its key can no longer be used")
    stream_key = secrets.token_urlsafe(32)
    if not await session.fetchval("SELECT nchat.stream_rotate_key($1, $2)", stream["id"], stream_key):
        raise PermissionDenied("only the broadcaster may rotate the stream key")
    session.emit("stream.key_rotated", event_base(stream))
    return {**stream, **stream_urls(settings, stream["id"], stream_key), "stream_key": stream_key}


async def get_stream(session: Session, stream_id: str) -> Row:
    return await load_stream(session, stream_id)


async def _list(session: Session, where: str, *args: Any, order: str, limit: int) -> list[Row]:
    records = await session.fetch(
        f"SELECT {STREAM_COLUMNS} FROM nchat_streams WHERE {where} ORDER BY {order} LIMIT {int(limit)}", *args
    )
    return [row(r) for r in records]


def _channel_filter(channel_id: str | None, first_param: int) -> tuple[str, list[Any]]:
    if channel_id is None:
        return "true", []
    return f"channel_id = ${first_param}", [parse_uuid(channel_id, field="channelId")]


async def live_streams(session: Session, channel_id: str | None = None, *, limit: int = 100) -> list[Row]:
    cond, args = _channel_filter(channel_id, 1)
    return await _list(session, f"status = 'live' AND {cond}", *args, order="current_viewers DESC, started_at",
                       limit=limit)


async def scheduled_streams(
    session: Session, channel_id: str | None = None, start: datetime | None = None, end: datetime | None = None,
    *, limit: int = 100,
) -> list[Row]:
    cond, args = _channel_filter(channel_id, 3)
    return await _list(
        session,
        f"status = 'scheduled' AND ($1::timestamptz IS NULL OR scheduled_at >= $1) "
        f"AND ($2::timestamptz IS NULL OR scheduled_at < $2) AND {cond}",
        start, end, *args, order="scheduled_at NULLS LAST", limit=limit,
    )


async def past_streams(session: Session, channel_id: str | None = None, *, limit: int = 50) -> list[Row]:
    """Ended streams, newest first, each with its full recording (or None) under "recording"."""
    cond, args = _channel_filter(channel_id, 1)
    streams = await _list(session, f"status = 'ended' AND {cond}", *args, order="ended_at DESC", limit=limit)
    if not streams:
        return streams
    records = await session.fetch(
        "SELECT DISTINCT ON (stream_id) id, stream_id, status, url, thumbnail_url, duration_seconds, size_bytes, "
        "renditions, created_at FROM nchat_stream_recordings WHERE stream_id = ANY($1::uuid[]) AND kind = 'full' "
        "AND status <> 'deleted' ORDER BY stream_id, created_at DESC",
        [s["id"] for s in streams],
    )
    by_stream = {str(r["stream_id"]): row(r) for r in records}
    return [{**s, "recording": by_stream.get(s["id"])} for s in streams]


async def hls_manifest(session: Session, settings: Settings, stream_id: str) -> Row:
    """The master playlist URL; `available` once media has written it (hls_manifest_url set)."""
    stream = await load_stream(session, stream_id)
    expected = stream_urls(settings, stream["id"])["playback_url"]
    return {
        "stream_id": stream["id"],
        "manifest_url": stream["hls_manifest_url"] or expected,
        "available": stream["hls_manifest_url"] is not None and stream["status"] in ("live", "ending", "ended"),
        "status": stream["status"],
        "recording_url": stream["recording_url"],
    }


async def viewer_count(session: Session, stream_id: str) -> int:
    stream = await load_stream(session, stream_id)
    return int(stream["current_viewers"])
