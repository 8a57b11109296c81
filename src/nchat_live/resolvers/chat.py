"""Stream chat: send (with every rule of the guide), delete, pin/unpin, and paged history.

The send rules live in Postgres (migration 0009's insert trigger): rate limit and slow mode are
counted from the messages themselves, so they hold across API processes and for every write path.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ..db import Session
from ..errors import NotFound, PermissionDenied, ValidationFailed
from ._common import (
    RULE_CONTEXT,
    Row,
    event_base,
    load_stream,
    parse_uuid,
    require_manager,
    require_user,
    row,
    rule_context,
    strip_nul,
    utcnow,
)

_MESSAGE_COLUMNS = (
    "id, stream_id, user_id, content, is_pinned, pinned_at, pinned_by, is_deleted, deleted_at, deleted_by, "
    "created_at, status"
)


# sendChatMessage in one statement (one round trip): the stream as the caller may see it (none: no
# row to insert, stream-not-found), the rule context set while that row is read (so before the insert
# triggers of 0009/0015 read it, as set_rule_context's own statement would be), then the insert.
_SEND = (
    "WITH s AS (SELECT st.id, st.channel_id FROM nchat_streams st, "
    f"{RULE_CONTEXT.format(names='$4', values='$5')} AS _rules(n) WHERE st.id = $1) "
    "INSERT INTO nchat_stream_chat_messages (stream_id, user_id, content) SELECT s.id, $2, $3 FROM s "
    f"RETURNING {_MESSAGE_COLUMNS}, (SELECT s.channel_id FROM s) AS _channel_id"
)


@dataclass(frozen=True)
class ChatLimits:
    messages: int = 5
    window: timedelta = timedelta(seconds=10)


DEFAULT_LIMITS = ChatLimits()


def public_message(message: Row) -> Row:
    """A message as clients see it: a deleted one keeps its place but not its content."""
    if message.get("is_deleted"):
        return {**message, "content": ""}
    return message


def _event(stream: Row, message: Row) -> dict[str, Any]:
    return {
        **event_base(stream), "id": message["id"], "user_id": message["user_id"], "content": message["content"],
        "created_at": message["created_at"].isoformat(), "is_pinned": message["is_pinned"],
        "status": message.get("status", "visible"),
    }


async def _is_manager(session: Session, stream_id: str) -> bool:
    return bool(await session.fetchval("SELECT nchat.can_manage_stream($1)", stream_id))


async def send_chat_message(
    session: Session, stream_id: str, content: str, *, now: datetime | None = None,
    limits: ChatLimits = DEFAULT_LIMITS,
) -> Row:
    """Post as the caller. The rules (content 1..500 cleaned, stream live, chat enabled, chat mode,
    bans and timeouts, slow mode, rate limit; the channel's moderation rules of migration 0015) are the
    insert triggers', so the table API obeys them too; a refusal arrives as NchatError with its code, a
    held message comes back with status 'held'."""
    user_id = require_user(session, "chat")
    sid = parse_uuid(stream_id, field="streamId")
    record = await session.fetchrow(_SEND, sid, user_id, strip_nul(content), *rule_context(
        now, chat_max=limits.messages, chat_window_s=limits.window.total_seconds()))
    if record is None:  # no row of the stream as the caller may see it (RLS): nothing inserted
        raise NotFound(f"stream '{stream_id}' not found", code="stream-not-found")
    message = row(record)
    stream = {"id": message["stream_id"], "channel_id": str(message.pop("_channel_id"))}
    # A message the channel's rules hold (migration 0015) reaches its author and the moderators only.
    session.emit("chat.held" if message["status"] == "held" else "chat.message", _event(stream, message))
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
    # Moderation flags are server-owned (migration 0011): the definer function checks the same rights.
    record = await session.fetchrow(
        f"SELECT {_MESSAGE_COLUMNS} FROM nchat.chat_delete($1, $2)", message["id"], now or utcnow())
    deleted = row(record)
    session.emit("chat.deleted", {**event_base(stream), "id": deleted["id"]})
    return public_message(deleted)


async def pin_chat_message(
    session: Session, message_id: str, *, stream_id: str | None = None, now: datetime | None = None
) -> Row:
    """Pin one message (the previously pinned one is unpinned): broadcaster or moderator."""
    require_user(session, "pin messages")
    message, stream = await _load_message(session, message_id, stream_id)
    await require_manager(session, stream["id"], "pin messages")
    if message["is_deleted"]:
        raise ValidationFailed("a deleted message cannot be pinned", code="message-deleted")
    if message["status"] != "visible":
        # Its pin event would carry the text to everyone (migration 0015's held and denied messages).
        raise ValidationFailed(f"a {message['status']} message cannot be pinned; approve it first",
                               code="message-not-visible")
    previous = await session.fetch(
        "SELECT p.id FROM nchat_stream_chat_messages m, nchat.chat_set_pinned(m.id, false, $3) p "
        "WHERE m.stream_id = $1 AND m.is_pinned AND m.id <> $2",
        stream["id"], message["id"], now or utcnow(),
    )
    for p in previous:
        session.emit("chat.unpinned", {**event_base(stream), "id": str(p["id"])})
    record = await session.fetchrow(
        f"SELECT {_MESSAGE_COLUMNS} FROM nchat.chat_set_pinned($1, true, $2)", message["id"], now or utcnow())
    pinned = row(record)
    session.emit("chat.pinned", _event(stream, pinned))
    return pinned


async def unpin_chat_message(session: Session, message_id: str, *, stream_id: str | None = None) -> Row:
    require_user(session, "unpin messages")
    message, stream = await _load_message(session, message_id, stream_id)
    await require_manager(session, stream["id"], "unpin messages")
    record = await session.fetchrow(
        f"SELECT {_MESSAGE_COLUMNS} FROM nchat.chat_set_pinned($1, false, NULL)", message["id"])
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
