"""Auto-moderation: a channel's chat rules (blocked terms, link filter, emote-only, minimum account age),
the queue of held messages and its review, and the moderation log.

The rules are judged by Postgres on every chat write (migration 0015's trigger after 0009's rules), so
sendChatMessage, REST, the websocket path and the table API give the same answer: a refusal with its
code (`blocked-term`, `link-not-allowed`, `emote-only`, `account-too-new`) or a message stored with
status 'held', which only its author and the stream's managers read until a manager approves
(it appears in its original place: created_at is unchanged) or denies it. Every moderator action is
logged by triggers (nchat_moderation_log), readable by the channel's moderators.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..db import Session
from ..errors import NotFound, PermissionDenied, ValidationFailed
from ._common import Row, event_base, load_stream, parse_uuid, require_manager, require_user, row

SETTINGS_COLUMNS = (
    "channel_id, link_filter, allowed_domains, emote_only, min_account_age_seconds, updated_by, updated_at")
TERM_COLUMNS = "id, channel_id, term, is_pattern, action, created_by, created_at"
LOG_COLUMNS = "id, channel_id, stream_id, actor_id, action, target_user_id, target_message_id, details, created_at"
MESSAGE_COLUMNS = (
    "id, stream_id, user_id, content, is_pinned, pinned_at, pinned_by, is_deleted, deleted_at, deleted_by, "
    "created_at, status"
)
TERM_ACTIONS = ("block", "hold")


@dataclass(frozen=True)
class ChatSettings:
    link_filter: bool | None = None
    allowed_domains: list[str] | None = None
    emote_only: bool | None = None
    min_account_age_seconds: int | None = None


async def _require_channel_moderator(session: Session, channel_id: str, action: str) -> None:
    if not await session.fetchval("SELECT nchat.can_moderate_channel($1)", channel_id):
        raise PermissionDenied(f"only the channel's owner, admins and moderators may {action}")


async def _channel(session: Session, channel_id: str) -> str:
    cid = parse_uuid(channel_id, field="channelId")
    if not await session.fetchval("SELECT nchat.can_read_channel($1)", cid):
        raise NotFound(f"channel '{channel_id}' not found", code="channel-not-found")
    return cid


async def chat_settings(session: Session, channel_id: str) -> Row:
    """The channel's chat settings (defaults when none were set)."""
    cid = await _channel(session, channel_id)
    record = await session.fetchrow(f"SELECT {SETTINGS_COLUMNS} FROM nchat_channel_chat_settings WHERE channel_id = $1",
                                    cid)
    if record is None:
        return {"channel_id": cid, "link_filter": False, "allowed_domains": [], "emote_only": False,
                "min_account_age_seconds": 0, "updated_by": None, "updated_at": None}
    return row(record)


async def update_chat_settings(session: Session, channel_id: str, changes: ChatSettings) -> Row:
    require_user(session, "change chat settings")
    cid = await _channel(session, channel_id)
    await _require_channel_moderator(session, cid, "change chat settings")
    current = await chat_settings(session, cid)
    values = {k: v for k, v in vars(changes).items() if v is not None}
    if "min_account_age_seconds" in values and not 0 <= values["min_account_age_seconds"] <= 31536000:
        raise ValidationFailed(f"minAccountAgeSeconds {values['min_account_age_seconds']} is outside 0..31536000")
    merged = {**current, **values}
    record = await session.fetchrow(
        f"INSERT INTO nchat_channel_chat_settings (channel_id, link_filter, allowed_domains, emote_only, "
        f"min_account_age_seconds) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (channel_id) DO UPDATE SET "
        f"link_filter = EXCLUDED.link_filter, allowed_domains = EXCLUDED.allowed_domains, "
        f"emote_only = EXCLUDED.emote_only, min_account_age_seconds = EXCLUDED.min_account_age_seconds "
        f"RETURNING {SETTINGS_COLUMNS}",
        cid, merged["link_filter"], list(merged["allowed_domains"]), merged["emote_only"],
        merged["min_account_age_seconds"],
    )
    settings = row(record)
    session.emit("chat.settings", {"channel_id": cid, "stream_id": None, **{
        k: settings[k] for k in ("link_filter", "allowed_domains", "emote_only", "min_account_age_seconds")}})
    return settings


