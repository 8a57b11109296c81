"""GraphQL over HTTP vs one hand-written SQL statement and vs PostGraphile: requests/s, p50/p99.

Starts a real uvicorn (subprocess, loopback) on a fresh database seeded here, drives it with httpx at a
fixed concurrency, then produces the same results with one hand-written statement each through
asyncpg: as the connecting superuser (no RLS: the floor), and inside a transaction as nchat_user
with the caller's claims (the same row-level security the GraphQL path pays for). Cases: three
queries, a mutation (`sendChatMessage` vs one INSERT ... RETURNING) and a live-query push (insert a
chat message, wait for the subscription's push; SQL: the insert and the same query re-run).

PostGraphile v4 (`bench/postgraphile/`, `npm install` there; not a dependency of nchat-live) serves
the same database in the same run, driven by the same client: each request runs as the role
`nchat_bench_reader`, which holds SELECT on every column and is a member of `nchat_user` (v4 selects
whole rows in subqueries, which nchat_user's column grants refuse), with the caller's claims in
`hasura.user`, so the same policies apply. Its aggregate is `totalCount` + a distinct count
(`@graphile/pg-aggregates` 0.1 has no max of a timestamp); it has no live queries here (v4 needs
`@graphile/subscriptions-lds` and wal2json): n/a.

    .venv/bin/python bench/graphql_bench.py [--seconds 3] [--concurrency 8]
        [--pg postgresql://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import secrets
import shutil
import socket
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import httpx
import websockets
from websockets.typing import Subprotocol

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

SEND_CHAT = """mutation($id: ID!, $content: String!) {
  sendChatMessage(streamId: $id, content: $content) { id content }
}"""
SEND_CHAT_SQL = """
WITH m AS (INSERT INTO nchat_stream_chat_messages (stream_id, user_id, content) VALUES ($1, $2, $3)
           RETURNING id, content)
SELECT json_build_object('sendChatMessage', json_build_object('id', m.id, 'content', m.content)) FROM m
"""
LIVE_CHAT = """subscription($id: uuid!) {
  nchat_stream_chat_messages(where: {stream_id: {_eq: $id}}, order_by: {created_at: desc}, limit: 1) { id content }
}"""
LIVE_CHAT_SQL = """
SELECT json_build_object('nchat_stream_chat_messages', coalesce(json_agg(x.j), '[]')) FROM (
  SELECT json_build_object('id', c.id, 'content', c.content) AS j FROM nchat_stream_chat_messages c
  WHERE c.stream_id = $1 ORDER BY c.created_at DESC LIMIT 1) x
