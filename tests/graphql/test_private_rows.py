"""Through the table API, every table whose read policy migration 0020 rewrote: a private stream's (or
channel's) rows stay invisible to an outsider and to anonymous callers, and visible to the owner; rows only a
stream's managers read stay hidden from a plain member and visible to the channel's moderator. Each table
holds one row on the private stream/channel and one on the public one, so a policy that let everything or
nothing through fails here."""

from __future__ import annotations

from typing import Any

import pytest

from nchat_live.auth import Claims
from nchat_live.db import Database
from tests.graphql.conftest import GQL, data
from tests.support import World

# (table, key column, "stream" or "channel", a column to select, anonymous is granted the table)
TABLES: list[tuple[str, str, str, str, bool]] = [
    ("nchat_stream_polls", "stream_id", "stream", "question", True),
    ("nchat_stream_poll_votes", "poll_id", "poll", "choices", False),
    ("nchat_stream_highlights", "stream_id", "stream", "title", True),
    ("nchat_stream_chapters", "stream_id", "stream", "title", True),
    ("nchat_stream_engagement", "stream_id", "stream", "chat_messages", True),
    ("nchat_stream_viewers", "stream_id", "stream", "country", False),
    ("nchat_stream_quality_metrics", "stream_id", "stream", "bitrate_kbps", False),
    ("nchat_stream_simulcast_destinations", "stream_id", "stream", "name", False),
    ("nchat_stream_bans", "stream_id", "stream", "reason", False),
    ("nchat_channel_chat_settings", "channel_id", "channel", "emote_only", True),
    ("nchat_channel_blocked_terms", "channel_id", "channel", "term", False),
    ("nchat_moderation_log", "channel_id", "channel", "action", False),
    ("nchat_channel_subscriptions", "channel_id", "channel", "tier", False),
]


@pytest.fixture(scope="module")
async def rows(db: Database, cast: World) -> dict[str, dict[str, str]]:
    """One row of each table on the private stream/channel and one on the public (as the server, so rules
    that would refuse an outsider's write do not stand in the way); the public stream's rows belong to bob,
    a plain member, where a table has an owner column."""
    keys: dict[str, dict[str, str]] = {}
    async with db.session(Claims.service()) as s:
        for label in ("private", "public"):
            stream, channel = getattr(cast, f"{label}_stream"), getattr(cast, f"{label}_channel")
            other = cast.alice if label == "private" else cast.bob
            poll = await s.fetchval(
                "INSERT INTO nchat_stream_polls (stream_id, created_by, question, options, status, opened_at, "
                "vote_counts) VALUES ($1, $2, $3, '{yes,no}', 'open', now(), '{0,0}') RETURNING id",
                stream, cast.alice, f"{label} poll?")
            await s.execute("INSERT INTO nchat_stream_poll_votes (poll_id, user_id, choices) VALUES ($1, $2, '{0}')",
                            poll, other)
            await s.execute(
                "INSERT INTO nchat_stream_highlights (stream_id, peak_seconds, start_seconds, end_seconds, title, "
                "status) VALUES ($1, 5, 0, 10, 'kept one', 'kept'), ($1, 25, 20, 30, 'suggested one', 'suggested')",
                stream)
            await s.execute("INSERT INTO nchat_stream_chapters (stream_id, start_seconds, title) "
                            "VALUES ($1, 0, 'intro')", stream)
            await s.execute("INSERT INTO nchat_stream_engagement (stream_id, bucket, bucket_seconds, starts_at, "
                            "chat_messages) VALUES ($1, 0, 5, now(), 3)", stream)
            await s.execute("INSERT INTO nchat_stream_viewers (stream_id, user_id, viewer_session_id, country) "
                            "VALUES ($1, $2, $3, 'DE')", stream, other, f"rls-{label}")
            await s.execute("INSERT INTO nchat_stream_quality_metrics (stream_id, bitrate_kbps) VALUES ($1, 2500)",
                            stream)
            await s.execute("INSERT INTO nchat_stream_simulcast_destinations (stream_id, name, url, stream_key) "
                            "VALUES ($1, 'elsewhere', 'rtmp://example.com/live', 'secret-key-123')", stream)
            banned = cast.mod if label == "private" else cast.carol  # never the caller the test asks as
            await s.execute("INSERT INTO nchat_stream_bans (stream_id, user_id, banned_by, reason) "
                            "VALUES ($1, $2, $3, 'spam')", stream, banned, cast.alice)
            await s.execute("INSERT INTO nchat_channel_chat_settings (channel_id, emote_only) VALUES ($1, false) "
                            "ON CONFLICT (channel_id) DO NOTHING", channel)
            await s.execute("INSERT INTO nchat_channel_blocked_terms (channel_id, term) VALUES ($1, 'rls-term')",
                            channel)
            await s.execute("INSERT INTO nchat_moderation_log (channel_id, actor_id, action) VALUES ($1, $2, 'pin')",
                            channel, cast.alice)
            await s.execute("INSERT INTO nchat_channel_subscriptions (channel_id, user_id) VALUES ($1, $2) "
                            "ON CONFLICT (channel_id, user_id) DO NOTHING", channel, other)
            keys[label] = {"stream": stream, "channel": channel, "poll": str(poll)}
    return keys


