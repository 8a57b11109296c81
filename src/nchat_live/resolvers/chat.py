"""Stream chat: send (with every rule of the guide), delete, pin/unpin, and paged history.

Rate limit and slow mode are counted from the messages themselves in Postgres, so they hold
across API processes; an advisory lock per (user, stream) makes concurrent sends count exactly.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ..db import Session
from ..errors import NchatError, NotFound, PermissionDenied, RateLimited, ValidationFailed
from ._common import (
    Row,
    clean_text,
    event_base,
    load_stream,
    parse_uuid,
    require_live,
    require_manager,
    require_user,
    row,
    utcnow,
)
from .moderation import check_not_banned

MAX_LENGTH = 500
_MESSAGE_COLUMNS = (
    "id, stream_id, user_id, content, is_pinned, pinned_at, pinned_by, is_deleted, deleted_at, deleted_by, "
    "created_at"
)


@dataclass(frozen=True)
class ChatLimits:
    messages: int = 5
    window: timedelta = timedelta(seconds=10)


DEFAULT_LIMITS = ChatLimits()


class ChatRefused(NchatError):
    http_status = 403


def public_message(message: Row) -> Row:
    """A message as clients see it: a deleted one keeps its place but not its content."""
    if message.get("is_deleted"):
        return {**message, "content": ""}
    return message


def _event(stream: Row, message: Row) -> dict[str, Any]:
    return {
        **event_base(stream), "id": message["id"], "user_id": message["user_id"], "content": message["content"],
        "created_at": message["created_at"].isoformat(), "is_pinned": message["is_pinned"],
    }


async def _is_manager(session: Session, stream_id: str) -> bool:
    return bool(await session.fetchval("SELECT nchat.can_manage_stream($1)", stream_id))


async def _check_chat_mode(session: Session, stream: Row, user_id: str, now: datetime) -> None:
    mode = stream["chat_mode"]
    if mode == "followers_only":
        follows = await session.fetchval(
            "SELECT EXISTS (SELECT 1 FROM nchat_user_follows WHERE follower_id = $1 AND following_id = $2)",
            user_id, stream["broadcaster_id"],
        )
        if not follows:
            raise ChatRefused("chat is for followers of the broadcaster only", code="chat-mode-followers-only")
    elif mode == "subscribers_only":
        subscribed = await session.fetchval(
            "SELECT EXISTS (SELECT 1 FROM nchat_channel_subscriptions WHERE user_id = $1 AND channel_id = $2 "
            "AND (expires_at IS NULL OR expires_at > $3))",
            user_id, stream["channel_id"], now,
        )
        if not subscribed:
            raise ChatRefused("chat is for subscribers of the channel only", code="chat-mode-subscribers-only")


async def _check_pace(session: Session, stream: Row, user_id: str, now: datetime, limits: ChatLimits,
                      slow_mode: bool) -> None:
    # Serialises this user's sends to this stream so the counts below cannot be raced.
    await session.fetchval("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", f"chat:{user_id}:{stream['id']}")
    recent = await session.fetch(
        "SELECT created_at FROM nchat_stream_chat_messages WHERE user_id = $1 AND stream_id = $2 "
        "AND created_at > $3 AND created_at <= $4 ORDER BY created_at DESC",
        user_id, stream["id"], now - max(limits.window, timedelta(seconds=stream["slow_mode_seconds"])), now,
    )
    slow = stream["slow_mode_seconds"]
    if slow_mode and slow > 0 and recent:
        wait = slow - (now - recent[0]["created_at"]).total_seconds()
        if wait > 0:
            raise RateLimited(f"slow mode is on: one message every {slow} s; wait {wait:.1f} s", code="slow-mode",
                              extensions={"retryAfterSeconds": round(wait, 1)})
    in_window = [r["created_at"] for r in recent if r["created_at"] > now - limits.window]
    if len(in_window) >= limits.messages:
        wait = (in_window[limits.messages - 1] + limits.window - now).total_seconds()
        raise RateLimited(
            f"at most {limits.messages} messages per {int(limits.window.total_seconds())} s; wait {wait:.1f} s",
            extensions={"retryAfterSeconds": round(wait, 1)},
        )


async def send_chat_message(
    session: Session, stream_id: str, content: str, *, now: datetime | None = None,
    limits: ChatLimits = DEFAULT_LIMITS,
) -> Row:
    user_id = require_user(session, "chat")
    text = clean_text(content, field="content", max_length=MAX_LENGTH)
    now = now or utcnow()
    stream = await load_stream(session, stream_id)
    require_live(stream, "chat")
    if not stream["enable_chat"]:
        raise ChatRefused("chat is disabled for this stream", code="chat-disabled")
    await check_not_banned(session, stream, user_id, now)
    manager = await _is_manager(session, stream["id"])
    if not manager:
        await _check_chat_mode(session, stream, user_id, now)
    await _check_pace(session, stream, user_id, now, limits, slow_mode=not manager)
    record = await session.fetchrow(
        f"INSERT INTO nchat_stream_chat_messages (stream_id, user_id, content, created_at) VALUES ($1, $2, $3, $4) "
        f"RETURNING {_MESSAGE_COLUMNS}",
        stream["id"], user_id, text, now,
    )
    message = row(record)
    session.emit("chat.message", _event(stream, message))
    return message


async def _load_message(session: Session, message_id: str, stream_id: str | None) -> tuple[Row, Row]:
    """The message and its stream; `stream_id`, when given, must be the message's (REST paths name both)."""
    mid = parse_uuid(message_id, field="messageId")
    record = await session.fetchrow(f"SELECT {_MESSAGE_COLUMNS} FROM nchat_stream_chat_messages WHERE id = $1", mid)
    if record is None or (stream_id is not None and str(record["stream_id"]) != stream_id):
        raise NotFound(f"chat message '{message_id}' not found", code="message-not-found")
    message = row(record)
    return message, await load_stream(session, message["stream_id"])