"""

# PostGraphile v4's spelling of the same queries (its inflection: allX, xById, relations by key).
PGL_STREAM_WITH_CHAT = """query($id: UUID!) { nchatStreamById(id: $id) { id title status currentViewers
  nchatUserByBroadcasterId { id username displayName avatarUrl }
  nchatStreamChatMessagesByStreamId(orderBy: CREATED_AT_DESC, first: 50) { nodes { id content createdAt
    nchatUserByUserId { id username displayName avatarUrl } } } } }"""
PGL_LIVE_STREAMS = """query($channel: UUID!) {
  allNchatStreams(condition: {channelId: $channel, status: "live"}, orderBy: STARTED_AT_DESC) {
    nodes { id title thumbnailUrl currentViewers startedAt nchatUserByBroadcasterId { username displayName } } } }"""
PGL_CHAT_AGGREGATE = """query($id: UUID!) {
  allNchatStreamChatMessages(condition: {streamId: $id, isDeleted: false}) {
    totalCount aggregates { distinctCount { userId } } } }"""
PGL_SEND_CHAT = """mutation($id: UUID!, $user: UUID!, $content: String!) {
  createNchatStreamChatMessage(input: {nchatStreamChatMessage: {streamId: $id, userId: $user, content: $content}}) {
    nchatStreamChatMessage { id content } } }"""
PGL_READER = "nchat_bench_reader"
CHATTERS = 400
USER = "__user"  # a case's variables may name the caller under this key (taken out before sending)
PGL_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "postgraphile")


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
        # Chatters of the mutation case: the chat rate limit (5 messages per 10 s per user and stream)
        # holds on every path, so each request posts as the next (user, stream) of 400 x 3.
        chatters = [str(await s.fetchval(
            "INSERT INTO nchat_users (username, display_name) VALUES ($1, $2) RETURNING id", f"chatter{i}", f"C {i}"))
            for i in range(CHATTERS)]
    await db.close()
    # PostGraphile's reader: every column (v4 selects whole rows), and nchat_user's policies.
    conn = await asyncpg.connect(url)
    await conn.execute(f"""DO $$ BEGIN
      IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{PGL_READER}') THEN
        CREATE ROLE {PGL_READER} NOLOGIN IN ROLE nchat_user; END IF; END $$""")
    await conn.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {PGL_READER}")
    await conn.execute(f"GRANT {PGL_READER} TO current_user")
    await conn.close()
    return {"user": users[1], "channel": channel, "stream": streams[0], "chat_streams": ",".join(streams[1:4]),
            "live_stream": streams[4], "chatters": ",".join(chatters)}


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


async def _wait_ready(client: httpx.AsyncClient, path: str) -> None:
    for _ in range(300):
        try:
            if (await client.get(path)).status_code < 500:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{client.base_url}{path} did not answer")


async def _start_postgraphile(url: str, installed: bool) -> tuple[asyncio.subprocess.Process | None, str | None]:
    node = shutil.which("node")
    if node is None or not installed:
        print("postgraphile: n/a (needs node and `npm install` in bench/postgraphile)")
        return None, None
    port = free_port()
    env = {**os.environ, "DATABASE_URL": url, "PORT": str(port), "PGL_ROLE": PGL_READER}
    proc = await asyncio.create_subprocess_exec(node, os.path.join(PGL_DIR, "server.js"), env=env, cwd=PGL_DIR)
    return proc, f"http://127.0.0.1:{port}"


def _pgl_installed() -> bool:
    return os.path.isdir(os.path.join(PGL_DIR, "node_modules", "postgraphile"))


def _row(label: str, g: dict[str, float], f: dict[str, float], r: dict[str, float],
         p: dict[str, float] | None) -> str:
    pgl = f"{p['rps']:7.0f} {p['p50_ms']:7.1f} {g['rps'] / p['rps']:6.2f}" if p else f"{'n/a':>7} {'':7} {'':6}"
    return (f"{label:34} {g['rps']:7.0f} {g['p50_ms']:7.1f} {g['p99_ms']:7.1f} | {f['rps']:7.0f} {f['p50_ms']:7.1f} "
            f"{g['rps'] / f['rps']:6.2f} | {r['rps']:7.0f} {r['p50_ms']:7.1f} {g['rps'] / r['rps']:6.2f} | {pgl}")


async def run(args: argparse.Namespace) -> None:
    name = f"nchat_bench_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(args.pg)
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = args.pg.rsplit("/", 1)[0] + "/" + name
    server: asyncio.subprocess.Process | None = None
    pgl_proc: asyncio.subprocess.Process | None = None
    try:
        ids = await seed(url)
        port = free_port()
        env = {**os.environ, "DATABASE_URL": url, "NCHAT_JWT_SECRET": JWT_SECRET, "NCHAT_MEDIA_ENABLED": "false",
               "NCHAT_DB_POOL_SIZE": str(args.concurrency)}
        # The server as `nchat-live serve` runs it (uvloop and httptools when installed: `auto`).
        server = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "uvicorn", "--factory", "nchat_live.app:create_app", "--port", str(port),
            "--log-level", "warning", "--no-access-log", env=env)
        pgl_proc, pgl_base = await _start_postgraphile(url, _pgl_installed())
        base = f"http://127.0.0.1:{port}"
        token = mint_token(JWT_SECRET, ids["user"])
        claims = Claims.user(ids["user"]).as_setting()
        stream, channel, user = ids["stream"], ids["channel"], ids["user"]
        chatters = ids["chatters"].split(",")
        pairs = itertools.cycle([(st, ch) for ch in chatters for st in ids["chat_streams"].split(",")])
        tokens = {ch: mint_token(JWT_SECRET, ch) for ch in chatters}
        seq = itertools.count()

        def chat() -> dict[str, Any]:
            st, ch = next(pairs)
            return {"id": st, "content": f"m{next(seq)}", USER: ch}

        def chat_sql() -> list[Any]:
            st, ch = next(pairs)
            return [st, ch, f"s{next(seq)}"]

        def chat_pgl() -> dict[str, Any]:
            st, ch = next(pairs)
            return {"id": st, "user": ch, "content": f"p{next(seq)}", USER: ch}

        # (label, graphql document, its variables, SQL, its parameters (the user: the second), PostGraphile's)
        cases: list[tuple[str, str, Callable[[], dict[str, Any]], str, Callable[[], list[Any]], str | None,
                          Callable[[], dict[str, Any]]]] = [
            ("stream + broadcaster + 50 chat", STREAM_WITH_CHAT, lambda: {"id": stream},
             STREAM_WITH_CHAT_SQL, lambda: [stream], PGL_STREAM_WITH_CHAT, lambda: {"id": stream}),
            ("live streams of a channel", LIVE_STREAMS, lambda: {"channel": channel},
             LIVE_STREAMS_SQL, lambda: [channel], PGL_LIVE_STREAMS, lambda: {"channel": channel}),
            ("chat aggregate", CHAT_AGGREGATE, lambda: {"id": stream},
             CHAT_AGGREGATE_SQL, lambda: [stream], PGL_CHAT_AGGREGATE, lambda: {"id": stream}),
            ("mutation sendChatMessage", SEND_CHAT, chat, SEND_CHAT_SQL, chat_sql, PGL_SEND_CHAT, chat_pgl),
        ]

        def as_caller(variables: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str], dict[str, str]]:
            """The variables without the caller, and the caller's headers for nchat-live and PostGraphile."""
            caller = variables.pop(USER, user)
            return (variables, {"authorization": f"Bearer {tokens.get(caller) or token}"},
                    {"x-hasura-claims": Claims.user(caller).as_setting()})

        limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
        async with httpx.AsyncClient(base_url=base, headers={"authorization": f"Bearer {token}"},
                                     limits=limits, timeout=30) as client, \
                httpx.AsyncClient(base_url=pgl_base or base, headers={"x-hasura-claims": claims},
                                  limits=limits, timeout=30) as pgl_client:
            await _wait_ready(client, "/healthz")
            if pgl_base is not None:
                await _wait_ready(pgl_client, "/graphql")
            pool = await asyncpg.create_pool(url, min_size=args.concurrency, max_size=args.concurrency)
            print(f"concurrency {args.concurrency}, {args.seconds:g} s per case")
            print("graphql: HTTP to uvicorn as a user (RLS); sql: one hand-written statement via asyncpg as the "
                  "superuser (no RLS); sql+rls: the same statement in a transaction as nchat_user with the claims; "
                  "pgl: PostGraphile v4, same database and policies; ratio: graphql rps / that column's rps")
            print(f"{'case':34} {'gql rps':>7} {'p50 ms':>7} {'p99 ms':>7} | {'sql rps':>7} {'p50 ms':>7} "
                  f"{'ratio':>6} | {'rls rps':>7} {'p50 ms':>7} {'ratio':>6} | {'pgl rps':>7} {'p50 ms':>7} "
                  f"{'ratio':>6}")
            for label, query, variables, sql, params, pgl_query, pgl_variables in cases:
                first_vars, first_headers, _ = as_caller(variables())
                first = (await client.post("/v1/graphql", json={"query": query, "variables": first_vars},
                                           headers=first_headers)).json()
                floor = json.loads(await pool.fetchval(sql, *params()))
                assert "errors" not in first, first
                assert _shape(first["data"]) == _shape(floor), (first["data"], floor)

                async def gql_call(query: str = query, variables: Callable[[], dict[str, Any]] = variables) -> None:
                    values, headers, _ = as_caller(variables())
                    response = await client.post("/v1/graphql", json={"query": query, "variables": values},
                                                 headers=headers)
                    answer = response.json()
                    assert "errors" not in answer, answer

                async def sql_call(sql: str = sql, params: Callable[[], list[Any]] = params) -> None:
                    json.loads(await pool.fetchval(sql, *params()))

                async def rls_call(sql: str = sql, params: Callable[[], list[Any]] = params) -> None:
                    values = params()
                    caller = Claims.user(values[1]).as_setting() if len(values) > 1 else claims
                    async with pool.acquire() as conn, conn.transaction():
                        await conn.execute(_SET_ROLE, caller)
                        json.loads(await conn.fetchval(sql, *values))

                async def pgl_call(query: str | None = pgl_query,
                                   variables: Callable[[], dict[str, Any]] = pgl_variables) -> None:
                    values, _, headers = as_caller(variables())
                    response = await pgl_client.post("/graphql", json={"query": query, "variables": values},
                                                     headers=headers)
                    answer = response.json()
                    assert "errors" not in answer, answer

                await measure(gql_call, 0.5, args.concurrency)  # warm caches and the pool
                g = await measure(gql_call, args.seconds, args.concurrency)
                f = await measure(sql_call, args.seconds, args.concurrency)
                r = await measure(rls_call, args.seconds, args.concurrency)
                p = None
                if pgl_base is not None and pgl_query is not None:
                    await measure(pgl_call, 0.5, args.concurrency)
                    p = await measure(pgl_call, args.seconds, args.concurrency)
                print(_row(label, g, f, r, p), flush=True)
            await _live_push(args, base, token, pool, claims, ids["live_stream"], chatters)
            await pool.close()
    finally:
        for proc in (server, pgl_proc):
            if proc is not None:
                proc.terminate()
                await asyncio.wait_for(proc.wait(), 10)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


