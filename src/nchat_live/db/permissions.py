"""The permission model (issue 12) as data: per request role and table, the columns it may select,
insert and update, whether it may delete, the row check, the presets and the server-owned columns.

Migration 0011 is the SQL of this model; `tests/security/test_permission_matrix.py` derives its cases
from this table and checks them against the live catalog (column privileges and policies), so the two
cannot drift. The admin role (the server and admin-secret requests) holds every privilege.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ROLES = ("anonymous", "user", "moderator")
SIGNED_IN = ("user", "moderator")


@dataclass(frozen=True)
class TableRule:
    """One role's permission on one table, as Hasura metadata states it."""

    select: frozenset[str] = frozenset()
    insert: frozenset[str] = frozenset()
    update: frozenset[str] = frozenset()
    delete: bool = False
    check: str = ""  # the row check, in words (the policies in migration 0011/0001)
    presets: dict[str, str] = field(default_factory=dict)


def cols(text: str) -> frozenset[str]:
    return frozenset(c.strip() for c in text.split(",") if c.strip())


STREAM_READ = cols(
    "id, channel_id, broadcaster_id, title, description, thumbnail_url, scheduled_at, status, ingest_url, "
    "hls_manifest_url, dash_manifest_url, max_resolution, bitrate_kbps, fps, is_recorded, enable_chat, "
    "enable_reactions, enable_qa, chat_mode, slow_mode_seconds, tags, language, current_viewers, peak_viewers, "
    "total_views, total_reactions, total_chat_messages, started_at, ended_at, duration_seconds, recording_url, "
    "end_reason, metadata, created_at, updated_at, "
    # 0019: the guest program (layout, the guest a solo frame shows), written by nchat.stream_set_program.
    "program_layout, program_focus, "
    # 0025: its channel's is_private, kept by triggers (the read policy tests it before the hidden set).
    "in_private_channel")
STREAM_SETTINGS = cols(
    "title, description, thumbnail_url, scheduled_at, max_resolution, bitrate_kbps, fps, is_recorded, enable_chat, "
    "enable_reactions, enable_qa, chat_mode, slow_mode_seconds, tags, language, metadata")
# Written only by the server or the domain's definer functions (nchat.stream_transition, stream_prepare,
# stream_rotate_key, the counter triggers, media).
STREAM_SERVER_OWNED = cols(
    "status, started_at, ended_at, duration_seconds, end_reason, current_viewers, peak_viewers, total_views, "
    "total_reactions, total_chat_messages, stream_key, ingest_url, hls_manifest_url, dash_manifest_url, "
    "recording_url, broadcaster_id, channel_id, program_layout, program_focus, in_private_channel")
MESSAGE_READ = cols(
    "id, stream_id, user_id, content, is_pinned, pinned_at, pinned_by, is_deleted, deleted_at, deleted_by, "
    "metadata, created_at, updated_at, status, in_private_channel")
# status: 'held' by the moderation rules (migration 0015), 'visible'/'denied' by nchat.chat_review.
# in_private_channel: its stream's (0025, triggers).
MESSAGE_SERVER_OWNED = cols(
    "is_pinned, pinned_at, pinned_by, is_deleted, deleted_at, deleted_by, status, in_private_channel")
VIEWER_READ = cols(
    "id, stream_id, user_id, quality, joined_at, last_seen_at, left_at, watch_duration_seconds, buffering_ms, "
    "quality_switches, sent_chat_messages, sent_reactions, metadata, "
    # 0017: what the session was watched from (no address), and the player's bitrate reports.
    "country, device_class, os_family, browser_family, bitrate_kbps_sum, bitrate_samples")
VIEWER_ADMIN_ONLY = cols("viewer_session_id, ip_address, user_agent, holders")
METRIC_COLS = cols(
    "id, stream_id, recorded_at, current_viewer_count, bitrate_kbps, upload_bitrate_kbps, fps, resolution, "
    "dropped_frames, latency_ms, packet_loss_percent, jitter_ms, rtt_ms, encoder_speed, health_score, metadata")
# in_private_channel on the stream- and channel-scoped tables below: the row's channel's is_private (0025 for
# streams and chat, 0029 here), kept by triggers and read by the policies before the hidden set; written by
# no request role.
PRIVATE_FLAG = cols("in_private_channel")
RECORDING_READ = cols(
    "id, stream_id, kind, status, url, thumbnail_url, duration_seconds, size_bytes, renditions, clip_start_seconds, "
    "clip_end_seconds, created_by, metadata, created_at, updated_at") | PRIVATE_FLAG