async def blocked_terms(session: Session, channel_id: str) -> list[Row]:
    cid = await _channel(session, channel_id)
    await _require_channel_moderator(session, cid, "read blocked terms")
    records = await session.fetch(f"SELECT {TERM_COLUMNS} FROM nchat_channel_blocked_terms WHERE channel_id = $1 "
                                  f"ORDER BY created_at", cid)
    return [row(r) for r in records]


async def add_blocked_term(session: Session, channel_id: str, term: str, *, is_pattern: bool = False,
                           action: str = "block") -> Row:
    require_user(session, "add blocked terms")
    if action not in TERM_ACTIONS:
        raise ValidationFailed(f"action '{action}' is not one of {', '.join(TERM_ACTIONS)}")
    cid = await _channel(session, channel_id)
    await _require_channel_moderator(session, cid, "add blocked terms")
    # A term already there stays as it is (remove it to change its action).
    record = await session.fetchrow(
        f"INSERT INTO nchat_channel_blocked_terms (channel_id, term, is_pattern, action) VALUES ($1, $2, $3, $4) "
        f"ON CONFLICT (channel_id, term, is_pattern) DO NOTHING RETURNING {TERM_COLUMNS}",
        cid, term.replace("\x00", ""), is_pattern, action)
    if record is None:
        record = await session.fetchrow(
            f"SELECT {TERM_COLUMNS} FROM nchat_channel_blocked_terms WHERE channel_id = $1 AND term = "
            f"nchat.clean_text($2, 'term', 200) AND is_pattern = $3", cid, term.replace("\x00", ""), is_pattern)
    return row(record)


async def remove_blocked_term(session: Session, term_id: str) -> bool:
    require_user(session, "remove blocked terms")
    removed = await session.fetchval("DELETE FROM nchat_channel_blocked_terms WHERE id = $1 RETURNING id",
                                     parse_uuid(term_id, field="termId"))
    return removed is not None


def _message_event(stream: Row, message: Row) -> dict[str, Any]:
    return {
        **event_base(stream), "id": message["id"], "user_id": message["user_id"], "content": message["content"],
        "created_at": message["created_at"].isoformat(), "is_pinned": message["is_pinned"],
        "status": message["status"],
    }


async def held_messages(session: Session, stream_id: str) -> list[Row]:
    """The review queue of a stream, oldest first (the stream's managers)."""
    stream = await load_stream(session, stream_id)
    await require_manager(session, stream["id"], "review held messages")
    records = await session.fetch(
        f"SELECT {MESSAGE_COLUMNS} FROM nchat_stream_chat_messages WHERE stream_id = $1 AND status = 'held' "
        f"AND NOT is_deleted ORDER BY created_at, id", stream["id"])
    return [row(r) for r in records]


async def review_message(session: Session, message_id: str, *, approve: bool) -> Row:
    """Approve (published in its original place, the chat event goes out) or deny a held message."""
    require_user(session, "review held messages")
    mid = parse_uuid(message_id, field="messageId")
    record = await session.fetchrow(f"SELECT {MESSAGE_COLUMNS} FROM nchat.chat_review($1, $2)", mid, approve)
    if record is None:
        raise NotFound(f"chat message '{message_id}' not found", code="message-not-found")
    message = row(record)
    stream = await load_stream(session, message["stream_id"])
    if approve:
        session.emit("chat.message", _message_event(stream, message))
    else:
        session.emit("chat.denied", {**event_base(stream), "id": message["id"], "user_id": message["user_id"]})
    return message


async def moderation_log(session: Session, channel_id: str, *, limit: int = 100) -> list[Row]:
    """The channel's moderator actions, newest first (owner, admins, moderators)."""
    if not 1 <= limit <= 500:
        raise ValidationFailed(f"limit {limit} is outside 1..500")
    cid = await _channel(session, channel_id)
    await _require_channel_moderator(session, cid, "read the moderation log")
    records = await session.fetch(f"SELECT {LOG_COLUMNS} FROM nchat_moderation_log WHERE channel_id = $1 "
                                  f"ORDER BY created_at DESC LIMIT $2", cid, limit)
    return [row(r) for r in records]