_INSERT_CHAT = "INSERT INTO nchat_stream_chat_messages (stream_id, user_id, content) VALUES ($1, $2, $3)"


async def _live_push(args: argparse.Namespace, base: str, token: str, pool: asyncpg.Pool, claims: str,
                     stream: str, chatters: list[str]) -> None:
    """One subscriber; each round inserts a chat message and waits for the push that carries it."""
    ws_url = base.replace("http://", "ws://") + "/v1/graphql"
    async with websockets.connect(ws_url, subprotocols=[Subprotocol("graphql-transport-ws")]) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": {"headers": {
            "Authorization": f"Bearer {token}"}}}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        await ws.send(json.dumps({"id": "1", "type": "subscribe",
                                  "payload": {"query": LIVE_CHAT, "variables": {"id": stream}}}))
        await asyncio.wait_for(ws.recv(), 10)  # the first result
        n = itertools.count()
        users = itertools.cycle(chatters)

        async def push() -> None:
            content = f"live {next(n)}"
            await pool.execute(_INSERT_CHAT, stream, next(users), content)
            while True:
                message = json.loads(await asyncio.wait_for(ws.recv(), 10))
                assert message["type"] == "next", message
                rows = message["payload"]["data"]["nchat_stream_chat_messages"]
                if rows and rows[0]["content"] == content:
                    return

        async def sql_push() -> None:
            await pool.execute(_INSERT_CHAT, stream, next(users), f"sql {next(n)}")
            json.loads(await pool.fetchval(LIVE_CHAT_SQL, stream))

        async def rls_push() -> None:
            await pool.execute(_INSERT_CHAT, stream, next(users), f"rls {next(n)}")
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute(_SET_ROLE, claims)
                json.loads(await conn.fetchval(LIVE_CHAT_SQL, stream))

        await measure(push, 0.5, 1)
        g = await measure(push, args.seconds, 1)
        f = await measure(sql_push, args.seconds, 1)
        r = await measure(rls_push, args.seconds, 1)
        print(_row("live-query push (1 subscriber)", g, f, r, None), flush=True)


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
