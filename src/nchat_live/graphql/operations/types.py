"""Strawberry output and input types of the streaming operations, and the row → type conversion.

Names avoid the generated Hasura table types (`nchat_streams`, ...) and the event types of
graphql/events.py.
"""

from __future__ import annotations

import dataclasses
import typing
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

import strawberry

from ...resolvers.streams import StreamInput

T = TypeVar("T")


def build(cls: type[T], data: dict[str, Any]) -> T:
    """A Strawberry type from a domain row: takes the fields the type declares, None when absent."""
    return cls(**{f.name: data.get(f.name) for f in dataclasses.fields(cls)})  # type: ignore[arg-type]


@strawberry.type(description="A recording of an ended stream, for replay.")
class StreamRecordingInfo:
    id: strawberry.ID
    status: str
    url: str | None
    thumbnail_url: str | None
    duration_seconds: float | None
    size_bytes: int | None
    renditions: list[str] | None
    created_at: datetime


@strawberry.type(name="LiveStream", description="A live stream. streamKey and the ingest URLs only come back from "
                                      "createStream and rotateStreamKey, to the broadcaster.")
class StreamObject:
    """The GraphQL object of a stream (named LiveStream in the schema)."""

    id: strawberry.ID
    channel_id: strawberry.ID
    broadcaster_id: strawberry.ID
    title: str
    description: str | None
    thumbnail_url: str | None
    scheduled_at: datetime | None
    status: str
    ingest_url: str | None
    hls_manifest_url: str | None
    max_resolution: str
    bitrate_kbps: int | None
    fps: int | None
    is_recorded: bool
    enable_chat: bool
    enable_reactions: bool
    enable_qa: bool
    chat_mode: str
    slow_mode_seconds: int
    tags: list[str]
    language: str | None
    current_viewers: int
    peak_viewers: int
    total_views: int
    total_reactions: int
    total_chat_messages: int
    started_at: datetime | None
    ended_at: datetime | None
    duration_seconds: int | None
    recording_url: str | None
    end_reason: str | None
    created_at: datetime
    updated_at: datetime
    program_layout: str | None = strawberry.field(
        default=None, description="The guest program's layout: solo, side_by_side or grid.")
    program_focus: strawberry.ID | None = strawberry.field(
        default=None, description="The guest a solo program shows full-frame (null: the broadcaster).")
    playback_url: str | None = None
    stream_key: str | None = None
    whip_url: str | None = None
    rtmp_url: str | None = None
    rtmp_stream_key: str | None = None
    recording: StreamRecordingInfo | None = None

    @classmethod
    def of(cls, data: dict[str, Any], playback_url: str | None = None) -> StreamObject:
        recording = data.get("recording")
        stream = build(cls, {**data, "recording": None})
        stream.playback_url = data.get("playback_url") or playback_url
        stream.recording = build(StreamRecordingInfo, recording) if recording else None
        return stream


@strawberry.type
class HlsManifest:
    stream_id: strawberry.ID
    manifest_url: str
    available: bool
    status: str
    recording_url: str | None


@strawberry.type(description="A viewer's session; sessionId is the token for heartbeats and leaving.")
class ViewerSession:
    session_id: str
    stream_id: strawberry.ID
    user_id: strawberry.ID | None
    quality: str | None
    joined_at: datetime
    last_seen_at: datetime
    left_at: datetime | None
    watch_duration_seconds: int
    buffering_ms: int
    quality_switches: int
    current_viewers: int


@strawberry.type
class ChatMessage:
    id: strawberry.ID
    stream_id: strawberry.ID
    user_id: strawberry.ID
    content: str
    is_pinned: bool
    pinned_at: datetime | None
    is_deleted: bool
    deleted_at: datetime | None
    created_at: datetime
    status: str | None = strawberry.field(
        default=None, description="visible; held (seen by its author and the moderators until reviewed); denied")


@strawberry.type(description="One page of chat, oldest first; pass nextCursor as `before` for older messages.")
class ChatPage:
    messages: list[ChatMessage]
    next_cursor: str | None
    has_more: bool
    pinned: ChatMessage | None


@strawberry.type
class ChatBan:
    id: strawberry.ID
    stream_id: strawberry.ID | None
    channel_id: strawberry.ID | None
    user_id: strawberry.ID
    banned_by: strawberry.ID | None
    reason: str | None
    expires_at: datetime | None
    created_at: datetime


