"""Domain event subscriptions: every Socket.IO event of the guide as a GraphQL subscription.

Each field follows one stream (or, for reminders, the caller) through the event bus; what a
subscriber receives is limited to streams its role may read (see subscriptions/feeds.py).
"""

from __future__ import annotations

import enum
import time
from collections.abc import AsyncGenerator, Callable, Collection
from contextlib import AbstractAsyncContextManager
from typing import Any, cast

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from ..errors import AccessDenied, NotFound
from ..resolvers import polls as poll_domain
from ..subscriptions.access import parse_stream_id
from ..subscriptions.bus import BusEvent
from ..subscriptions.feeds import StreamFeed, any_stream_feed, stream_feed
from ..subscriptions.presence import viewer_session
from .context import Context

STATUS_EVENTS = (
    "stream.started", "stream.ended", "stream.cancelled", "stream.failed", "stream.updated",
    "stream.preparing", "stream.ending", "stream.scheduled",
)
VIEWER_COUNT_INTERVAL_S = 1.0
REACTION_BATCH_S = 0.1
POLL_BATCH_S = 0.2


def _stream_feed(ctx: Context, stream_id: object, types: Collection[str]) -> AbstractAsyncContextManager[StreamFeed]:
    """The bus events of one stream the caller may read (subscriptions/feeds.py)."""
    runtime = ctx.runtime
    return stream_feed(runtime.bus, runtime.access, ctx.claims, stream_id, types, on_ready=ctx.feed_ready)


def _every_stream_feed(ctx: Context, types: Collection[str]) -> AbstractAsyncContextManager[StreamFeed]:
    runtime = ctx.runtime
    return any_stream_feed(runtime.bus, runtime.access, ctx.claims, types, on_ready=ctx.feed_ready)


