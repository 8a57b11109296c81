"""What row-level security costs: the same statement as nchat_user (RLS) and as the table owner (no RLS).

Seeds a scratch database (created here on the given server, dropped at the end) with large tables: one
public stream with --messages chat messages, more streams in the same channel and in other public
channels, a private channel the viewer belongs to and private channels they do not. Each statement runs as
a prepared statement, --repeat times, inside a transaction set up the way db/database.py sets up a request
(`set_config('role', 'nchat_user', true)`, `set_config('hasura.user', claims, true)`), and as the
connecting superuser (who owns the tables and bypasses RLS). Prints the median time of each and the ratio
RLS / no-RLS; --plans also prints EXPLAIN ANALYZE of each statement under RLS.

The tables added after 0014 (polls and votes, highlights, chapters, engagement, viewer sessions, quality
metrics, chat settings, the moderation log) and reactions, recordings and questions are seeded too: --marks
rows each on the big stream (votes on one poll, each from its own user), read by an anonymous caller, the
viewer (a member, not a manager) or the broadcaster of every stream (who manages them all: the largest
managed set).

--compare (the default) measures the policies as of migration 0013 (before issue 15; --before N for another)
on the first group of statements, then as of 0019 (before 0020; or N if later) on the second, and then, on the
same database and data, both after migrating on to the newest migration: a same-run before/after.

--private 10000 is the many-private-channels case: the hidden sets (private channels the viewer is not in,
and their streams) at 10,000 channels and 40,000 streams. Before 0025 every read of streams or chat built
them, public rows or not; `--before 24 --private 10000` measures 0025's flags against that. Before 0029 so did
every read of members, chat settings, reactions, recordings, questions, polls, chapters and highlights;
`--before 28 --private 10000` measures 0029's flags against that.

    .venv/bin/python bench/rls_explain.py [--messages 100000] [--marks 100000] [--private 50] [--repeat 15]
        [--plans] [--no-compare] [--before N] [--after N] [--keep] [--jit]
        [--pg postgresql://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import statistics
import time
from typing import Any

import asyncpg

from graphql_bench import CHAT_AGGREGATE_SQL, LIVE_STREAMS_SQL, STREAM_WITH_CHAT_SQL
from nchat_live.db import migrations

BEFORE = 13  # the last migration before issue 15's policies
FOLLOWUP_BEFORE = 19  # the last before 0020, which rewrote the policies of the tables added after 0014

COUNT_VISIBLE_CHAT_SQL = "SELECT count(*) FROM nchat_stream_chat_messages"
CHANNEL_STREAMS_SQL = """
SELECT json_agg(x) FROM (SELECT s.id, s.title, s.status FROM nchat_streams s
                          WHERE s.channel_id = $1 ORDER BY s.created_at DESC LIMIT 20) x
"""
CHANNEL_MEMBERS_SQL = "SELECT count(*) FROM nchat_channel_members WHERE channel_id = $1"

POLL_VOTES_COUNT_SQL = "SELECT count(*) FROM nchat_stream_poll_votes WHERE poll_id = $1"
POLL_VOTES_SQL = """
SELECT json_agg(x) FROM (SELECT user_id, choices FROM nchat_stream_poll_votes
                          WHERE poll_id = $1 ORDER BY created_at DESC LIMIT 50) x
"""
POLLS_SQL = """
SELECT json_agg(x) FROM (SELECT id, question, vote_counts FROM nchat_stream_polls
                          WHERE stream_id = $1 ORDER BY created_at DESC LIMIT 20) x
"""
HIGHLIGHTS_SQL = """
SELECT json_agg(x) FROM (SELECT id, title, start_seconds, end_seconds FROM nchat_stream_highlights
                          WHERE stream_id = $1 ORDER BY score DESC LIMIT 50) x
"""
HIGHLIGHTS_COUNT_SQL = "SELECT status, count(*) FROM nchat_stream_highlights WHERE stream_id = $1 GROUP BY status"
CHAPTERS_SQL = """
SELECT json_agg(x) FROM (SELECT id, title, start_seconds FROM nchat_stream_chapters
                          WHERE stream_id = $1 ORDER BY start_seconds LIMIT 50) x