QUESTION_READ = cols("id, stream_id, user_id, content, status, upvotes, answer, answered_at, answered_by, "
                     "created_at, updated_at") | PRIVATE_FLAG

ENGAGEMENT_READ = cols("stream_id, bucket, bucket_seconds, starts_at, chat_messages, reactions, viewer_joins, "
                       "questions, upvotes")
HIGHLIGHT_READ = cols("id, stream_id, clip_id, peak_seconds, start_seconds, end_seconds, score, title, terms, status, "
                      "decided_by, decided_at, created_at, updated_at") | PRIVATE_FLAG
CHAPTER_READ = cols("id, stream_id, start_seconds, title, source, highlight_id, created_by, created_at, "
                    "updated_at") | PRIVATE_FLAG

# Polls and moderation (migration 0015): counts and status are the server's (definer triggers and
# nchat.poll_set_status / chat_review); who voted for what is the voter's and the broadcaster's.
POLL_READ = cols("id, stream_id, created_by, question, options, allow_multiple, duration_seconds, status, opened_at, "
                 "closes_at, closed_at, vote_counts, voters, revision, created_at, updated_at") | PRIVATE_FLAG
POLL_SERVER_OWNED = cols("status, opened_at, closes_at, closed_at, vote_counts, voters, revision") | PRIVATE_FLAG
CHAT_SETTINGS_READ = cols("channel_id, link_filter, allowed_domains, emote_only, min_account_age_seconds, updated_by, "
                          "updated_at") | PRIVATE_FLAG
CHAT_SETTINGS_WRITE = cols("link_filter, allowed_domains, emote_only, min_account_age_seconds")
MODERATION_LOG_READ = cols("id, channel_id, stream_id, actor_id, action, target_user_id, target_message_id, details, "
                           "created_at")

# 0017: simulcast destinations. The key is write-only: no role selects it (nchat_admin neither; the
# media worker reads it through nchat.simulcast_targets). Status columns are the worker's.
SIMULCAST_READ = cols("id, stream_id, name, url, key_hint, rendition, enabled, status, last_error, attempts, "
                      "status_at, created_by, created_at, updated_at")
SIMULCAST_SERVER_OWNED = cols("key_hint, status, last_error, attempts, status_at")

# 0019: guest speakers. Every column is the server's: rows change only through the definer functions
# nchat.guest_invite / guest_respond / guest_remove / guest_set_muted (resolvers/guests.py).
GUEST_READ = cols("id, stream_id, user_id, invited_by, status, muted, created_at, responded_at")

_USERS_PUBLIC = cols("id, username, display_name, avatar_url, status, created_at, updated_at")
_CHANNEL_READ = cols("id, name, slug, description, is_private, owner_id, metadata, created_at, updated_at")
MEMBER_READ = cols("id, channel_id, user_id, role, joined_at") | PRIVATE_FLAG
REACTION_READ = cols("id, stream_id, user_id, emoji, position_x, position_y, created_at") | PRIVATE_FLAG