async def delete_chat_message(
    session: Session, message_id: str, *, stream_id: str | None = None, now: datetime | None = None
) -> Row:
    """Soft delete by the author or a stream manager; the event carries the id only."""
    user_id = require_user(session, "delete messages")
    message, stream = await _load_message(session, message_id, stream_id)
    if message["user_id"] != user_id and not await _is_manager(session, stream["id"]):
        raise PermissionDenied("only the author or a moderator may delete this message")
    if message["is_deleted"]:
        return public_message(message)
    record = await session.fetchrow(
        f"UPDATE nchat_stream_chat_messages SET is_deleted = true, deleted_at = $2, deleted_by = $3, "
        f"is_pinned = false WHERE id = $1 RETURNING {_MESSAGE_COLUMNS}",
        message["id"], now or utcnow(), user_id,
    )
    deleted = row(record)
    session.emit("chat.deleted", {**event_base(stream), "id": deleted["id"]})
    return public_message(deleted)


async def pin_chat_message(
    session: Session, message_id: str, *, stream_id: str | None = None, now: datetime | None = None
) -> Row:
    """Pin one message (the previously pinned one is unpinned): broadcaster or moderator."""
    user_id = require_user(session, "pin messages")
    message, stream = await _load_message(session, message_id, stream_id)
    await require_manager(session, stream["id"], "pin messages")
    if message["is_deleted"]:
        raise ValidationFailed("a deleted message cannot be pinned", code="message-deleted")
    previous = await session.fetch(
        "UPDATE nchat_stream_chat_messages SET is_pinned = false, pinned_at = NULL, pinned_by = NULL "
        "WHERE stream_id = $1 AND is_pinned AND id <> $2 RETURNING id",
        stream["id"], message["id"],
    )
    for p in previous:
        session.emit("chat.unpinned", {**event_base(stream), "id": str(p["id"])})
    record = await session.fetchrow(
        f"UPDATE nchat_stream_chat_messages SET is_pinned = true, pinned_at = $2, pinned_by = $3 WHERE id = $1 "
        f"RETURNING {_MESSAGE_COLUMNS}",
        message["id"], now or utcnow(), user_id,
    )
    pinned = row(record)
    session.emit("chat.pinned", _event(stream, pinned))
    return pinned


async def unpin_chat_message(session: Session, message_id: str, *, stream_id: str | None = None) -> Row:
    require_user(session, "unpin messages")
    message, stream = await _load_message(session, message_id, stream_id)
    await require_manager(session, stream["id"], "unpin messages")
    record = await session.fetchrow(
        f"UPDATE nchat_stream_chat_messages SET is_pinned = false, pinned_at = NULL, pinned_by = NULL "
        f"WHERE id = $1 RETURNING {_MESSAGE_COLUMNS}",
        message["id"],
    )
    unpinned = row(record)
    if message["is_pinned"]:
        session.emit("chat.unpinned", {**event_base(stream), "id": unpinned["id"]})
    return public_message(unpinned)


def _encode_cursor(created_at: datetime, message_id: str) -> str:
    raw = json.dumps([created_at.isoformat(), message_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        at, mid = json.loads(base64.urlsafe_b64decode(padded))
        return datetime.fromisoformat(at), parse_uuid(mid, field="cursor")
    except (ValueError, TypeError, json.JSONDecodeError):
        raise ValidationFailed(f"cursor '{cursor}' is not one this API returned") from None


async def chat_history(
    session: Session, stream_id: str, *, limit: int = 50, before: str | None = None,
) -> Row:
    """Newest-first pages: {"messages": [oldest..newest of the page], "next_cursor", "has_more"}.

    Pass `next_cursor` as `before` to get the page of older messages. Deleted messages are
    listed with empty content so clients can remove them in place.
    """
    if not 1 <= limit <= 200:
        raise ValidationFailed(f"limit {limit} is outside 1..200")
    stream = await load_stream(session, stream_id)
    args: list[Any] = [stream["id"], limit + 1]
    cond = ""
    if before:
        at, mid = _decode_cursor(before)
        cond = "AND (created_at, id) < ($3, $4::uuid)"
        args += [at, mid]
    records = await session.fetch(
        f"SELECT {_MESSAGE_COLUMNS} FROM nchat_stream_chat_messages WHERE stream_id = $1 {cond} "
        f"ORDER BY created_at DESC, id DESC LIMIT $2",
        *args,
    )
    page = [public_message(row(r)) for r in records[:limit]]
    has_more = len(records) > limit
    next_cursor = _encode_cursor(page[-1]["created_at"], page[-1]["id"]) if has_more and page else None
    pinned = await session.fetchrow(
        f"SELECT {_MESSAGE_COLUMNS} FROM nchat_stream_chat_messages WHERE stream_id = $1 AND is_pinned "
        f"AND NOT is_deleted LIMIT 1",
        stream["id"],
    )
    return {"messages": list(reversed(page)), "next_cursor": next_cursor, "has_more": has_more,
            "pinned": row(pinned) if pinned else None}
