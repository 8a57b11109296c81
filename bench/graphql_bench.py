"""GraphQL over HTTP vs one hand-written SQL statement: requests/s and p50/p99 for typical nchat queries.

Starts a real uvicorn (subprocess, loopback) on a fresh database seeded here, drives it with httpx at a
fixed concurrency, then produces the same results with one hand-written statement each through
asyncpg: as the connecting superuser (no RLS: the floor), and inside a transaction as nchat_user
with the caller's claims (the same row-level security the GraphQL path pays for).

    .venv/bin/python bench/graphql_bench.py [--seconds 3] [--concurrency 8]
        [--pg postgresql://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import socket
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import httpx

from nchat_live.auth import Claims, mint_token
from nchat_live.db import Database

JWT_SECRET = '{"type": "HS256", "key": "bench-secret-key-that-is-long-enough-for-hs256"}'

STREAM_WITH_CHAT = """query($id: uuid!) {
  nchat_streams_by_pk(id: $id) {
    id title status current_viewers
    broadcaster { id username display_name avatar_url }
    chat_messages(order_by: {created_at: desc}, limit: 50) {
      id content created_at user { id username display_name avatar_url }
    }
  }
}"""
STREAM_WITH_CHAT_SQL = """
SELECT json_build_object('nchat_streams_by_pk', (
  SELECT json_build_object('id', s.id, 'title', s.title, 'status', s.status, 'current_viewers', s.current_viewers,
    'broadcaster', (SELECT json_build_object('id', u.id, 'username', u.username, 'display_name', u.display_name,
                                             'avatar_url', u.avatar_url)
                    FROM nchat_users u WHERE u.id = s.broadcaster_id),
    'chat_messages', (SELECT coalesce(json_agg(m.j), '[]') FROM (
        SELECT json_build_object('id', c.id, 'content', c.content, 'created_at', c.created_at,
          'user', json_build_object('id', u.id, 'username', u.username, 'display_name', u.display_name,
                                    'avatar_url', u.avatar_url)) AS j
        FROM nchat_stream_chat_messages c JOIN nchat_users u ON u.id = c.user_id
        WHERE c.stream_id = s.id ORDER BY c.created_at DESC LIMIT 50) m))
  FROM nchat_streams s WHERE s.id = $1))
"""

LIVE_STREAMS = """query($channel: uuid!) {
  nchat_streams(where: {channel_id: {_eq: $channel}, status: {_eq: "live"}}, order_by: {started_at: desc}) {
    id title thumbnail_url current_viewers started_at broadcaster { username display_name }
  }
}"""
LIVE_STREAMS_SQL = """
SELECT json_build_object('nchat_streams', coalesce(json_agg(x.j), '[]')) FROM (
  SELECT json_build_object('id', s.id, 'title', s.title, 'thumbnail_url', s.thumbnail_url,
    'current_viewers', s.current_viewers, 'started_at', s.started_at,
    'broadcaster', json_build_object('username', u.username, 'display_name', u.display_name)) AS j
  FROM nchat_streams s JOIN nchat_users u ON u.id = s.broadcaster_id
  WHERE s.channel_id = $1 AND s.status = 'live' ORDER BY s.started_at DESC) x
"""

CHAT_AGGREGATE = """query($id: uuid!) {
  nchat_stream_chat_messages_aggregate(where: {stream_id: {_eq: $id}, is_deleted: {_eq: false}}) {
    aggregate { count users: count(columns: user_id, distinct: true) max { created_at } }
  }
}"""
CHAT_AGGREGATE_SQL = """
SELECT json_build_object('nchat_stream_chat_messages_aggregate', json_build_object('aggregate', json_build_object(
  'count', count(*), 'users', count(DISTINCT user_id), 'max', json_build_object('created_at', max(created_at)))))