SIGNED_IN_MODEL: dict[str, TableRule] = {
    "nchat_users": TableRule(
        select=_USERS_PUBLIC | cols("metadata"), update=cols("display_name, avatar_url, status, metadata"),
        check="read all but email (yours through nchat.my_email() / myEmail; admins read all); update yourself"),
    "nchat_channels": TableRule(
        select=_CHANNEL_READ, insert=cols("id, name, slug, description, is_private, owner_id, metadata"),
        update=cols("name, description, is_private, metadata"),
        check="public or member; owner_id = caller on insert; owner/admin (or staff) update",
        presets={"owner_id": "caller"}),
    "nchat_channel_members": TableRule(
        select=MEMBER_READ, insert=cols("channel_id, user_id, role"),
        update=cols("role"), delete=True,
        check="owner/admin manage; only the owner transfers ownership; the owner row is never demoted or removed"),
    "nchat_user_follows": TableRule(
        select=cols("follower_id, following_id, created_at"), insert=cols("follower_id, following_id"), delete=True,
        check="follower_id = caller", presets={"follower_id": "caller"}),
    "nchat_channel_subscriptions": TableRule(
        select=cols("id, channel_id, user_id, tier, expires_at, created_at"), check="your own, or channel staff"),
    "nchat_streams": TableRule(
        select=STREAM_READ,
        insert=STREAM_SETTINGS | cols("id, channel_id, broadcaster_id, stream_key"),
        update=STREAM_SETTINGS, delete=True,
        check="readable with the channel; broadcaster_id = caller and a channel member on insert; "
              "managers update the settings; stream_key read through nchat.stream_key(id) by the broadcaster",
        presets={"broadcaster_id": "caller"}),
    "nchat_stream_viewers": TableRule(
        select=VIEWER_READ,
        check="your own sessions, or the stream's managers; written only by the nchat.viewer_* functions"),
    "nchat_stream_quality_metrics": TableRule(
        select=METRIC_COLS, insert=METRIC_COLS, check="broadcaster inserts; managers read"),
    "nchat_stream_chat_messages": TableRule(
        select=MESSAGE_READ, insert=cols("stream_id, user_id, content, metadata"), update=cols("content"),
        check="readable with the stream; posted as yourself (0009 rules); the author edits content of a "
              "non-deleted message while not banned; deleted content is blank everywhere",
        presets={"user_id": "caller"}),
    "nchat_stream_reactions": TableRule(
        select=REACTION_READ,
        insert=cols("stream_id, user_id, emoji, position_x, position_y"), check="as yourself (0009 rules)",
        presets={"user_id": "caller"}),
    "nchat_stream_recordings": TableRule(
        select=RECORDING_READ,
        insert=cols("id, stream_id, kind, status, duration_seconds, size_bytes, renditions, "
                    "clip_start_seconds, clip_end_seconds, created_by, metadata"),
        delete=True, check="managers add clips (kind = 'clip') and delete; url and thumbnail_url are the "
                           "server's (nchat.clip_set_url)", presets={"created_by": "caller"}),
    "nchat_stream_questions": TableRule(
        select=QUESTION_READ, insert=cols("stream_id, user_id, content"),
        update=cols("status, answer, answered_at, answered_by"),
        check="asked as yourself; managers answer", presets={"user_id": "caller"}),
    "nchat_stream_question_votes": TableRule(
        select=cols("question_id, user_id, created_at"), insert=cols("question_id, user_id"),
        check="as yourself, never on your own question", presets={"user_id": "caller"}),
    "nchat_stream_bans": TableRule(
        select=cols("id, channel_id, stream_id, user_id, banned_by, reason, expires_at, created_at"),
        insert=cols("channel_id, stream_id, user_id, banned_by, reason, expires_at"), delete=True,
        check="stream ban: manage the stream; channel ban: moderate the channel (its stream in it); "
              "never the broadcaster or the channel owner",
        presets={"banned_by": "caller"}),
    "nchat_stream_reminders": TableRule(
        select=cols("stream_id, user_id, created_at"), insert=cols("stream_id, user_id"), delete=True,
        check="your own", presets={"user_id": "caller"}),
    # Migration 0016 (issue 18): engagement is the server's (nchat.engagement_refresh); highlights are
    # inserted by the server, decided by the stream's managers; chapters are the managers'.
    "nchat_stream_engagement": TableRule(select=ENGAGEMENT_READ, check="readable with the stream; server-owned"),
    "nchat_stream_highlights": TableRule(
        select=HIGHLIGHT_READ, update=cols("status, title"),
        check="kept ones readable with the stream, all by its managers; managers keep/discard; "
              "decided_by/decided_at are the caller and now"),
    "nchat_stream_chapters": TableRule(
        select=CHAPTER_READ, insert=cols("stream_id, start_seconds, title, created_by"),
        update=cols("start_seconds, title"), delete=True,
        check="readable with the stream; its managers add, edit and remove", presets={"created_by": "caller"}),
    # Migration 0015 (issue 18): polls and moderation tools.
    "nchat_stream_polls": TableRule(
        select=POLL_READ, insert=cols("id, stream_id, created_by, question, options, allow_multiple, duration_seconds"),
        check="readable with the stream; the stream's managers create (on a live stream); opened and closed by "
              "nchat.poll_set_status; counts kept by the vote trigger", presets={"created_by": "caller"}),
    "nchat_stream_poll_votes": TableRule(
        select=cols("poll_id, user_id, choices, created_at, updated_at"), insert=cols("poll_id, user_id, choices"),
        update=cols("choices"),
        check="one row per voter and poll (primary key); as yourself while the poll is open; read by the voter and "
              "the stream's broadcaster only", presets={"user_id": "caller"}),
    "nchat_channel_chat_settings": TableRule(
        select=CHAT_SETTINGS_READ, insert=CHAT_SETTINGS_WRITE | cols("channel_id"), update=CHAT_SETTINGS_WRITE,
        check="readable with the channel; written by its owner/admin/moderators (logged)",
        presets={"updated_by": "caller"}),
    "nchat_channel_blocked_terms": TableRule(
        select=cols("id, channel_id, term, is_pattern, action, matcher, created_by, created_at"),
        insert=cols("channel_id, term, is_pattern, action"), delete=True,
        check="the channel's owner/admin/moderators only (logged)", presets={"created_by": "caller"}),
    "nchat_moderation_log": TableRule(
        select=MODERATION_LOG_READ, check="the channel's owner/admin/moderators read; written by triggers only"),
}