def _viewer_session(ctx: Context, stream_id: str) -> AbstractAsyncContextManager[dict[str, Any]]:
    """The caller as a viewer of the stream while the subscription runs (subscriptions/presence.py)."""
    connection = ctx.connection
    user_agent = connection.headers.get("user-agent") if connection is not None else None
    ip = connection.client.host if connection is not None and connection.client is not None else None
    runtime = ctx.runtime
    return viewer_session(runtime.presence, runtime.database, ctx.claims, stream_id, open_session=ctx.session,
                          user_agent=user_agent, ip=ip)


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def _float(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def _int(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


@strawberry.type(description="A stream changed status (started, ended, cancelled, failed) or settings.")
class StreamStatusEvent:
    type: str
    stream_id: strawberry.ID
    channel_id: strawberry.ID
    status: str | None
    previous_status: str | None
    reason: str | None
    data: JSON

    @classmethod
    def of(cls, event: BusEvent) -> StreamStatusEvent:
        p = event.payload
        return cls(type=event.type, stream_id=strawberry.ID(str(p["stream_id"])),
                   channel_id=strawberry.ID(str(p.get("channel_id"))), status=_str(p.get("status")),
                   previous_status=_str(p.get("previous_status")), reason=_str(p.get("reason")), data=cast(JSON, p))


@strawberry.type(description="The ingest's health, every 5 s while live.")
class StreamQualityEvent:
    stream_id: strawberry.ID
    bitrate_kbps: float | None
    fps: float | None
    resolution: str | None
    packet_loss_percent: float | None
    rtt_ms: float | None
    jitter_ms: float | None
    latency_ms: float | None
    dropped_frames: int | None
    health_score: int | None
    viewer_count: int | None
    recorded_at: str | None
    data: JSON

    @classmethod
    def of(cls, event: BusEvent) -> StreamQualityEvent:
        p = event.payload
        return cls(
            stream_id=strawberry.ID(str(p["stream_id"])), bitrate_kbps=_float(p.get("bitrate_kbps")),
            fps=_float(p.get("fps")), resolution=_str(p.get("resolution")),
            packet_loss_percent=_float(p.get("packet_loss_percent")), rtt_ms=_float(p.get("rtt_ms")),
            jitter_ms=_float(p.get("jitter_ms")), latency_ms=_float(p.get("latency_ms")),
            dropped_frames=_int(p.get("dropped_frames")), health_score=_int(p.get("health_score")),
            viewer_count=_int(p.get("current_viewer_count", p.get("viewer_count"))),
            recorded_at=_str(p.get("recorded_at")), data=cast(JSON, p),
        )


@strawberry.type
class ViewerCountEvent:
    stream_id: strawberry.ID
    count: int


@strawberry.enum
class PresenceChange(enum.Enum):
    JOINED = "joined"
    LEFT = "left"


@strawberry.type(description="A viewer joined or left; userId only for those who manage the stream.")
class ViewerPresenceEvent:
    type: PresenceChange
    stream_id: strawberry.ID
    user_id: strawberry.ID | None


@strawberry.enum
class ChatEventType(enum.Enum):
    MESSAGE = "message"
    DELETED = "deleted"
    PINNED = "pinned"
    UNPINNED = "unpinned"
    HELD = "held"
    DENIED = "denied"


_CHAT_TYPES = {"chat.message": ChatEventType.MESSAGE, "chat.deleted": ChatEventType.DELETED,
               "chat.pinned": ChatEventType.PINNED, "chat.unpinned": ChatEventType.UNPINNED,
               "chat.held": ChatEventType.HELD, "chat.denied": ChatEventType.DENIED}
# Held and denied messages (migration 0015) reach their author and the stream's managers only.
_PRIVATE_CHAT_TYPES = frozenset({"chat.held", "chat.denied"})


@strawberry.type(description="A chat message, or its deletion (without content), pin or unpin.")
class ChatEvent:
    type: ChatEventType
    id: strawberry.ID
    stream_id: strawberry.ID
    user_id: strawberry.ID | None
    content: str | None
    created_at: str | None
    is_pinned: bool | None
    status: str | None = None

    @classmethod
    def of(cls, event: BusEvent) -> ChatEvent:
        p = event.payload
        kind = _CHAT_TYPES[event.type]
        return cls(
            type=kind, id=strawberry.ID(str(p.get("id"))), stream_id=strawberry.ID(str(p["stream_id"])),
            user_id=strawberry.ID(str(p["user_id"])) if p.get("user_id") else None,
            # A deletion never carries the text, whatever reached the bus.
            content=None if kind is ChatEventType.DELETED else _str(p.get("content")),
            created_at=_str(p.get("created_at")),
            is_pinned={ChatEventType.PINNED: True, ChatEventType.UNPINNED: False}.get(kind, p.get("is_pinned")),
            status={ChatEventType.HELD: "held", ChatEventType.DENIED: "denied"}.get(kind, _str(p.get("status"))),
        )


@strawberry.type(description="A poll's results: counts per option (in the order of options), voters, status.")
class PollResults:
    id: strawberry.ID
    stream_id: strawberry.ID
    question: str
    options: list[str]
    vote_counts: list[int]
    voters: int
    status: str
    allow_multiple: bool
    closes_at: str | None

    @classmethod
    def of(cls, p: dict[str, Any]) -> PollResults:
        return cls(
            id=strawberry.ID(str(p["id"])), stream_id=strawberry.ID(str(p["stream_id"])), question=str(p["question"]),
            options=[str(o) for o in p["options"]], vote_counts=[int(c) for c in p["vote_counts"]],
            voters=int(p["voters"]), status=str(p["status"]), allow_multiple=bool(p["allow_multiple"]),
            closes_at=_str(p.get("closes_at")),
        )


@strawberry.type
class Reaction:
    id: strawberry.ID
    emoji: str
    position_x: float | None
    position_y: float | None
    user_id: strawberry.ID | None


@strawberry.type(description="Reactions of one stream, at most one batch every 100 ms.")
class ReactionBatch:
    stream_id: strawberry.ID
    reactions: list[Reaction]


@strawberry.enum
class QuestionEventType(enum.Enum):
    ASKED = "asked"
    UPDATED = "updated"


@strawberry.type
class QuestionEvent:
    type: QuestionEventType
    id: strawberry.ID
    stream_id: strawberry.ID
    user_id: strawberry.ID | None
    content: str | None
    status: str | None
    upvotes: int | None
    answer: str | None

    @classmethod
    def of(cls, event: BusEvent) -> QuestionEvent:
        p = event.payload
        return cls(
            type=QuestionEventType.ASKED if event.type == "qa.question" else QuestionEventType.UPDATED,
            id=strawberry.ID(str(p.get("id"))), stream_id=strawberry.ID(str(p["stream_id"])),
            user_id=strawberry.ID(str(p["user_id"])) if p.get("user_id") else None,
            content=_str(p.get("content")), status=_str(p.get("status")), upvotes=_int(p.get("upvotes")),
            answer=_str(p.get("answer")),
        )


@strawberry.type(description="A scheduled stream you asked to be reminded of starts soon.")
class StreamReminder:
    stream_id: strawberry.ID
    channel_id: strawberry.ID
    title: str | None
    scheduled_at: str | None
    lead_minutes: int | None


async def _current_viewers(ctx: Context, stream_id: str) -> int:
    async with ctx.session() as session:
        count = await session.fetchval("SELECT current_viewers FROM nchat_streams WHERE id = $1", stream_id)
    if count is None:
        raise NotFound(f"stream '{stream_id}' not found", code="stream-not-found")
    return int(count)


async def _viewer_counts(ctx: Context, stream_id: str, initial: int) -> AsyncGenerator[ViewerCountEvent, None]:
    """The count now, then each change, at most once a second (the latest value wins)."""
    async with _stream_feed(ctx, stream_id, ["viewer.count"]) as feed:
        sid = strawberry.ID(stream_id)
        sent, last_at = initial, time.monotonic()
        yield ViewerCountEvent(stream_id=sid, count=initial)
        pending: int | None = None
        while True:
            wait = None if pending is None else max(0.0, last_at + VIEWER_COUNT_INTERVAL_S - time.monotonic())
            event = await feed.next(wait)
            if event is not None:
                value = _int(event.payload.get("count"))
                if value is not None:
                    pending = value
            if pending is None or time.monotonic() - last_at < VIEWER_COUNT_INTERVAL_S:
                continue
            if pending != sent:
                yield ViewerCountEvent(stream_id=sid, count=pending)
                sent, last_at = pending, time.monotonic()
            pending = None


def _newest(latest: dict[str, dict[str, Any]]) -> Callable[[dict[str, Any]], None]:
    """Keeps in `latest` the highest-revision results of each poll."""
    def keep(payload: dict[str, Any]) -> None:
        pid = str(payload["id"])
        if pid not in latest or int(payload.get("revision", 0)) >= int(latest[pid].get("revision", 0)):
            latest[pid] = payload
    return keep


@strawberry.type
class Subscription:
    @strawberry.subscription(description="Status changes of a stream: started, ended, cancelled, failed, updated.")
    async def stream_status(self, info: Info[Context, None], stream_id: strawberry.ID
                            ) -> AsyncGenerator[StreamStatusEvent, None]:
        async with _stream_feed(info.context, stream_id, STATUS_EVENTS) as feed:
            async for event in feed:
                yield StreamStatusEvent.of(event)

    @strawberry.subscription(description="Ingest quality metrics of a stream, every 5 s while live.")
    async def stream_quality(self, info: Info[Context, None], stream_id: strawberry.ID
                             ) -> AsyncGenerator[StreamQualityEvent, None]:
        async with _stream_feed(info.context, stream_id, ["quality.update"]) as feed:
            async for event in feed:
                yield StreamQualityEvent.of(event)

    @strawberry.subscription(description="The current viewer count, then each change (at most once a second).")
    async def viewer_count(self, info: Info[Context, None], stream_id: strawberry.ID
                           ) -> AsyncGenerator[ViewerCountEvent, None]:
        sid = parse_stream_id(stream_id)
        initial = await _current_viewers(info.context, sid)
        async for item in _viewer_counts(info.context, sid, initial):
            yield item

    @strawberry.subscription(description="Viewers joining and leaving a stream.")
    async def viewer_presence(self, info: Info[Context, None], stream_id: strawberry.ID
                              ) -> AsyncGenerator[ViewerPresenceEvent, None]:
        ctx = info.context
        async with _stream_feed(ctx, stream_id, ["viewer.joined", "viewer.left"]) as feed:
            # Who is watching is for the stream's managers; others see only that someone came or went.
            async with ctx.session() as session:
                manager = bool(await session.fetchval("SELECT nchat.can_manage_stream($1::uuid)", feed.stream_id))
            async for event in feed:
                user = event.payload.get("user_id") if manager else None
                yield ViewerPresenceEvent(
                    type=PresenceChange.JOINED if event.type == "viewer.joined" else PresenceChange.LEFT,
                    stream_id=strawberry.ID(str(event.payload["stream_id"])),
                    user_id=strawberry.ID(str(user)) if user else None,
                )

    @strawberry.subscription(description="Watch a live stream: you count as a viewer until this subscription "
                                         "or its websocket ends. Yields the viewer count as it changes.")
    async def watch_stream(self, info: Info[Context, None], stream_id: strawberry.ID
                           ) -> AsyncGenerator[ViewerCountEvent, None]:
        ctx = info.context
        sid = parse_stream_id(stream_id)
        async with _viewer_session(ctx, sid) as viewer:
            async for item in _viewer_counts(ctx, sid, int(viewer["current_viewers"])):
                yield item

    @strawberry.subscription(description="Chat of a stream: new messages, deletions (no content), pins.")
    async def chat_events(self, info: Info[Context, None], stream_id: strawberry.ID
                          ) -> AsyncGenerator[ChatEvent, None]:
        ctx = info.context
        async with _stream_feed(ctx, stream_id, list(_CHAT_TYPES)) as feed:
            async with ctx.session() as session:
                manager = bool(await session.fetchval("SELECT nchat.can_manage_stream($1::uuid)", feed.stream_id))
            me = ctx.claims.user_id
            async for event in feed:
                if event.type in _PRIVATE_CHAT_TYPES and not manager and (
                        me is None or str(event.payload.get("user_id")) != me):
                    continue
                yield ChatEvent.of(event)

    @strawberry.subscription(description="Poll results of a stream: the current polls first, then changed "
                                         "results, at most one batch per 200 ms (the latest counts of each poll).")
    async def poll_results(self, info: Info[Context, None], stream_id: strawberry.ID
                           ) -> AsyncGenerator[list[PollResults], None]:
        ctx = info.context
        async with _stream_feed(ctx, stream_id, ["poll.results"]) as feed:
            async with ctx.session() as session:
                current = await poll_domain.polls(session, str(feed.stream_id))
            yield [PollResults.of({**p, "closes_at": p["closes_at"].isoformat() if p["closes_at"] else None})
                   for p in current]
            # Results of concurrent votes may arrive out of order: the poll's revision puts them back.
            sent = {str(p["id"]): int(p["revision"]) for p in current}
            last_at = time.monotonic()
            while True:
                first = await feed.next()
                assert first is not None
                latest: dict[str, dict[str, Any]] = {}
                keep = _newest(latest)
                keep(first.payload)
                while (wait := last_at + POLL_BATCH_S - time.monotonic()) > 0:
                    more = await feed.next(wait)
                    if more is not None:
                        keep(more.payload)
                while (extra := feed.ready()) is not None:
                    keep(extra.payload)
                fresh = [p for pid, p in latest.items() if int(p.get("revision", 0)) > sent.get(pid, -1)]
                if not fresh:
                    continue
                for p in fresh:
                    sent[str(p["id"])] = int(p.get("revision", 0))
                last_at = time.monotonic()
                yield [PollResults.of(p) for p in fresh]

    @strawberry.subscription(description="Emoji reactions of a stream, batched: at most one batch per 100 ms.")
    async def reactions(self, info: Info[Context, None], stream_id: strawberry.ID
                        ) -> AsyncGenerator[ReactionBatch, None]:
        async with _stream_feed(info.context, stream_id, ["reaction"]) as feed:
            sid = strawberry.ID(str(feed.stream_id))
            last_at = 0.0
            while True:
                first = await feed.next()
                assert first is not None
                batch = [first]
                # Collect what else arrives until this batch may go out.
                while (wait := last_at + REACTION_BATCH_S - time.monotonic()) > 0:
                    more = await feed.next(wait)
                    if more is not None:
                        batch.append(more)
                while (extra := feed.ready()) is not None:
                    batch.append(extra)
                last_at = time.monotonic()
                yield ReactionBatch(stream_id=sid, reactions=[
                    Reaction(
                        id=strawberry.ID(str(e.payload.get("id"))), emoji=str(e.payload.get("emoji")),
                        position_x=_float(e.payload.get("position_x")), position_y=_float(e.payload.get("position_y")),
                        user_id=strawberry.ID(str(e.payload["user_id"])) if e.payload.get("user_id") else None,
                    ) for e in batch
                ])

    @strawberry.subscription(description="Q&A of a stream: questions asked, answered, upvoted, dismissed.")
    async def questions(self, info: Info[Context, None], stream_id: strawberry.ID
                        ) -> AsyncGenerator[QuestionEvent, None]:
        async with _stream_feed(info.context, stream_id, ["qa.question", "qa.updated"]) as feed:
            async for event in feed:
                yield QuestionEvent.of(event)

    @strawberry.subscription(description="Reminders for scheduled streams you opted in to.")
    async def stream_reminders(self, info: Info[Context, None]) -> AsyncGenerator[StreamReminder, None]:
        ctx = info.context
        me = ctx.claims.user_id
        if me is None:
            raise AccessDenied("streamReminders needs a signed-in user (x-hasura-user-id)")
        async with _every_stream_feed(ctx, ["stream.reminder"]) as feed:
            async for event in feed:
                p = event.payload
                if me not in {str(u) for u in p.get("user_ids") or ()}:
                    continue
                yield StreamReminder(
                    stream_id=strawberry.ID(str(p["stream_id"])), channel_id=strawberry.ID(str(p.get("channel_id"))),
                    title=_str(p.get("title")), scheduled_at=_str(p.get("scheduled_at")),
                    lead_minutes=_int(p.get("lead_minutes")),
                )