FROM nchat_stream_chat_messages WHERE stream_id = $1 AND NOT is_deleted
"""


async def seed(url: str) -> dict[str, str]:
    db = Database(url)
    await db.migrate()
    async with db.session(Claims.service()) as s:
        users = [str(await s.fetchval(
            "INSERT INTO nchat_users (username, display_name) VALUES ($1, $2) RETURNING id", f"user{i}", f"User {i}"))
            for i in range(20)]
        channel = str(await s.fetchval(
            "INSERT INTO nchat_channels (name, slug, owner_id) VALUES ('Bench', 'bench', $1) RETURNING id", users[0]))
        streams = [str(await s.fetchval(
            "INSERT INTO nchat_streams (channel_id, broadcaster_id, title, status, started_at) "
            "VALUES ($1, $2, $3, $4, now() - make_interval(mins => $5)) RETURNING id",
            channel, users[i], f"stream {i}", "live" if i < 5 else "ended", i)) for i in range(10)]
        await s.executemany(
            "INSERT INTO nchat_stream_chat_messages (stream_id, user_id, content, created_at) "
            "VALUES ($1, $2, $3, now() - make_interval(secs => $4))",
            [(streams[0], users[i % 20], f"message {i}", float(i)) for i in range(500)])
    await db.close()
    return {"user": users[1], "channel": channel, "stream": streams[0]}


_SET_ROLE = "SELECT set_config('role', 'nchat_user', true), set_config('hasura.user', $1, true)"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def measure(call: Callable[[], Awaitable[Any]], seconds: float, concurrency: int) -> dict[str, float]:
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            await call()
            latencies.append(time.perf_counter() - started)

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - began
    latencies.sort()
    return {
        "rps": len(latencies) / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
    }


async def run(args: argparse.Namespace) -> None:
    name = f"nchat_bench_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(args.pg)
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = args.pg.rsplit("/", 1)[0] + "/" + name
    server: asyncio.subprocess.Process | None = None
    try:
        ids = await seed(url)
        port = free_port()
        env = {**os.environ, "DATABASE_URL": url, "NCHAT_JWT_SECRET": JWT_SECRET, "NCHAT_MEDIA_ENABLED": "false",
               "NCHAT_DB_POOL_SIZE": str(args.concurrency)}
        server = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "uvicorn", "--factory", "nchat_live.app:create_app", "--port", str(port),
            "--log-level", "warning", "--no-access-log", env=env)
        base = f"http://127.0.0.1:{port}"
        token = mint_token(JWT_SECRET, ids["user"])
        cases = [
            ("stream + broadcaster + last 50 chat with users", STREAM_WITH_CHAT, {"id": ids["stream"]},
             STREAM_WITH_CHAT_SQL, ids["stream"]),
            ("live streams of a channel", LIVE_STREAMS, {"channel": ids["channel"]}, LIVE_STREAMS_SQL, ids["channel"]),
            ("chat aggregate", CHAT_AGGREGATE, {"id": ids["stream"]}, CHAT_AGGREGATE_SQL, ids["stream"]),
        ]
        limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
        async with httpx.AsyncClient(base_url=base, headers={"authorization": f"Bearer {token}"},
                                     limits=limits, timeout=30) as client:
            for _ in range(300):
                try:
                    if (await client.get("/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
            pool = await asyncpg.create_pool(url, min_size=args.concurrency, max_size=args.concurrency)
            print(f"concurrency {args.concurrency}, {args.seconds:.0f} s per case")
            claims = Claims.user(ids["user"]).as_setting()
            print("graphql: HTTP to uvicorn as a user (RLS); sql: one hand-written statement via asyncpg as the "
                  "superuser (no RLS); sql+rls: the same statement in a transaction as nchat_user with the claims")
            print(f"{'query':48} {'gql rps':>7} {'p50 ms':>7} {'p99 ms':>7} | {'sql rps':>7} {'p50 ms':>7} "
                  f"{'p99 ms':>7} {'ratio':>6} | {'rls rps':>7} {'p50 ms':>7} {'p99 ms':>7} {'ratio':>6}")
            for label, query, variables, sql, param in cases:
                body = {"query": query, "variables": variables}
                first = (await client.post("/v1/graphql", json=body)).json()
                floor = json.loads(await pool.fetchval(sql, param))
                assert "errors" not in first, first
                assert _shape(first["data"]) == _shape(floor), (first["data"], floor)

                async def gql_call(body: dict[str, Any] = body) -> None:
                    response = await client.post("/v1/graphql", json=body)
                    response.json()

                async def sql_call(sql: str = sql, param: str = param) -> None:
                    json.loads(await pool.fetchval(sql, param))

                async def rls_call(sql: str = sql, param: str = param) -> None:
                    async with pool.acquire() as conn, conn.transaction():
                        await conn.execute(_SET_ROLE, claims)
                        json.loads(await conn.fetchval(sql, param))

                await measure(gql_call, 0.5, args.concurrency)  # warm caches and the pool
                g = await measure(gql_call, args.seconds, args.concurrency)
                f = await measure(sql_call, args.seconds, args.concurrency)
                r = await measure(rls_call, args.seconds, args.concurrency)
                print(f"{label:48} {g['rps']:7.0f} {g['p50_ms']:7.1f} {g['p99_ms']:7.1f} | {f['rps']:7.0f} "
                      f"{f['p50_ms']:7.1f} {f['p99_ms']:7.1f} {g['rps'] / f['rps']:6.2f} | {r['rps']:7.0f} "
                      f"{r['p50_ms']:7.1f} {r['p99_ms']:7.1f} {g['rps'] / r['rps']:6.2f}")
            await pool.close()
    finally:
        if server is not None:
            server.terminate()
            await asyncio.wait_for(server.wait(), 10)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def _shape(value: Any) -> Any:
    """Keys and list lengths: both paths must produce the same result (timestamps format alike)."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shape(v) for v in value]
    return type(value).__name__


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--pg", default=os.environ.get("NCHAT_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres"))
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