SIGNED_IN_MODEL["nchat_stream_simulcast_destinations"] = TableRule(
    select=SIMULCAST_READ, insert=cols("stream_id, name, url, stream_key, rendition, enabled, created_by"),
    update=cols("name, url, stream_key, rendition, enabled"), delete=True,
    check="the stream's managers; stream_key written, never read; created_by is the caller",
    presets={"created_by": "caller"})

SIGNED_IN_MODEL["nchat_stream_guests"] = TableRule(
    select=GUEST_READ,
    check="the invited user and the stream's managers read (nobody else, viewers neither); no direct writes: "
          "invite/respond/remove/leave/mute through the nchat.guest_* definer functions")

ANONYMOUS_MODEL: dict[str, TableRule] = {
    "nchat_users": TableRule(select=_USERS_PUBLIC, check="read all"),
    "nchat_channels": TableRule(select=_CHANNEL_READ, check="public channels"),
    "nchat_channel_members": TableRule(select=MEMBER_READ, check="with a public channel"),
    "nchat_user_follows": TableRule(select=cols("follower_id, following_id, created_at"), check="read all"),
    "nchat_streams": TableRule(select=STREAM_READ, check="public channels"),
    "nchat_stream_chat_messages": TableRule(select=MESSAGE_READ, check="public streams"),
    "nchat_stream_reactions": TableRule(select=REACTION_READ, check="public streams"),
    "nchat_stream_recordings": TableRule(select=RECORDING_READ, check="public streams"),
    "nchat_stream_questions": TableRule(select=QUESTION_READ, check="public streams"),
    "nchat_stream_engagement": TableRule(select=ENGAGEMENT_READ, check="public streams"),
    "nchat_stream_highlights": TableRule(select=HIGHLIGHT_READ, check="kept ones of public streams"),
    "nchat_stream_chapters": TableRule(select=CHAPTER_READ, check="public streams"),
    "nchat_stream_polls": TableRule(select=POLL_READ, check="public streams"),
    "nchat_channel_chat_settings": TableRule(select=CHAT_SETTINGS_READ, check="public channels"),
}

# Tables only the server (admin) touches.
SERVER_ONLY_TABLES = ("nchat_stream_reminders_sent", "nchat_media_workers", "nchat_media_leases")

# Functions (in schema nchat) no request role below admin may execute: they write server-owned state or
# read secrets without checking the caller's rights themselves (migration 0018).
SERVER_ONLY_FUNCTIONS = (
    "mod_log(uuid, uuid, text, uuid, uuid, jsonb)",
    "publish_admission(uuid)",
    "simulcast_targets(uuid)",
    "retire_quality_partition(text, bigint)",
    "ensure_change_triggers()",
    "engagement_refresh(uuid, integer)",
    # 0019: a guest publisher's admission (the media worker's) and the guest functions' helpers.
    "guest_admission(uuid, uuid, uuid)",
    "guest_banned(uuid, uuid)",
    "guest_check(uuid, uuid)",
    "guest_lock(uuid)",
    "guest_require_manager(uuid, text)",
    "guest_require_open(text, text)",
    # 0027: the scheduler's fold of the chat tallies into their streams.
    "fold_chat_tallies()",
    # 0030: the scheduler's quality-metrics partitions (runs as its owner).
    "ensure_quality_metrics_partition(timestamp with time zone)",
)

MODEL: dict[str, dict[str, TableRule]] = {
    "anonymous": ANONYMOUS_MODEL,
    "user": SIGNED_IN_MODEL,
    "moderator": SIGNED_IN_MODEL,
}


def rule(role: str, table: str) -> TableRule:
    """The role's rule on the table (no rights when the model names none)."""
    return MODEL[role].get(table, TableRule())


PG_ROLE = {"anonymous": "nchat_anonymous", "user": "nchat_user", "moderator": "nchat_moderator"}