@strawberry.type
class StreamReaction:
    id: strawberry.ID
    stream_id: strawberry.ID
    user_id: strawberry.ID | None
    emoji: str
    position_x: float | None
    position_y: float | None
    created_at: datetime


@strawberry.type
class EmojiCount:
    emoji: str
    count: int


@strawberry.type(description="One bar of a distribution: a country code, device class, OS, browser, rendition "
                             "or band, and how many viewer sessions it has.")
class NamedCount:
    name: str
    count: int


@strawberry.type
class StreamQuestion:
    id: strawberry.ID
    stream_id: strawberry.ID
    user_id: strawberry.ID
    content: str
    status: str
    upvotes: int
    answer: str | None
    answered_at: datetime | None
    answered_by: strawberry.ID | None
    created_at: datetime


@strawberry.type
class QualityMetrics:
    id: strawberry.ID
    stream_id: strawberry.ID
    recorded_at: datetime
    current_viewer_count: int
    bitrate_kbps: int | None
    upload_bitrate_kbps: int | None
    fps: float | None
    resolution: str | None
    dropped_frames: int | None
    latency_ms: int | None
    packet_loss_percent: float | None
    jitter_ms: float | None
    rtt_ms: float | None
    encoder_speed: float | None
    health_score: int | None
    health: str | None = None


@strawberry.type
class StreamHealth:
    stream_id: strawberry.ID
    status: str
    health_score: int | None
    health: str
    average_score_1m: float | None
    samples_1m: int
    current_viewers: int
    latest: QualityMetrics | None


@strawberry.type
class ViewerTimelinePoint:
    minute: datetime
    viewers: int


@strawberry.type
class StreamAnalytics:
    stream_id: strawberry.ID
    status: str
    duration_seconds: int
    peak_concurrent_viewers: int
    current_viewers: int
    total_views: int
    unique_viewers: int
    average_watch_seconds: float
    buffering_ratio: float
    total_chat_messages: int
    chat_engagement_rate: float
    total_reactions: int
    reactions_per_minute: float
    quality_switches_per_viewer_hour: float
    viewer_timeline: list[ViewerTimelinePoint]
    top_emojis: list[EmojiCount]
    countries: list[NamedCount]
    devices: list[NamedCount]
    operating_systems: list[NamedCount]
    browsers: list[NamedCount]
    renditions: list[NamedCount]
    bitrate_histogram: list[NamedCount]
    buffering_histogram: list[NamedCount]


@strawberry.type
class ReminderSetting:
    stream_id: strawberry.ID
    user_id: strawberry.ID
    enabled: bool
    scheduled_at: datetime | None


def _stream_input(name: str, required: dict[str, Any], leave_out: frozenset[str] = frozenset()) -> type:
    """A GraphQL input with the fields of `resolvers.streams.StreamInput`, the one declaration of a
    stream's settings (REST reads it too), in its order: the `required` ones with the given types
    and no default, the others optional (null: the column's default, or left as it is)."""
    hints = typing.get_type_hints(StreamInput)
    annotations: dict[str, Any] = {}
    defaults: dict[str, Any] = {}
    for stream_field in dataclasses.fields(StreamInput):
        if stream_field.name in leave_out or stream_field.name in STREAM_INPUT_SERVER_FIELDS:
            continue
        annotations[stream_field.name] = required.get(stream_field.name, hints[stream_field.name])
        if stream_field.name not in required:
            defaults[stream_field.name] = None
    return strawberry.input(type(name, (), {"__annotations__": annotations, "__module__": __name__, **defaults}))


# What the domain adds to a StreamInput itself, never client input.
STREAM_INPUT_SERVER_FIELDS = frozenset({"extra"})
if TYPE_CHECKING:
    CreateStreamInput = StreamInput
    UpdateStreamInput = StreamInput
else:
    CreateStreamInput = _stream_input("CreateStreamInput", {"channel_id": strawberry.ID, "title": str})
    UpdateStreamInput = _stream_input("UpdateStreamInput", {}, leave_out=frozenset({"channel_id"}))


@strawberry.input
class QualityMetricsInput:
    bitrate_kbps: int | None = None
    upload_bitrate_kbps: int | None = None
    fps: float | None = None
    resolution: str | None = None
    dropped_frames: int | None = None
    latency_ms: int | None = None
    packet_loss_percent: float | None = None
    jitter_ms: float | None = None
    rtt_ms: float | None = None
    encoder_speed: float | None = None