"""
CHAPTERS_COUNT_SQL = "SELECT count(*) FROM nchat_stream_chapters WHERE stream_id = $1"
ENGAGEMENT_SUM_SQL = """
SELECT sum(chat_messages), sum(reactions), max(viewer_joins) FROM nchat_stream_engagement WHERE stream_id = $1
"""
ENGAGEMENT_SQL = """
SELECT json_agg(x) FROM (SELECT bucket, chat_messages, reactions FROM nchat_stream_engagement
                          WHERE stream_id = $1 ORDER BY bucket LIMIT 50) x
"""
AUDIENCE_SQL = "SELECT country, count(*) FROM nchat_stream_viewers WHERE stream_id = $1 GROUP BY country"
SESSIONS_SQL = """
SELECT json_agg(x) FROM (SELECT id, country, device_class, joined_at FROM nchat_stream_viewers
                          WHERE stream_id = $1 ORDER BY joined_at DESC LIMIT 50) x
"""
METRICS_SQL = "SELECT avg(bitrate_kbps), max(dropped_frames) FROM nchat_stream_quality_metrics WHERE stream_id = $1"
CHAT_SETTINGS_SQL = "SELECT count(*) FROM nchat_channel_chat_settings WHERE NOT emote_only"
CHAT_SETTINGS_ONE_SQL = "SELECT link_filter, emote_only FROM nchat_channel_chat_settings WHERE channel_id = $1"
# resolvers/reactions.py's reaction_totals, qa.py's questions, streams.py's recordings (the newest first).
REACTIONS_SQL = """
SELECT emoji, count(*)::int FROM nchat_stream_reactions WHERE stream_id = $1 GROUP BY emoji ORDER BY 2 DESC, emoji
"""
QUESTIONS_SQL = """
SELECT json_agg(x) FROM (SELECT id, content, status, upvotes FROM nchat_stream_questions
                          WHERE stream_id = $1 ORDER BY upvotes DESC, created_at LIMIT 50) x
"""
RECORDINGS_SQL = """
SELECT json_agg(x) FROM (SELECT id, kind, status, url, duration_seconds FROM nchat_stream_recordings
                          WHERE stream_id = $1 AND status <> 'deleted' ORDER BY created_at DESC LIMIT 20) x
