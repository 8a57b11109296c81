"""What row-level security costs: the same statement as nchat_user (RLS) and as the table owner (no RLS).

Seeds a scratch database (created here on the given server, dropped at the end) with large tables: one
public stream with --messages chat messages, more streams in the same channel and in other public
channels, a private channel the viewer belongs to and private channels they do not. Each statement runs as
a prepared statement, --repeat times, inside a transaction set up the way db/database.py sets up a request
(`set_config('role', 'nchat_user', true)`, `set_config('hasura.user', claims, true)`), and as the
connecting superuser (who owns the tables and bypasses RLS). Prints the median time of each and the ratio
RLS / no-RLS; --plans also prints EXPLAIN ANALYZE of each statement under RLS.

--compare (the default) measures the policies as of migration 0013 (before issue 15) and then, on the same
database and data, after migrating on to the newest migration: a same-run before/after.

    .venv/bin/python bench/rls_explain.py [--messages 100000] [--repeat 15] [--plans] [--no-compare] [--after N]
        [--keep] [--jit] [--pg postgresql://postgres@127.0.0.1:5432/postgres]
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

COUNT_VISIBLE_CHAT_SQL = "SELECT count(*) FROM nchat_stream_chat_messages"
CHANNEL_STREAMS_SQL = """
SELECT json_agg(x) FROM (SELECT s.id, s.title, s.status FROM nchat_streams s
                          WHERE s.channel_id = $1 ORDER BY s.created_at DESC LIMIT 20) x
"""
CHANNEL_MEMBERS_SQL = "SELECT count(*) FROM nchat_channel_members WHERE channel_id = $1"

# (label, sql, name of the parameter in the seeded ids, or None)
QUERIES: list[tuple[str, str, str | None]] = [
    ("stream + broadcaster + last 50 chat (public, big)", STREAM_WITH_CHAT_SQL, "big"),
    ("stream + broadcaster + last 50 chat (private, member)", STREAM_WITH_CHAT_SQL, "private"),
    ("live streams of a channel", LIVE_STREAMS_SQL, "channel"),
    ("chat aggregate (public, big)", CHAT_AGGREGATE_SQL, "big"),
    ("chat aggregate (private, member)", CHAT_AGGREGATE_SQL, "private"),
    ("chat aggregate (private, not member: 0 rows)", CHAT_AGGREGATE_SQL, "hidden"),
    ("streams of a channel, newest 20", CHANNEL_STREAMS_SQL, "channel"),
    ("members of a channel", CHANNEL_MEMBERS_SQL, "channel"),
    ("count all visible chat (no filter)", COUNT_VISIBLE_CHAT_SQL, None),
]

# As db/database.py's pool connects (the JIT compiles for ~1 s on these millisecond statements).
SERVER_SETTINGS = {"jit": "off"}
_SET_CLAIMS = "SELECT set_config('role', 'nchat_user', true), set_config('hasura.user', $1, true)"


async def seed(conn: asyncpg.Connection, messages: int) -> dict[str, str]:
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
    for i in range(50):  # private channels the viewer is not in
        hidden_streams += await streams(await channel(f"priv{i}", True), 4)
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
    await conn.execute("SET session_replication_role = origin")
    await conn.execute("ANALYZE")
    return {"viewer": str(viewer), "big": str(main_streams[0]), "private": str(mine_streams[0]),
            "hidden": str(hidden_streams[0]), "channel": str(main)}


async def timed(conn: asyncpg.Connection, sql: str, args: list[Any], repeat: int, claims: str | None) -> float:
    """Median milliseconds of the statement (prepared, as the application runs it)."""
    samples: list[float] = []
    for _ in range(repeat):
        async with conn.transaction():
            if claims is not None:
                await conn.execute(_SET_CLAIMS, claims)
            started = time.perf_counter()
            await conn.fetch(sql, *args)
            samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


async def plan(conn: asyncpg.Connection, sql: str, args: list[Any], claims: str) -> str:
    async with conn.transaction():
        await conn.execute(_SET_CLAIMS, claims)
        rows = await conn.fetch("EXPLAIN (ANALYZE, COSTS OFF) " + sql, *args)
        return "\n".join("    " + r[0] for r in rows)


async def measure(conn: asyncpg.Connection, ids: dict[str, str], repeat: int, plans: bool) -> list[float]:
    claims = json.dumps({"x-hasura-role": "user", "x-hasura-user-id": ids["viewer"]})
    ratios: list[float] = []
    print(f"{'query':<54} {'no RLS ms':>10} {'RLS ms':>10} {'RLS/no-RLS':>11}")
    for label, sql, param in QUERIES:
        args = [ids[param]] if param else []
        owner = await timed(conn, sql, args, repeat, None)
        rls = await timed(conn, sql, args, repeat, claims)
        ratios.append(rls / owner)
        print(f"{label:<54} {owner:>10.2f} {rls:>10.2f} {rls / owner:>10.2f}x", flush=True)
        if plans:
            print(await plan(conn, sql, args, claims), flush=True)
    return ratios


async def run(args: argparse.Namespace) -> None:
    name = f"nchat_rls_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(args.pg)
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = args.pg.rsplit("/", 1)[0] + "/" + name
    settings = {} if args.jit else SERVER_SETTINGS
    try:
        conn = await asyncpg.connect(url, server_settings=settings)
        try:
            await migrations.upgrade(conn, target=BEFORE if args.compare else None)
            started = time.perf_counter()
            ids = await seed(conn, args.messages)
            print(f"seeded in {time.perf_counter() - started:.1f} s: {args.messages} chat messages on one public "
                  "stream, more in 9 streams beside it, 200 public channels, 1 private channel of the viewer's "
                  "and 50 others", flush=True)
            before: list[float] = []
            if args.compare:
                print(f"\n== before: policies as of migration {BEFORE:04d}")
                before = await measure(conn, ids, args.repeat, args.plans)
                applied = await migrations.upgrade(conn, target=args.after)
                await conn.execute("ANALYZE")
                # a fresh connection: no plan cached under the old policies
                await conn.close()
                conn = await asyncpg.connect(url, server_settings=settings)
                print(f"\n== after: migrated on through {applied[-1]:04d}")
            after = await measure(conn, ids, args.repeat, args.plans)
            if before:
                print(f"\n{'query':<54} {'before':>8} {'after':>8}   (RLS / no-RLS, same run)")
                for (label, _, _), b, a in zip(QUERIES, before, after, strict=True):
                    print(f"{label:<54} {b:>7.2f}x {a:>7.2f}x")
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
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--plans", action="store_true", help="EXPLAIN ANALYZE each statement under RLS")
    parser.add_argument("--jit", action="store_true", help="leave the server's jit setting (the app turns it off)")
    parser.add_argument("--after", type=int, default=None,
                        help="migrate on to this version for the 'after' figures (default: the newest)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database (its name is printed)")
    parser.add_argument("--no-compare", dest="compare", action="store_false",
                        help="only the newest migration (no before/after)")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
