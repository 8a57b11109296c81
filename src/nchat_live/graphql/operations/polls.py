"""Live polls and auto-moderation as GraphQL fields (issue 18): `Query.polls/pollVotes/chatSettings/
blockedTerms/heldMessages/moderationLog`, `Mutation.createPoll/openPoll/closePoll/votePoll/updateChatSettings/
addBlockedTerm/removeBlockedTerm/approveChatMessage/denyChatMessage`.

Each field runs the domain function of resolvers/polls.py or resolvers/automod.py in the caller's
transaction; the rules are Postgres's (migration 0015), so the table API gives the same answers.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from ...resolvers import automod
from ...resolvers import polls as poll_domain
from ..context import Context
from . import run
from .types import ChatMessage, build

__all__ = ["Mutation", "Query"]


@strawberry.type(description="A live poll with its results (counts in the order of options).")
class Poll:
    id: strawberry.ID
    stream_id: strawberry.ID
    question: str
    options: list[str]
    allow_multiple: bool
    duration_seconds: int | None
    status: str
    opened_at: datetime | None
    closes_at: datetime | None
    closed_at: datetime | None
    vote_counts: list[int]
    voters: int
    created_at: datetime

    @classmethod
    def of(cls, data: dict[str, Any]) -> Poll:
        return build(cls, {**data, "options": list(data["options"]), "vote_counts": list(data["vote_counts"])})


@strawberry.type(description="One voter's choices (the broadcaster sees all; a viewer only their own).")
class PollVote:
    poll_id: strawberry.ID
    user_id: strawberry.ID
    choices: list[int]
    created_at: datetime
    updated_at: datetime


@strawberry.type(description="A channel's chat rules.")
class ChatSettings:
    channel_id: strawberry.ID
    link_filter: bool
    allowed_domains: list[str]
    emote_only: bool
    min_account_age_seconds: int
    updated_at: datetime | None


@strawberry.type(description="A blocked word or regular expression; action block refuses, hold queues for review.")
class BlockedTerm:
    id: strawberry.ID
    channel_id: strawberry.ID
    term: str
    is_pattern: bool
    action: str
    created_at: datetime


@strawberry.type(description="A moderator action: who, what, when, on whom.")
class ModerationAction:
    id: strawberry.ID
    channel_id: strawberry.ID
    stream_id: strawberry.ID | None
    actor_id: strawberry.ID | None
    action: str
    target_user_id: strawberry.ID | None
    target_message_id: strawberry.ID | None
    details: JSON
    created_at: datetime


def _settings(data: dict[str, Any]) -> ChatSettings:
    return build(ChatSettings, {**data, "allowed_domains": list(data["allowed_domains"])})


@strawberry.type
class Query:
    @strawberry.field(description="The polls of a stream, newest first, with their results (also after it ends).")
    async def polls(self, info: Info[Context, None], stream_id: strawberry.ID) -> list[Poll]:
        return [Poll.of(p) for p in await run(info, lambda s: poll_domain.polls(s, str(stream_id)))]

    @strawberry.field(description="Who voted for what: every vote for the broadcaster, your own otherwise.")
    async def poll_votes(self, info: Info[Context, None], poll_id: strawberry.ID) -> list[PollVote]:
        return [build(PollVote, v) for v in await run(info, lambda s: poll_domain.poll_votes(s, str(poll_id)))]

    @strawberry.field(description="A channel's chat rules (link filter, emote-only, minimum account age).")
    async def chat_settings(self, info: Info[Context, None], channel_id: strawberry.ID) -> ChatSettings:
        return _settings(await run(info, lambda s: automod.chat_settings(s, str(channel_id))))

    @strawberry.field(description="A channel's blocked terms (its moderators).")
    async def blocked_terms(self, info: Info[Context, None], channel_id: strawberry.ID) -> list[BlockedTerm]:
        return [build(BlockedTerm, t) for t in await run(info, lambda s: automod.blocked_terms(s, str(channel_id)))]

    @strawberry.field(description="Held messages of a stream awaiting review, oldest first (its managers).")
    async def held_messages(self, info: Info[Context, None], stream_id: strawberry.ID) -> list[ChatMessage]:
        return [build(ChatMessage, m) for m in await run(info, lambda s: automod.held_messages(s, str(stream_id)))]

    @strawberry.field(description="A channel's moderator actions, newest first (its moderators).")
    async def moderation_log(self, info: Info[Context, None], channel_id: strawberry.ID,
                             limit: int = 100) -> list[ModerationAction]:
        return [build(ModerationAction, e) for e in
                await run(info, lambda s: automod.moderation_log(s, str(channel_id), limit=limit))]


@strawberry.type
class Mutation:
    @strawberry.mutation(description="A poll on a live stream (broadcaster or moderator): 2-10 options, opened at "
                                     "once unless openNow is false; closes by itself after durationSeconds.")
    async def create_poll(self, info: Info[Context, None], stream_id: strawberry.ID, question: str,
                          options: list[str], allow_multiple: bool = False, duration_seconds: int | None = None,
                          open_now: bool = True) -> Poll:
        return Poll.of(await run(info, lambda s: poll_domain.create_poll(
            s, str(stream_id), question, options, allow_multiple=allow_multiple,
            duration_seconds=duration_seconds, open_now=open_now)))

    @strawberry.mutation(description="Open a draft poll.")
    async def open_poll(self, info: Info[Context, None], poll_id: strawberry.ID) -> Poll:
        return Poll.of(await run(info, lambda s: poll_domain.set_poll_status(s, str(poll_id), "open")))

    @strawberry.mutation(description="Close a poll; its final results stay with the stream.")
    async def close_poll(self, info: Info[Context, None], poll_id: strawberry.ID) -> Poll:
        return Poll.of(await run(info, lambda s: poll_domain.set_poll_status(s, str(poll_id), "closed")))

    @strawberry.mutation(description="Vote (option indexes from 0), or change your vote while the poll is open.")
    async def vote_poll(self, info: Info[Context, None], poll_id: strawberry.ID, choices: list[int]) -> Poll:
        return Poll.of(await run(info, lambda s: poll_domain.vote(s, str(poll_id), choices)))

    @strawberry.mutation(description="Change a channel's chat rules (its moderators); unnamed fields stay.")
    async def update_chat_settings(
        self, info: Info[Context, None], channel_id: strawberry.ID, link_filter: bool | None = None,
        allowed_domains: list[str] | None = None, emote_only: bool | None = None,
        min_account_age_seconds: int | None = None,
    ) -> ChatSettings:
        changes = automod.ChatSettings(link_filter=link_filter, allowed_domains=allowed_domains,
                                       emote_only=emote_only, min_account_age_seconds=min_account_age_seconds)
        return _settings(await run(info, lambda s: automod.update_chat_settings(s, str(channel_id), changes)))

    @strawberry.mutation(description="Block a word (matched ignoring case, accents, leetspeak, repeats and "
                                     "separators) or a regular expression (isPattern); action block or hold.")
    async def add_blocked_term(self, info: Info[Context, None], channel_id: strawberry.ID, term: str,
                               is_pattern: bool = False, action: str = "block") -> BlockedTerm:
        return build(BlockedTerm, await run(info, lambda s: automod.add_blocked_term(
            s, str(channel_id), term, is_pattern=is_pattern, action=action)))

    @strawberry.mutation(description="Remove a blocked term; true when one was removed.")
    async def remove_blocked_term(self, info: Info[Context, None], term_id: strawberry.ID) -> bool:
        return await run(info, lambda s: automod.remove_blocked_term(s, str(term_id)))

    @strawberry.mutation(description="Publish a held message in its original place.")
    async def approve_chat_message(self, info: Info[Context, None], message_id: strawberry.ID) -> ChatMessage:
        return build(ChatMessage, await run(info, lambda s: automod.review_message(s, str(message_id), approve=True)))

    @strawberry.mutation(description="Deny a held message (its author still sees it, as denied).")
    async def deny_chat_message(self, info: Info[Context, None], message_id: strawberry.ID) -> ChatMessage:
        return build(ChatMessage, await run(info, lambda s: automod.review_message(s, str(message_id), approve=False)))
