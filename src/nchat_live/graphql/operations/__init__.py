"""The streaming operations as GraphQL fields (Hasura calls them actions): `Query` and `Mutation`.

Each field opens the caller's session and calls the same domain function the REST adapters use;
a domain error leaves as a GraphQL error whose `extensions.code` is the error's code.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Annotated, Any, TypeVar

import strawberry
from graphql import GraphQLError
from strawberry.types import Info

from ...db import Session
from ...errors import NchatError
from ...resolvers import analytics, audience, chat, moderation, qa, quality, reactions, scheduler, streams, viewers
from ...resolvers.quality import QualityReport
from ...resolvers.streams import StreamInput
from ..context import Context
from .types import (
    ChatBan,
    ChatMessage,
    ChatPage,
    CreateStreamInput,
    EmojiCount,
    HlsManifest,
    NamedCount,
    QualityMetrics,
    QualityMetricsInput,
    ReminderSetting,
    StreamAnalytics,
    StreamHealth,
    StreamObject,
    StreamQuestion,
    StreamReaction,
    UpdateStreamInput,
    ViewerSession,
    ViewerTimelinePoint,
    build,
)

__all__ = ["DIRECT_MUTATIONS", "ONE_STATEMENT_MUTATIONS", "Mutation", "Query"]

# Mutations that graphql/direct.py may run without graphql-core's executor (the hot ones): their
# resolvers read nothing of `info` but `info.context`, which is all the direct path hands them.
DIRECT_MUTATIONS = frozenset({"sendChatMessage", "sendReaction"})
# Of those, the ones whose resolver makes exactly one statement, and nothing after it that can fail:
# graphql/execution.py commits that statement in its own round trip (db.session.OneStatement, which
# refuses a second statement). tests/graphql/test_mutations.py runs them both ways. Each names the tables
# its statement's trigger chain changes: the server signals their live queries itself after commit,
# instead of a NOTIFY (migration 0031; a table left out still notifies).
ONE_STATEMENT_MUTATIONS: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "sendChatMessage": ("nchat_stream_chat_messages", "nchat_stream_viewers"),
    "sendReaction": ("nchat_stream_reactions", "nchat_streams", "nchat_stream_viewers"),
})

T = TypeVar("T")


async def run(info: Info[Context, None], work: Callable[[Session], Awaitable[T]]) -> T:
    """`work` in the caller's transaction; NchatError → GraphQLError with extensions.code."""
    ctx = info.context
    shared = ctx.mutation_session
    try:
        if shared is not None:
            # An HTTP mutation already holds the request's transaction: commit once, with it. A
            # second transaction of our own could commit while the request's then fails, and the
            # client would be told "failed" about a change that was made (and published).
            return await work(shared)
        async with ctx.session() as session:
            return await work(session)
    except NchatError as exc:
        raise GraphQLError(exc.message, extensions={**exc.extensions, "code": exc.code}) from exc


def _stream(info: Info[Context, None], data: dict[str, Any]) -> StreamObject:
    settings = info.context.runtime.settings
    return StreamObject.of(data, streams.stream_urls(settings, data["id"])["playback_url"])


def _input(data: CreateStreamInput | UpdateStreamInput) -> StreamInput:
    values = {k: v for k, v in vars(data).items() if v is not strawberry.UNSET}
    if "channel_id" in values:
        values["channel_id"] = str(values["channel_id"])
    return StreamInput(**values)


def _message(data: dict[str, Any]) -> ChatMessage:
    return build(ChatMessage, chat.public_message(data))


def _health(data: dict[str, Any]) -> StreamHealth:
    latest = data.get("latest")
    return build(StreamHealth, {**data, "latest": build(QualityMetrics, latest) if latest else None})


def _analytics(data: dict[str, Any]) -> StreamAnalytics:
    return build(StreamAnalytics, {
        **data,
        "viewer_timeline": [build(ViewerTimelinePoint, p) for p in data["viewer_timeline"]],
        "top_emojis": [build(EmojiCount, e) for e in data["top_emojis"]],
        **{k: [build(NamedCount, e) for e in data[k]] for k in analytics.AUDIENCE_KEYS},
    })