"""
MODERATION_LOG_SQL = "SELECT action, count(*) FROM nchat_moderation_log WHERE channel_id = $1 GROUP BY action"

# (label, sql, name of the parameter in the seeded ids or None, caller: user (the viewer), anonymous or
# broadcaster)
Query = tuple[str, str, str | None, str]
QUERIES: list[Query] = [
    ("stream + broadcaster + last 50 chat (public, big)", STREAM_WITH_CHAT_SQL, "big", "user"),
    ("stream + broadcaster + last 50 chat (private, member)", STREAM_WITH_CHAT_SQL, "private", "user"),
    ("live streams of a channel", LIVE_STREAMS_SQL, "channel", "user"),
    ("chat aggregate (public, big)", CHAT_AGGREGATE_SQL, "big", "user"),
    ("chat aggregate (private, member)", CHAT_AGGREGATE_SQL, "private", "user"),
    ("chat aggregate (private, not member: 0 rows)", CHAT_AGGREGATE_SQL, "hidden", "user"),
    ("streams of a channel, newest 20", CHANNEL_STREAMS_SQL, "channel", "user"),
    ("members of a channel", CHANNEL_MEMBERS_SQL, "channel", "user"),
    ("count all visible chat (no filter)", COUNT_VISIBLE_CHAT_SQL, None, "user"),
]
# The tables added after 0014 (rewritten by 0020). Anonymous callers are not granted votes, viewer sessions,
# metrics or the moderation log.
FOLLOWUP_QUERIES: list[Query] = [
    ("poll votes count (user: own only)", POLL_VOTES_COUNT_SQL, "poll", "user"),
    ("poll votes count (broadcaster: all)", POLL_VOTES_COUNT_SQL, "poll", "broadcaster"),
    ("poll votes newest 50 (user)", POLL_VOTES_SQL, "poll", "user"),
    ("poll votes newest 50 (broadcaster)", POLL_VOTES_SQL, "poll", "broadcaster"),
    ("polls of a stream, newest 20 (anonymous)", POLLS_SQL, "big", "anonymous"),
    ("polls of a stream, newest 20 (user)", POLLS_SQL, "big", "user"),
    ("highlights top 50 (anonymous: kept)", HIGHLIGHTS_SQL, "big", "anonymous"),
    ("highlights count by status (user: kept)", HIGHLIGHTS_COUNT_SQL, "big", "user"),
    ("highlights count by status (broadcaster: all)", HIGHLIGHTS_COUNT_SQL, "big", "broadcaster"),
    ("chapters first 50 (anonymous)", CHAPTERS_SQL, "big", "anonymous"),
    ("chapters count (user)", CHAPTERS_COUNT_SQL, "big", "user"),
    ("engagement sums (anonymous)", ENGAGEMENT_SUM_SQL, "big", "anonymous"),
    ("engagement first 50 buckets (user)", ENGAGEMENT_SQL, "big", "user"),
    ("audience by country (user: own sessions)", AUDIENCE_SQL, "big", "user"),
    ("audience by country (broadcaster: all)", AUDIENCE_SQL, "big", "broadcaster"),
    ("viewer sessions newest 50 (broadcaster)", SESSIONS_SQL, "big", "broadcaster"),
    ("quality metrics aggregate (user: 0 rows)", METRICS_SQL, "big", "user"),
    ("quality metrics aggregate (broadcaster)", METRICS_SQL, "big", "broadcaster"),
    ("chat settings, all visible channels (anonymous)", CHAT_SETTINGS_SQL, None, "anonymous"),
    ("chat settings of a channel (user)", CHAT_SETTINGS_ONE_SQL, "channel", "user"),
    ("reactions by emoji (anonymous)", REACTIONS_SQL, "big", "anonymous"),
    ("reactions by emoji (user)", REACTIONS_SQL, "big", "user"),
    ("questions top 50 (user)", QUESTIONS_SQL, "big", "user"),
    ("recordings newest 20 (anonymous)", RECORDINGS_SQL, "big", "anonymous"),
    ("moderation log by action (user: 0 rows)", MODERATION_LOG_SQL, "channel", "user"),
    ("moderation log by action (broadcaster, owner)", MODERATION_LOG_SQL, "channel", "broadcaster"),
]

# As db/database.py's pool connects (the JIT compiles for ~1 s on these millisecond statements).
SERVER_SETTINGS = {"jit": "off"}
_SET_CLAIMS = "SELECT set_config('role', $1, true), set_config('hasura.user', $2, true)"
Caller = tuple[str, str]  # Postgres role, claims JSON


async def seed(conn: asyncpg.Connection, messages: int, private_channels: int = 50) -> dict[str, str]:
    """Bulk rows as the owner with triggers off (a bench fixture, not a domain write)."""
    await conn.execute("SET session_replication_role = replica")
    users = [r["id"] for r in await conn.fetch(
        "INSERT INTO nchat_users (username) SELECT 'u' || i FROM generate_series(1, 1000) i RETURNING id")]
    viewer = users[1]

    async def channel(slug: str, private: bool) -> Any:
        return await conn.fetchval(
            "INSERT INTO nchat_channels (name, slug, is_private, owner_id) VALUES ($1, $1, $2, $3) RETURNING id",
            slug, private, users[0])

    async def streams(chan: Any, n: int) -> list[Any]:
        return [r["id"] for r in await conn.fetch(
            "INSERT INTO nchat_streams (channel_id, broadcaster_id, title, status, started_at) "
            "SELECT $1, $2, 'stream ' || i, CASE WHEN i % 3 = 0 THEN 'live' ELSE 'ended' END, "
            "now() - make_interval(mins => i) FROM generate_series(1, $3) i RETURNING id", chan, users[0], n)]

    async def chat(stream: Any, n: int) -> None:
        await conn.execute(
            "INSERT INTO nchat_stream_chat_messages (stream_id, user_id, content, created_at) "
            "SELECT $1, ($2::uuid[])[1 + i % 1000], 'message ' || i, now() - make_interval(secs => i) "
            "FROM generate_series(1, $3) i", stream, users, n)

    main = await channel("main", False)
    main_streams = await streams(main, 30)
    await chat(main_streams[0], messages)
    for s in main_streams[1:10]:
        await chat(s, messages // 50)
    for i in range(200):  # other public channels, a few streams each
        for s in await streams(await channel(f"pub{i}", False), 5):
            await chat(s, 20)
    mine = await channel("mine", True)
    mine_streams = await streams(mine, 5)
    await chat(mine_streams[0], messages // 5)
    hidden_streams: list[Any] = []
    for i in range(min(private_channels, 50)):  # private channels the viewer is not in
        hidden_streams += await streams(await channel(f"priv{i}", True), 4)
    # Beyond 50, in bulk (the hidden sets' fixed cost at scale): 4 streams each, no other rows.
    await conn.execute(
        "WITH c AS (INSERT INTO nchat_channels (name, slug, is_private, owner_id) "
        "SELECT 'bulk' || i, 'bulk' || i, true, $1 FROM generate_series(50, $2 - 1) i RETURNING id) "
        "INSERT INTO nchat_streams (channel_id, broadcaster_id, title, status) "
        "SELECT c.id, $1, 'stream ' || i, 'ended' FROM c, generate_series(1, 4) i", users[0], private_channels)
    for s in hidden_streams[:10]:
        await chat(s, messages // 20)
    await conn.execute(
        "INSERT INTO nchat_channel_members (channel_id, user_id, role) "
        "SELECT c.id, u, 'member' FROM nchat_channels c, unnest($1::uuid[]) u", users[2:40])
    await conn.execute("DELETE FROM nchat_channel_members WHERE channel_id = $1 OR user_id = $2", mine, viewer)
    await conn.execute("INSERT INTO nchat_channel_members (channel_id, user_id, role) VALUES ($1, $2, 'member')",
                       mine, viewer)
    for slug in ("pub1", "pub2", "pub3"):
        await conn.execute("INSERT INTO nchat_channel_members (channel_id, user_id, role) "
                           "SELECT id, $1, 'member' FROM nchat_channels WHERE slug = $2", viewer, slug)
    await private_flags(conn)
    await conn.execute("SET session_replication_role = origin")
    await conn.execute("ANALYZE")
    return {"viewer": str(viewer), "broadcaster": str(users[0]), "big": str(main_streams[0]),
            "private": str(mine_streams[0]), "hidden": str(hidden_streams[0]), "channel": str(main)}


# The tables that carry their channel's privacy (0025, 0029), each with its parent: streams first, since the
# others of a stream copy its flag.
FLAGGED_BY_CHANNEL = ("nchat_streams", "nchat_channel_members", "nchat_channel_chat_settings")
FLAGGED_BY_STREAM = ("nchat_stream_chat_messages", "nchat_stream_reactions", "nchat_stream_recordings",
                     "nchat_stream_questions", "nchat_stream_polls", "nchat_stream_chapters", "nchat_stream_highlights")


async def private_flags(conn: asyncpg.Connection) -> None:
    """The flags of 0025 and 0029, as their triggers (off while seeding) would have set them, on the tables that
    have the column at the migration the database is at."""
    flagged = {r["relname"] for r in await conn.fetch(
        "SELECT c.relname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
        "WHERE a.attname = 'in_private_channel' AND NOT a.attisdropped")}
    for table in FLAGGED_BY_CHANNEL:
        if table in flagged:
            await conn.execute(f"UPDATE {table} x SET in_private_channel = true FROM nchat_channels c "
                               "WHERE c.id = x.channel_id AND c.is_private AND NOT x.in_private_channel")
    for table in FLAGGED_BY_STREAM:
        if table in flagged:
            await conn.execute(f"UPDATE {table} x SET in_private_channel = true FROM nchat_streams s "
                               "WHERE s.id = x.stream_id AND s.in_private_channel AND NOT x.in_private_channel")


async def seed_followups(conn: asyncpg.Connection, ids: dict[str, str], marks: int) -> None:
    """The tables of 0015-0017: `marks` rows each on the big stream, a few on every other stream (hidden
    ones included), votes on one poll from `marks` users of their own."""
    await conn.execute("SET session_replication_role = replica")
    big, viewer, broadcaster = ids["big"], ids["viewer"], ids["broadcaster"]
    await conn.execute(
        "INSERT INTO nchat_stream_polls (stream_id, created_by, question, options, status, created_at) "
        "SELECT s.id, $1, 'poll ' || i, '{yes,no}', 'closed', now() - make_interval(mins => i) "
        "FROM nchat_streams s, generate_series(1, 3) i", broadcaster)
    poll = await conn.fetchval(
        "INSERT INTO nchat_stream_polls (stream_id, created_by, question, options, status) "
        "VALUES ($1, $2, 'the big one', '{yes,no}', 'open') RETURNING id", big, broadcaster)
    ids["poll"] = str(poll)
    await conn.execute(
        "WITH v AS (INSERT INTO nchat_users (username) SELECT 'voter' || i FROM generate_series(1, $2) i "
        "RETURNING id) INSERT INTO nchat_stream_poll_votes (poll_id, user_id, choices, created_at) "
        "SELECT $1, v.id, ARRAY[(random() * 1)::smallint], now() - random() * interval '1 hour' FROM v",
        poll, marks - 1)
    await conn.execute("INSERT INTO nchat_stream_poll_votes (poll_id, user_id, choices) VALUES ($1, $2, '{0}')",
                       poll, viewer)

    streams = [r["id"] for r in await conn.fetch(
        "SELECT s.id FROM nchat_streams s JOIN nchat_channels c ON c.id = s.channel_id WHERE c.slug !~ '^bulk'")]

    async def per_stream(sql: str, few: int) -> None:
        """`sql` inserts `n` rows numbered `i` for each stream `sid` of `per_stream`: `marks` on the big one."""
        counts = [marks if str(s) == big else few for s in streams]
        await conn.execute(
            f"WITH per_stream AS (SELECT unnest($1::uuid[]) AS sid, unnest($2::int[]) AS n) {sql}", streams, counts)

    await per_stream(
        "INSERT INTO nchat_stream_highlights (stream_id, peak_seconds, start_seconds, end_seconds, score, title, "
        "status) SELECT sid, i, i, i + 10, random(), 'highlight ' || i, "
        "(ARRAY['suggested', 'kept', 'discarded'])[1 + i % 3] FROM per_stream, generate_series(1, n) i", 6)
    await per_stream(
        "INSERT INTO nchat_stream_chapters (stream_id, start_seconds, title, source) "
        "SELECT sid, (i * 5) % 604800, 'chapter ' || i, 'auto' FROM per_stream, generate_series(1, n) i", 4)
    await per_stream(
        "INSERT INTO nchat_stream_engagement (stream_id, bucket, bucket_seconds, starts_at, chat_messages, "
        "reactions, viewer_joins) SELECT sid, i, 5, now() - make_interval(secs => i * 5), i % 17, i % 5, i % 3 "
        "FROM per_stream, generate_series(1, n) i", 20)
    await per_stream(
        "INSERT INTO nchat_stream_viewers (stream_id, user_id, viewer_session_id, joined_at, country, device_class) "
        "SELECT sid, u.id, md5(sid::text || i), now() - make_interval(secs => i), "
        "(ARRAY['DE', 'US', 'FR', 'BR', 'JP'])[1 + i % 5], (ARRAY['desktop', 'mobile', 'tv'])[1 + i % 3] "
        "FROM per_stream, generate_series(1, n) i "
        "JOIN (SELECT id, row_number() OVER (ORDER BY id) AS k FROM nchat_users WHERE username ~ '^u[0-9]+$') u "
        "ON u.k = 1 + i % 1000", 10)
    await per_stream(
        "INSERT INTO nchat_stream_quality_metrics (stream_id, recorded_at, bitrate_kbps, dropped_frames) "
        "SELECT sid, now(), 2500 + i % 500, i % 7 FROM per_stream, generate_series(1, n) i", 10)
    await per_stream(
        "INSERT INTO nchat_stream_reactions (stream_id, emoji, created_at) "
        "SELECT sid, (ARRAY['👍', '❤️', '😂', '🔥'])[1 + i % 4], now() - make_interval(secs => i) "
        "FROM per_stream, generate_series(1, n) i", 20)
    await per_stream(
        "INSERT INTO nchat_stream_questions (stream_id, user_id, content, upvotes, created_at) "
        "SELECT sid, (SELECT id FROM nchat_users WHERE username = 'u1'), 'question ' || i, i % 13, "
        "now() - make_interval(secs => i) FROM per_stream, generate_series(1, n) i", 5)
    await per_stream(
        "INSERT INTO nchat_stream_recordings (stream_id, kind, status, url, duration_seconds, created_at) "
        "SELECT sid, CASE WHEN i = 1 THEN 'full' ELSE 'clip' END, 'ready', 'https://cdn.example/' || i, 30, "
        "now() - make_interval(mins => i) FROM per_stream, generate_series(1, n) i", 3)
    await conn.execute("INSERT INTO nchat_channel_chat_settings (channel_id) SELECT id FROM nchat_channels")
    # The broadcaster owns the main channel as a member too (the moderation log is its moderators').
    await conn.execute("INSERT INTO nchat_channel_members (channel_id, user_id, role) VALUES ($1, $2, 'owner')",
                       ids["channel"], broadcaster)
    await conn.execute(
        "INSERT INTO nchat_moderation_log (channel_id, stream_id, actor_id, action) "
        "SELECT c.id, NULL, $1, (ARRAY['delete', 'pin', 'ban'])[1 + i % 3] "
        "FROM nchat_channels c, generate_series(1, CASE WHEN c.id = $2 THEN $3::int ELSE 10 END) i",
        broadcaster, ids["channel"], marks // 10)
    await private_flags(conn)
    await conn.execute("SET session_replication_role = origin")
    await conn.execute("ANALYZE")


async def timed(conn: asyncpg.Connection, sql: str, args: list[Any], repeat: int, caller: Caller | None) -> float:
    """Median milliseconds of the statement (prepared, as the application runs it)."""
    samples: list[float] = []
    for _ in range(repeat):
        async with conn.transaction():
            if caller is not None:
                await conn.execute(_SET_CLAIMS, *caller)
            started = time.perf_counter()
            await conn.fetch(sql, *args)
            samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


async def plan(conn: asyncpg.Connection, sql: str, args: list[Any], caller: Caller) -> str:
    async with conn.transaction():
        await conn.execute(_SET_CLAIMS, *caller)
        rows = await conn.fetch("EXPLAIN (ANALYZE, COSTS OFF) " + sql, *args)
        return "\n".join("    " + r[0] for r in rows)


async def measure(conn: asyncpg.Connection, ids: dict[str, str], queries: list[Query], repeat: int,
                  plans: bool) -> list[float]:
    callers: dict[str, Caller] = {
        "user": ("nchat_user", json.dumps({"x-hasura-role": "user", "x-hasura-user-id": ids["viewer"]})),
        "broadcaster": ("nchat_user", json.dumps({"x-hasura-role": "user", "x-hasura-user-id": ids["broadcaster"]})),
        "anonymous": ("nchat_anonymous", json.dumps({"x-hasura-role": "anonymous"})),
    }
    ratios: list[float] = []
    print(f"{'query':<54} {'no RLS ms':>10} {'RLS ms':>10} {'RLS/no-RLS':>11}")
    for label, sql, param, who in queries:
        args = [ids[param]] if param else []
        owner = await timed(conn, sql, args, repeat, None)
        rls = await timed(conn, sql, args, repeat, callers[who])
        ratios.append(rls / owner)
        print(f"{label:<54} {owner:>10.2f} {rls:>10.2f} {rls / owner:>10.2f}x", flush=True)
        if plans:
            print(await plan(conn, sql, args, callers[who]), flush=True)
    return ratios


def compared(queries: list[Query], before: list[float], after: list[float]) -> None:
    print(f"\n{'query':<54} {'before':>8} {'after':>8}   (RLS / no-RLS, same run)")
    for (label, _, _, _), b, a in zip(queries, before, after, strict=True):
        print(f"{label:<54} {b:>7.2f}x {a:>7.2f}x")


async def reconnect(conn: asyncpg.Connection, url: str, settings: dict[str, str]) -> asyncpg.Connection:
    """A fresh connection: no plan cached under the old policies."""
    await conn.close()
    return await asyncpg.connect(url, server_settings=settings)


async def run(args: argparse.Namespace) -> None:
    name = f"nchat_rls_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(args.pg)
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = args.pg.rsplit("/", 1)[0] + "/" + name
    settings = {} if args.jit else SERVER_SETTINGS
    try:
        conn = await asyncpg.connect(url, server_settings=settings)
        try:
            followup_before = max(FOLLOWUP_BEFORE, args.before)
            await migrations.upgrade(conn, target=args.before if args.compare else None)
            started = time.perf_counter()
            ids = await seed(conn, args.messages, args.private)
            print(f"seeded in {time.perf_counter() - started:.1f} s: {args.messages} chat messages on one public "
                  "stream, more in 9 streams beside it, 200 public channels, 1 private channel of the viewer's "
                  f"and {args.private} others", flush=True)
            before: list[float] = []
            followups_before: list[float] = []
            if args.compare:
                print(f"\n== before: policies as of migration {args.before:04d}")
                before = await measure(conn, ids, QUERIES, args.repeat, args.plans)
                await migrations.upgrade(conn, target=followup_before)
            started = time.perf_counter()
            await seed_followups(conn, ids, args.marks)
            print(f"\nseeded in {time.perf_counter() - started:.1f} s: {args.marks} poll votes (one poll), "
                  "highlights, chapters, engagement buckets, viewer sessions and quality metrics on the big "
                  f"stream, {args.marks // 10} moderation log entries on its channel", flush=True)
            if args.compare:
                conn = await reconnect(conn, url, settings)
                print(f"\n== before: policies as of migration {followup_before:04d}")
                followups_before = await measure(conn, ids, FOLLOWUP_QUERIES, args.repeat, args.plans)
                applied = await migrations.upgrade(conn, target=args.after)
                await conn.execute("ANALYZE")
                conn = await reconnect(conn, url, settings)
                print(f"\n== after: migrated on through {applied[-1]:04d}")
            after = await measure(conn, ids, QUERIES, args.repeat, args.plans)
            followups_after = await measure(conn, ids, FOLLOWUP_QUERIES, args.repeat, args.plans)
            if before:
                compared(QUERIES, before, after)
                compared(FOLLOWUP_QUERIES, followups_before, followups_after)
        finally:
            await conn.close()
    finally:
        if args.keep:
            print(f"kept database {name}")
        else:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--marks", type=int, default=100_000,
                        help="rows in each of 0015-0017's tables on the big stream (poll votes: voters)")
    parser.add_argument("--private", type=int, default=50,
                        help="private channels the viewer is not in (4 streams each): the size of the hidden sets")
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--plans", action="store_true", help="EXPLAIN ANALYZE each statement under RLS")
    parser.add_argument("--jit", action="store_true", help="leave the server's jit setting (the app turns it off)")
    parser.add_argument("--before", type=int, default=BEFORE,
                        help=f"the migration of the 'before' figures (default {BEFORE:04d}, before issue 15)")
    parser.add_argument("--after", type=int, default=None,
                        help="migrate on to this version for the 'after' figures (default: the newest)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database (its name is printed)")
    parser.add_argument("--no-compare", dest="compare", action="store_false",
                        help="only the newest migration (no before/after)")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