async def visible(gql: GQL, table: str, key: str, value: str, column: str, as_: str | None) -> list[Any]:
    query = f"query($v: uuid!) {{ {table}(where: {{{key}: {{_eq: $v}}}}) {{ {column} }} }}"
    return list(data(await gql(query, {"v": value}, as_=as_))[table])


@pytest.mark.parametrize(("table", "key", "kind", "column", "anonymous"), TABLES, ids=[t[0] for t in TABLES])
async def test_private_rows_are_the_owners_alone(gql: GQL, rows: dict[str, dict[str, str]], table: str, key: str,
                                                 kind: str, column: str, anonymous: bool) -> None:
    private = rows["private"][kind]
    assert await visible(gql, table, key, private, column, "alice"), "the owner reads the private rows"
    assert await visible(gql, table, key, private, column, "carol") == []
    assert await visible(gql, table, key, private, column, "bob") == []  # a member of the public channel only
    if anonymous:
        assert await visible(gql, table, key, private, column, None) == []


# Rows of the public stream/channel that only its managers (or the poll's broadcaster, or channel owners and
# admins) read: bob, a plain member, sees only his own; mod, the channel's moderator, as below.
MANAGED: list[tuple[str, str, str, str, bool]] = [
    ("nchat_stream_poll_votes", "poll_id", "poll", "choices", False),  # the broadcaster's, not moderators'
    ("nchat_stream_quality_metrics", "stream_id", "stream", "bitrate_kbps", True),
    ("nchat_stream_simulcast_destinations", "stream_id", "stream", "name", True),
    ("nchat_stream_bans", "stream_id", "stream", "reason", True),
    ("nchat_channel_blocked_terms", "channel_id", "channel", "term", True),
    ("nchat_moderation_log", "channel_id", "channel", "action", True),
    ("nchat_channel_subscriptions", "channel_id", "channel", "tier", False),  # owners and admins only
]


@pytest.mark.parametrize(("table", "key", "kind", "column", "moderator_reads"), MANAGED, ids=[t[0] for t in MANAGED])
async def test_managers_rows_follow_the_channel_role(gql: GQL, rows: dict[str, dict[str, str]], table: str, key: str,
                                                    kind: str, column: str, moderator_reads: bool) -> None:
    public = rows["public"][kind]
    owned_by_bob = table in ("nchat_stream_poll_votes", "nchat_channel_subscriptions")
    assert bool(await visible(gql, table, key, public, column, "bob")) == owned_by_bob
    assert bool(await visible(gql, table, key, public, column, "mod")) == moderator_reads
    assert await visible(gql, table, key, public, column, "alice")


async def test_suggested_highlights_and_viewer_sessions_are_the_managers(gql: GQL, cast: World,
                                                                      rows: dict[str, dict[str, str]]) -> None:
    stream = rows["public"]["stream"]
    titles = ("query($v: uuid!) { nchat_stream_highlights(where: {stream_id: {_eq: $v}}, order_by: {title: asc}) "
              "{ title } }")
    for caller in (None, "bob", "carol"):
        assert data(await gql(titles, {"v": stream}, as_=caller))["nchat_stream_highlights"] == [{"title": "kept one"}]
    for caller in ("mod", "alice"):
        assert [h["title"] for h in data(await gql(titles, {"v": stream}, as_=caller))["nchat_stream_highlights"]] == [
            "kept one", "suggested one"]
    sessions = "query($v: uuid!) { nchat_stream_viewers(where: {stream_id: {_eq: $v}}) { user_id } }"
    assert data(await gql(sessions, {"v": stream}, as_="carol"))["nchat_stream_viewers"] == []
    assert data(await gql(sessions, {"v": stream}, as_="bob"))["nchat_stream_viewers"] == [{"user_id": cast.bob}]
    assert data(await gql(sessions, {"v": stream}, as_="mod"))["nchat_stream_viewers"] == [{"user_id": cast.bob}]