@strawberry.type
class Query:
    @strawberry.field(description="Your own email address (null when not signed in); nobody else's is readable.")
    async def my_email(self, info: Info[Context, None]) -> str | None:
        value = await run(info, lambda s: s.fetchval("SELECT nchat.my_email()"))
        return None if value is None else str(value)

    @strawberry.field(description="A stream you can see.")
    async def stream(self, info: Info[Context, None], id: strawberry.ID) -> StreamObject:
        return _stream(info, await run(info, lambda s: streams.get_stream(s, str(id))))

    @strawberry.field(description="Live streams, most watched first; of one channel when channelId is given.")
    async def live_streams(
        self, info: Info[Context, None], channel_id: strawberry.ID | None = None
    ) -> list[StreamObject]:
        rows = await run(info, lambda s: streams.live_streams(s, _opt(channel_id)))
        return [_stream(info, r) for r in rows]

    @strawberry.field(description="Scheduled streams between `from` (inclusive) and `to` (exclusive).")
    async def scheduled_streams(
        self, info: Info[Context, None], channel_id: strawberry.ID | None = None,
        from_: Annotated[datetime | None, strawberry.argument(name="from")] = None,
        to: datetime | None = None,
    ) -> list[StreamObject]:
        rows = await run(info, lambda s: streams.scheduled_streams(s, _opt(channel_id), from_, to))
        return [_stream(info, r) for r in rows]

    @strawberry.field(description="Ended streams, newest first, with their recording.")
    async def past_streams(
        self, info: Info[Context, None], channel_id: strawberry.ID | None = None
    ) -> list[StreamObject]:
        rows = await run(info, lambda s: streams.past_streams(s, _opt(channel_id)))
        return [_stream(info, r) for r in rows]

    @strawberry.field(description="The HLS master playlist URL and whether it exists yet.")
    async def hls_manifest(self, info: Info[Context, None], stream_id: strawberry.ID) -> HlsManifest:
        settings = info.context.runtime.settings
        return build(HlsManifest, await run(info, lambda s: streams.hls_manifest(s, settings, str(stream_id))))

    @strawberry.field
    async def viewer_count(self, info: Info[Context, None], stream_id: strawberry.ID) -> int:
        return await run(info, lambda s: streams.viewer_count(s, str(stream_id)))

    @strawberry.field(description="Chat, newest page first; `before` takes the previous page's nextCursor.")
    async def chat_history(
        self, info: Info[Context, None], stream_id: strawberry.ID, limit: int = 50, before: str | None = None
    ) -> ChatPage:
        page = await run(info, lambda s: chat.chat_history(s, str(stream_id), limit=limit, before=before))
        return ChatPage(messages=[_message(m) for m in page["messages"]], next_cursor=page["next_cursor"],
                        has_more=page["has_more"], pinned=_message(page["pinned"]) if page["pinned"] else None)

    @strawberry.field(description="Reaction totals per emoji, most used first.")
    async def reaction_totals(self, info: Info[Context, None], stream_id: strawberry.ID) -> list[EmojiCount]:
        return [build(EmojiCount, r) for r in await run(info, lambda s: reactions.reaction_totals(s, str(stream_id)))]

    @strawberry.field(description="Questions by votes, then age; optionally of one status (open, answered, dismissed).")
    async def questions(
        self, info: Info[Context, None], stream_id: strawberry.ID, status: str | None = None
    ) -> list[StreamQuestion]:
        rows = await run(info, lambda s: qa.list_questions(s, str(stream_id), status))
        return [build(StreamQuestion, r) for r in rows]

    @strawberry.field(description="The latest health score and metrics (broadcaster and moderators).")
    async def stream_health(self, info: Info[Context, None], stream_id: strawberry.ID) -> StreamHealth:
        return _health(await run(info, lambda s: quality.stream_health(s, str(stream_id))))

    @strawberry.field(description="Engagement and audience metrics (broadcaster and moderators).")
    async def stream_analytics(self, info: Info[Context, None], stream_id: strawberry.ID) -> StreamAnalytics:
        return _analytics(await run(info, lambda s: analytics.stream_analytics(s, str(stream_id))))


def _opt(value: strawberry.ID | None) -> str | None:
    return None if value is None else str(value)


@strawberry.type
class Mutation:
    @strawberry.mutation(description="A new stream with its secret key, WHIP/RTMP ingest and playback URLs.")
    async def create_stream(self, info: Info[Context, None], input: CreateStreamInput) -> StreamObject:
        settings = info.context.runtime.settings
        return _stream(info, await run(info, lambda s: streams.create_stream(s, settings, _input(input))))

    @strawberry.mutation
    async def update_stream(
        self, info: Info[Context, None], stream_id: strawberry.ID, input: UpdateStreamInput
    ) -> StreamObject:
        return _stream(info, await run(info, lambda s: streams.update_stream(s, str(stream_id), _input(input))))

    @strawberry.mutation(description="Go live (media also does this when frames arrive).")
    async def start_stream(self, info: Info[Context, None], stream_id: strawberry.ID) -> StreamObject:
        return _stream(info, await run(info, lambda s: streams.start_stream(s, str(stream_id))))

    @strawberry.mutation
    async def end_stream(
        self, info: Info[Context, None], stream_id: strawberry.ID, reason: str | None = None
    ) -> StreamObject:
        return _stream(info, await run(info, lambda s: streams.end_stream(s, str(stream_id), reason)))

    @strawberry.mutation
    async def cancel_stream(
        self, info: Info[Context, None], stream_id: strawberry.ID, reason: str | None = None
    ) -> StreamObject:
        return _stream(info, await run(info, lambda s: streams.cancel_stream(s, str(stream_id), reason)))

    @strawberry.mutation(description="A new stream key; the old one stops working.")
    async def rotate_stream_key(self, info: Info[Context, None], stream_id: strawberry.ID) -> StreamObject:
        settings = info.context.runtime.settings
        return _stream(info, await run(info, lambda s: streams.rotate_stream_key(s, settings, str(stream_id))))

    @strawberry.mutation
    async def set_stream_reminder(
        self, info: Info[Context, None], stream_id: strawberry.ID, enabled: bool = True
    ) -> ReminderSetting:
        return build(ReminderSetting, await run(info, lambda s: scheduler.set_stream_reminder(
            s, str(stream_id), enabled)))

    @strawberry.mutation(description="Open a viewer session on a live stream.")
    async def join_stream(
        self, info: Info[Context, None], stream_id: strawberry.ID, quality: str | None = None
    ) -> ViewerSession:
        conn = info.context.connection
        user_agent = conn.headers.get("user-agent") if conn is not None else None
        ip = conn.client.host if conn is not None and conn.client is not None else None
        joined = await run(info, lambda s: viewers.join_stream(
            s, str(stream_id), quality, user_agent=user_agent, ip=_ip(ip)))
        return build(ViewerSession, joined)

    @strawberry.mutation(description="Keep a viewer session alive (every 10-20 s); bufferingMs since the last one.")
    async def viewer_heartbeat(
        self, info: Info[Context, None], session_id: str, quality: str | None = None, buffering_ms: int | None = None,
        bitrate_kbps: Annotated[int | None, strawberry.argument(
            description="The player's current playback bitrate (kbit/s, 0..1000000).")] = None,
    ) -> ViewerSession:
        async def work(s: Session) -> dict[str, Any]:
            beat = await viewers.viewer_heartbeat(s, session_id, quality, buffering_ms)
            if bitrate_kbps is not None:
                await audience.record_playback(s, session_id, bitrate_kbps)
            return beat

        return build(ViewerSession, await run(info, work))

    @strawberry.mutation
    async def leave_stream(
        self, info: Info[Context, None], session_id: str, buffering_ms: int | None = None
    ) -> ViewerSession:
        return build(ViewerSession, await run(info, lambda s: viewers.leave_stream(s, session_id, buffering_ms)))

    @strawberry.mutation
    async def send_chat_message(self, info: Info[Context, None], stream_id: strawberry.ID, content: str) -> ChatMessage:
        return _message(await run(info, lambda s: chat.send_chat_message(s, str(stream_id), content)))

    @strawberry.mutation
    async def delete_chat_message(self, info: Info[Context, None], message_id: strawberry.ID) -> ChatMessage:
        return _message(await run(info, lambda s: chat.delete_chat_message(s, str(message_id))))

    @strawberry.mutation
    async def pin_chat_message(self, info: Info[Context, None], message_id: strawberry.ID) -> ChatMessage:
        return _message(await run(info, lambda s: chat.pin_chat_message(s, str(message_id))))

    @strawberry.mutation
    async def unpin_chat_message(self, info: Info[Context, None], message_id: strawberry.ID) -> ChatMessage:
        return _message(await run(info, lambda s: chat.unpin_chat_message(s, str(message_id))))

    @strawberry.mutation(description="Ban from this stream's chat, or the whole channel's with channelWide.")
    async def ban_user(
        self, info: Info[Context, None], stream_id: strawberry.ID, user_id: strawberry.ID,
        reason: str | None = None, channel_wide: bool = False,
    ) -> ChatBan:
        return build(ChatBan, await run(info, lambda s: moderation.ban_user(
            s, str(stream_id), str(user_id), reason, channel_wide=channel_wide)))

    @strawberry.mutation
    async def timeout_user(
        self, info: Info[Context, None], stream_id: strawberry.ID, user_id: strawberry.ID, duration_seconds: int,
        reason: str | None = None,
    ) -> ChatBan:
        return build(ChatBan, await run(info, lambda s: moderation.timeout_user(
            s, str(stream_id), str(user_id), duration_seconds, reason)))

    @strawberry.mutation(description="Lift the user's bans and timeouts; returns how many were lifted.")
    async def unban_user(self, info: Info[Context, None], stream_id: strawberry.ID, user_id: strawberry.ID) -> int:
        return await run(info, lambda s: moderation.unban_user(s, str(stream_id), str(user_id)))

    @strawberry.mutation
    async def send_reaction(
        self, info: Info[Context, None], stream_id: strawberry.ID, emoji: str, position_x: float | None = None,
        position_y: float | None = None,
    ) -> StreamReaction:
        return build(StreamReaction, await run(info, lambda s: reactions.send_reaction(
            s, str(stream_id), emoji, position_x, position_y)))

    @strawberry.mutation
    async def ask_question(self, info: Info[Context, None], stream_id: strawberry.ID, content: str) -> StreamQuestion:
        return build(StreamQuestion, await run(info, lambda s: qa.ask_question(s, str(stream_id), content)))

    @strawberry.mutation
    async def upvote_question(self, info: Info[Context, None], question_id: strawberry.ID) -> StreamQuestion:
        return build(StreamQuestion, await run(info, lambda s: qa.upvote_question(s, str(question_id))))

    @strawberry.mutation
    async def answer_question(
        self, info: Info[Context, None], question_id: strawberry.ID, answer: str | None = None
    ) -> StreamQuestion:
        return build(StreamQuestion, await run(info, lambda s: qa.answer_question(s, str(question_id), answer)))

    @strawberry.mutation
    async def dismiss_question(self, info: Info[Context, None], question_id: strawberry.ID) -> StreamQuestion:
        return build(StreamQuestion, await run(info, lambda s: qa.dismiss_question(s, str(question_id))))

    @strawberry.mutation(description="The broadcaster's quality report (every 5 s); returns it with its health score.")
    async def report_quality_metrics(
        self, info: Info[Context, None], stream_id: strawberry.ID, metrics: QualityMetricsInput
    ) -> QualityMetrics:
        report = QualityReport(**{k: v for k, v in vars(metrics).items() if v is not strawberry.UNSET})
        return build(QualityMetrics, await run(info, lambda s: quality.report_quality_metrics(
            s, str(stream_id), report)))


def _ip(host: str | None) -> str | None:
    # Test clients report a host name ("testclient"), which is not an inet.
    if not host:
        return None
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return None


