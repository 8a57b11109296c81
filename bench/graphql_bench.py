"""GraphQL over HTTP vs one hand-written SQL statement and vs PostGraphile: requests/s, p50/p99.

Starts `nchat-live api --workers W` (subprocesses on loopback; each W of `--workers`, e.g. `1,2`) on a
fresh database seeded here, and drives it at a fixed concurrency with a minimal HTTP/1.1 client of
this file (keep-alive connections over asyncio protocols, one request in flight per connection, no
pipelining; it checks that each answer starts with `{"data"`) so the figure is the server's, not the
client's. The same results then come from one hand-written statement each through asyncpg in this
process (no HTTP hop at all): as the connecting superuser (no RLS: the floor), and inside a
transaction as nchat_user with the caller's claims (the same row-level security the GraphQL path
pays for). Cases: three queries, a mutation (`sendChatMessage` vs one INSERT ... RETURNING) and a
live-query push (insert a chat message, wait for the subscription's push over a websocket; SQL: the
insert and the same query re-run).

The server runs with NCHAT_DB_SESSIONS_PER_CLIENT = the concurrency (the bench's queries are one
user's: the default per-client share, 5, would cap them below the SQL baseline's pool) and the pool
at the concurrency per worker; one worker uses the in-process bus, more share Redis (`--redis`).

PostGraphile v4 (`bench/postgraphile/`, `npm ci` there; not a dependency of nchat-live; one node
process) serves the same database in the same run, driven by the same client: each request runs as
the role `nchat_bench_reader`, which holds SELECT on every column and is a member of `nchat_user`
(v4 selects whole rows in subqueries, which nchat_user's column grants refuse), with the caller's
claims in `hasura.user`, so the same policies apply. Both servers get the same bearer token and verify it
(PostGraphile with jsonwebtoken in its `pgSettings`). Its aggregate is `totalCount` + a distinct count
(`@graphile/pg-aggregates` 0.1 has no max of a timestamp); it has no live queries here (v4 needs
`@graphile/subscriptions-lds` and wal2json): n/a.

    .venv/bin/python bench/graphql_bench.py [--seconds 3] [--concurrency 8] [--workers 1,2]
        [--server-src /tmp/old/src]   # another checkout's server (before/after in one command)
        [--pg postgresql://postgres@127.0.0.1:5432/postgres] [--redis redis://127.0.0.1:6379/0]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import secrets
import shutil
import signal
import socket
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any, cast

import asyncpg
import uvloop
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
CHATTERS = 3000
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
        # holds on every path, so each request posts as the next (user, stream) of CHATTERS x 3.
        chatters = [str(r["id"]) for r in await s.fetch(
            "INSERT INTO nchat_users (username, display_name) SELECT 'chatter' || i, 'C ' || i "
            "FROM generate_series(1, $1) i RETURNING id", CHATTERS)]
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
_INSERT_CHAT = "INSERT INTO nchat_stream_chat_messages (stream_id, user_id, content) VALUES ($1, $2, $3)"

Result = dict[str, float]
CLOCK_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) of one process from /proc; 0 when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICK


def _tree(pid: int) -> list[int]:
    """A process and its descendants (the server's workers)."""
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        try:
            with open(f"/proc/{p}/task/{p}/children") as f:
                todo += [int(c) for c in f.read().split()]
        except OSError:
            pass
    return found


def _backends(database: str) -> list[int]:
    """The Postgres backends connected to the bench's database (other databases' work is not counted)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if cmd.startswith("postgres: ") and f" {database} " in cmd:
                pids.append(int(entry))
    return pids


class CpuMeter:
    """CPU time per request of the server measured, Postgres (the bench database's backends) and this
    process (client and, for the SQL columns, asyncpg): on a shared machine, CPU per request moves far
    less than requests per second does. Linux /proc only; elsewhere the columns read n/a."""

    def __init__(self, database: str) -> None:
        self.database = database
        self.server: int | None = None  # the pid whose tree is "server" in the next measurement

    def snapshot(self) -> dict[str, dict[int, float]] | None:
        """CPU seconds per process of each group (per process: a backend that exits or starts in between
        counts for what it used while both snapshots saw it, or from zero)."""
        if not os.path.isdir("/proc/self"):
            return None
        times = os.times()
        return {"server": {p: _proc_cpu(p) for p in _tree(self.server)} if self.server else {},
                "pg": {p: _proc_cpu(p) for p in _backends(self.database)},
                "client": {0: times.user + times.system}}

    @staticmethod
    def used(before: dict[int, float], after: dict[int, float]) -> float:
        return sum(t - before.get(p, 0.0) for p, t in after.items() if t >= before.get(p, 0.0))


METER: CpuMeter | None = None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection with one request in flight (Content-Length or chunked answers)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("the server closed the connection"))

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.waiter is not None and not self.waiter.done():
            answer = self._parse()
            if answer is not None:
                self.waiter.set_result(answer)

    def _parse(self) -> tuple[int, bytes] | None:
        buf = self.buffer
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            return None
        lines = bytes(buf[:end]).split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length: int | None = None
        chunked = False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
        start = end + 4
        if length is not None:
            if len(buf) < start + length:
                return None
            body = bytes(buf[start:start + length])
            del buf[:start + length]
            return status, body
        if not chunked:
            raise RuntimeError("an answer with neither Content-Length nor chunked encoding")
        parts: list[bytes] = []
        pos = start
        while True:
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                return None
            size = int(bytes(buf[pos:eol]).split(b";")[0], 16)
            if len(buf) < eol + 2 + size + 2:
                return None
            if size == 0:
                del buf[:eol + 4]  # no trailers here
                return status, b"".join(parts)
            parts.append(bytes(buf[eol + 2:eol + 2 + size]))
            pos = eol + 2 + size + 2

    async def exchange(self, request: bytes) -> tuple[int, bytes]:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return await self.waiter


class HttpClient:
    """Keep-alive connections to one server: a request takes an idle one or opens one."""

    def __init__(self, port: int, headers: dict[str, str]) -> None:
        self.port = port
        self._common = "".join(f"{k}: {v}\r\n" for k, v in {"host": f"127.0.0.1:{port}", **headers}.items())
        self._idle: list[_Connection] = []

    async def request(self, method: str, path: str, body: bytes = b"",
                      headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        head = f"{method} {path} HTTP/1.1\r\n{self._common}{extra}"
        if body:
            head += f"content-type: application/json\r\ncontent-length: {len(body)}\r\n"
        request = head.encode() + b"\r\n" + body
        while True:
            reused = False
            while self._idle:  # node closes keep-alive connections idle for 5 s
                conn = self._idle.pop()
                if not conn.closed:
                    reused = True
                    break
            if not reused:
                conn = await self._connect()
            try:
                answer = await conn.exchange(request)
            except (ConnectionError, RuntimeError):
                if conn.transport is not None:
                    conn.transport.close()
                if reused:  # closed by the server as the request went out: once more on a new one
                    continue
                raise
            if not conn.closed:
                self._idle.append(conn)
            return answer

    async def post_graphql(self, path: str, query: str, variables: dict[str, Any], headers: dict[str, str]) -> bytes:
        """The answer's bytes; an answer that is not `{"data": ...}` (errors) fails the run."""
        body = json.dumps({"query": query, "variables": variables}).encode()
        status, answer = await self.request("POST", path, body, headers)
        if status != 200 or not answer.startswith(b'{"data"'):
            raise AssertionError(f"{status}: {answer[:500]!r}")
        return answer

    async def _connect(self) -> _Connection:
        _, conn = await asyncio.get_running_loop().create_connection(_Connection, "127.0.0.1", self.port)
        return conn

    def close(self) -> None:
        for conn in self._idle:
            if conn.transport is not None:
                conn.transport.close()
        self._idle.clear()


async def measure(call: Callable[[], Awaitable[Any]], seconds: float, concurrency: int) -> Result:
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            await call()
            latencies.append(time.perf_counter() - started)

    before = METER.snapshot() if METER else None
    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - began
    after = METER.snapshot() if METER else None
    latencies.sort()
    result = {
        "rps": len(latencies) / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
    }
    if before and after:
        for key in before:
            result[f"{key}_us"] = CpuMeter.used(before[key], after[key]) / len(latencies) * 1e6
    return result


async def _wait_ready(client: HttpClient, path: str, proc: asyncio.subprocess.Process) -> None:
    for _ in range(600):
        if proc.returncode is not None:
            raise RuntimeError(f"the server on port {client.port} exited with {proc.returncode}")
        try:
            status, _ = await client.request("GET", path)
            if status < 500:
                return
        except OSError:
            pass
        await asyncio.sleep(0.1)
    raise RuntimeError(f"127.0.0.1:{client.port}{path} did not answer")


async def _start_nchat(args: argparse.Namespace, url: str, workers: int,
                       src: str | None) -> tuple[asyncio.subprocess.Process, int]:
    """`nchat-live api --workers N` (uvloop, httptools) as an operator runs it."""
    port = free_port()
    env = {**os.environ, "DATABASE_URL": url, "NCHAT_JWT_SECRET": JWT_SECRET, "NCHAT_MEDIA_ENABLED": "false",
           "NCHAT_DB_POOL_SIZE": str(args.concurrency), "NCHAT_DB_SESSIONS_PER_CLIENT": str(args.concurrency),
           "BUS_URL": args.redis if workers > 1 else "memory://",
           "NCHAT_LIVE_QUERY_MIN_INTERVAL_MS": str(args.live_throttle_ms)}
    if src:
        env["PYTHONPATH"] = src
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "nchat_live.cli", "api", "--host", "127.0.0.1", "--port", str(port), "--no-migrate",
        "--log-level", "warning", "--workers", str(workers), env=env, stdout=asyncio.subprocess.DEVNULL)
    return proc, port


def _pgl_installed() -> bool:
    return os.path.isdir(os.path.join(PGL_DIR, "node_modules", "postgraphile"))


async def _start_postgraphile(url: str) -> tuple[asyncio.subprocess.Process | None, int]:
    node = shutil.which("node")
    if node is None or not _pgl_installed():
        print("postgraphile: n/a (needs node and `npm ci` in bench/postgraphile)")
        return None, 0
    port = free_port()
    env = {**os.environ, "DATABASE_URL": url, "PORT": str(port), "PGL_ROLE": PGL_READER,
           "JWT_KEY": json.loads(JWT_SECRET)["key"]}
    proc = await asyncio.create_subprocess_exec(node, os.path.join(PGL_DIR, "server.js"), env=env, cwd=PGL_DIR,
                                                stdout=asyncio.subprocess.DEVNULL)
    return proc, port


async def _stop(proc: asyncio.subprocess.Process | None) -> None:
    if proc is not None and proc.returncode is None:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 15)


async def _py_spy(args: argparse.Namespace, pid: int, workers: int) -> asyncio.subprocess.Process | None:
    """`--py-spy PREFIX`: the server's stacks (all its processes) while it is measured, as collapsed
    stacks in PREFIX-wN.txt (py-spy's raw format: one stack a line, then its sample count)."""
    if not args.py_spy:
        return None
    return await asyncio.create_subprocess_exec(
        os.path.join(os.path.dirname(sys.executable), "py-spy"), "record", "--pid", str(pid), "--subprocesses",
        "--format", "raw", "--rate", "200", "--nonblocking", "-o", f"{args.py_spy}-w{workers}.txt",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)


class Case:
    """One row: a GraphQL document for nchat-live, its SQL, PostGraphile's spelling, and their inputs."""

    def __init__(self, label: str, query: str, variables: Callable[[], dict[str, Any]], sql: str,
                 params: Callable[[], list[Any]], pgl_query: str | None,
                 pgl_variables: Callable[[], dict[str, Any]]) -> None:
        self.label, self.query, self.variables = label, query, variables
        self.sql, self.params = sql, params
        self.pgl_query, self.pgl_variables = pgl_query, pgl_variables


async def run(args: argparse.Namespace) -> None:
    global METER
    name = f"nchat_bench_{secrets.token_hex(4)}"
    METER = CpuMeter(name)
    admin = await asyncpg.connect(args.pg)
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = args.pg.rsplit("/", 1)[0] + "/" + name
    pgl_proc: asyncio.subprocess.Process | None = None
    try:
        ids = await seed(url)
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

        cases = [
            Case("stream + broadcaster + 50 chat", STREAM_WITH_CHAT, lambda: {"id": stream},
                 STREAM_WITH_CHAT_SQL, lambda: [stream], PGL_STREAM_WITH_CHAT, lambda: {"id": stream}),
            Case("live streams of a channel", LIVE_STREAMS, lambda: {"channel": channel},
                 LIVE_STREAMS_SQL, lambda: [channel], PGL_LIVE_STREAMS, lambda: {"channel": channel}),
            Case("chat aggregate", CHAT_AGGREGATE, lambda: {"id": stream},
                 CHAT_AGGREGATE_SQL, lambda: [stream], PGL_CHAT_AGGREGATE, lambda: {"id": stream}),
            Case("mutation sendChatMessage", SEND_CHAT, chat, SEND_CHAT_SQL, chat_sql, PGL_SEND_CHAT, chat_pgl),
        ]
        if args.only:
            cases = [c for c in cases if args.only in c.label]
        pool = await asyncpg.create_pool(url, min_size=args.concurrency, max_size=args.concurrency)
        results: dict[str, dict[str, Result | None]] = {c.label: {} for c in cases}
        live = f"live push (1 sub, throttle {args.live_throttle_ms} ms)"
        results[live] = {}

        def as_caller(variables: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str], dict[str, str]]:
            """The variables without the caller, and the caller's headers for nchat-live and PostGraphile: the
            same bearer token, which each verifies."""
            caller = variables.pop(USER, user)
            bearer = {"authorization": f"Bearer {tokens.get(caller) or token}"}
            return variables, bearer, bearer

        for case in cases:
            results[case.label]["floor_shape"] = _shape(json.loads(await pool.fetchval(case.sql, *case.params())))

        def keep(label: str, key: str, result: Result) -> None:
            """The best of the rounds: the machine is shared, and the best round is the least disturbed."""
            old = results[label].get(key)
            if old is None or result["rps"] > old["rps"]:
                results[label][key] = result

        # Every server of a worker count runs at once (idle but for the one measured), and each round
        # measures every column of a case in turn, so the columns of a row share the machine's state.
        pgl_port = 0
        if not args.gql_only:
            pgl_proc, pgl_port = await _start_postgraphile(url)
        pgl = HttpClient(pgl_port, {})
        if pgl_proc is not None:
            await _wait_ready(pgl, "/graphql", pgl_proc)
        for workers in args.workers:
            servers: dict[str, tuple[asyncio.subprocess.Process, HttpClient]] = {}
            spy: asyncio.subprocess.Process | None = None
            try:
                for key, src in ((f"old{workers}", args.before_src), (f"gql{workers}", args.server_src)):
                    if key.startswith("old") and not src:
                        continue
                    proc, port = await _start_nchat(args, url, workers, src)
                    servers[key] = (proc, HttpClient(port, {}))
                for proc, client in servers.values():
                    await _wait_ready(client, "/healthz", proc)
                spy = await _py_spy(args, servers[f"gql{workers}"][0].pid, workers)
                for case in cases:
                    calls: dict[str, Callable[[], Awaitable[None]]] = {}
                    for key, (_, client) in servers.items():
                        first_vars, first_headers, _ = as_caller(case.variables())
                        first = json.loads(await client.post_graphql("/v1/graphql", case.query, first_vars,
                                                                     first_headers))
                        assert _shape(first["data"]) == results[case.label]["floor_shape"], first

                        async def gql_call(case: Case = case, client: HttpClient = client) -> None:
                            values, headers, _ = as_caller(case.variables())
                            await client.post_graphql("/v1/graphql", case.query, values, headers)

                        calls[key] = gql_call
                        await measure(gql_call, 0.5, args.concurrency)  # warm caches and the pool
                    if not args.gql_only:
                        calls["sql"] = _sql_call(pool, case)
                        calls["rls"] = _rls_call(pool, case, claims)
                        if pgl_proc is not None and case.pgl_query is not None:
                            async def pgl_call(case: Case = case) -> None:
                                values, _, headers = as_caller(case.pgl_variables())
                                assert case.pgl_query is not None
                                await pgl.post_graphql("/graphql", case.pgl_query, values, headers)

                            await measure(pgl_call, 0.5, args.concurrency)
                            calls["pgl"] = pgl_call
                    for _ in range(args.rounds):
                        for key, call in calls.items():
                            METER.server = servers[key][0].pid if key in servers else \
                                pgl_proc.pid if key == "pgl" and pgl_proc is not None else None
                            keep(case.label, key, await measure(call, args.seconds, args.concurrency))
                for _ in range(args.rounds):
                    for key, (proc, client) in servers.items():
                        METER.server = proc.pid
                        keep(live, key, await _live_push(args, client.port, token, pool, ids["live_stream"], chatters))
                    METER.server = None
                    if not args.gql_only:
                        sql_push, rls_push = await _live_sql(args, pool, claims, ids["live_stream"], chatters)
                        keep(live, "sql", sql_push)
                        keep(live, "rls", rls_push)
            finally:
                if spy is not None:
                    spy.send_signal(signal.SIGINT)
                    await asyncio.wait_for(spy.wait(), 30)
                for proc, client in servers.values():
                    client.close()
                    await _stop(proc)
        pgl.close()
        await pool.close()
        _report(args, results)
    finally:
        await _stop(pgl_proc)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def _sql_call(pool: asyncpg.Pool, case: Case) -> Callable[[], Awaitable[None]]:
    async def call() -> None:
        await pool.fetchval(case.sql, *case.params())
    return call


def _rls_call(pool: asyncpg.Pool, case: Case, claims: str) -> Callable[[], Awaitable[None]]:
    async def call() -> None:
        values = case.params()
        caller = Claims.user(values[1]).as_setting() if len(values) > 1 else claims
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute(_SET_ROLE, caller)
            await conn.fetchval(case.sql, *values)
    return call


def _report(args: argparse.Namespace, results: dict[str, dict[str, Any]]) -> None:
    print(f"\nconcurrency {args.concurrency}, {args.seconds:g} s per measurement, best of {args.rounds} rounds; "
          "requests/s (p50 ms)")
    print("gql Wn: nchat-live `api --workers n` over HTTP as a user (RLS), this file's keep-alive client; "
          "old Wn: the same for --before-src; "
          "sql: the hand-written statement via asyncpg in this process as the superuser, its JSON text "
          "fetched, not decoded (no RLS, no HTTP; a superuser's chat insert skips the chat rules); "
          "rls: the same statement in a transaction as nchat_user with the caller's claims (no HTTP); "
          "pgl: PostGraphile v4 over HTTP (one node process, same client, same database and policies); "
          "x/sql, x/rls, x/pgl: that server's rps / that column's rps")
    servers = [f"{kind}{w}" for w in args.workers for kind in ("old", "gql") if kind == "gql" or args.before_src]
    names = {key: ("old W" if key.startswith("old") else "gql W") + key[3:] for key in servers}
    print(f"{'case':32} " + " ".join(f"{c:>15}" for c in [*(names[k] for k in servers), "sql", "rls", "pgl"])
          + "  " + " ".join(f"{names[k] + ' x/' + b:>12}" for k in servers for b in ("sql", "rls", "pgl")))
    for label, row in results.items():
        row.pop("floor_shape", None)
        cells = [row.get(k) for k in servers] + [row.get("sql"), row.get("rls"), row.get("pgl")]
        text = " ".join(f"{c['rps']:8.0f} ({c['p50_ms']:4.1f})" if c else f"{'n/a':>15}" for c in cells)
        ratios = []
        for key in servers:
            g = row.get(key)
            for base in ("sql", "rls", "pgl"):
                b = row.get(base)
                ratios.append(f"{g['rps'] / b['rps']:12.2f}" if g and b else f"{'n/a':>12}")
        print(f"{label:32} {text}  {' '.join(ratios)}", flush=True)
    keys = [*servers, "sql", "rls", "pgl"]
    if any("pg_us" in (row.get(k) or {}) for row in results.values() for k in keys):
        print("\nCPU per request, microseconds: server (its process tree; PostGraphile's for pgl) / Postgres "
              "(the bench database's backends) / this process (the client; for sql and rls also asyncpg)")
        print(f"{'case':32} " + " ".join(f"{(names.get(k) or k):>20}" for k in keys))
        for label, row in results.items():
            cells = []
            for key in keys:
                c = row.get(key)
                cells.append(f"{c['server_us']:6.0f}/{c['pg_us']:5.0f}/{c['client_us']:5.0f}" if c and "pg_us" in c
                             else f"{'n/a':>20}")
            print(f"{label:32} {' '.join(f'{c:>20}' for c in cells)}", flush=True)


async def _live_sql(args: argparse.Namespace, pool: asyncpg.Pool, claims: str, stream: str,
                    chatters: list[str]) -> tuple[Result, Result]:
    n = itertools.count()
    users = itertools.cycle(chatters)

    async def sql_push() -> None:
        await pool.execute(_INSERT_CHAT, stream, next(users), f"sql {next(n)}")
        await pool.fetchval(LIVE_CHAT_SQL, stream)

    async def rls_push() -> None:
        await pool.execute(_INSERT_CHAT, stream, next(users), f"rls {next(n)}")
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute(_SET_ROLE, claims)
            await conn.fetchval(LIVE_CHAT_SQL, stream)

    return await measure(sql_push, args.seconds, 1), await measure(rls_push, args.seconds, 1)


async def _live_push(args: argparse.Namespace, port: int, token: str, pool: asyncpg.Pool,
                     stream: str, chatters: list[str]) -> Result:
    """One subscriber; each round inserts a chat message and waits for the push that carries it."""
    async with websockets.connect(f"ws://127.0.0.1:{port}/v1/graphql",
                                  subprotocols=[Subprotocol("graphql-transport-ws")]) as ws:
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
                if message["type"] == "ping":  # the server's keep-alive on a long run
                    await ws.send(json.dumps({"type": "pong"}))
                    continue
                assert message["type"] == "next", message
                rows = message["payload"]["data"]["nchat_stream_chat_messages"]
                if rows and rows[0]["content"] == content:
                    return

        await measure(push, 0.5, 1)
        return await measure(push, args.seconds, 1)


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
    parser.add_argument("--workers", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2],
                        help="nchat-live worker counts to measure, comma-separated")
    parser.add_argument("--server-src", help="PYTHONPATH for the nchat-live server (another checkout's src)")
    parser.add_argument("--before-src", help="another checkout's src, run beside the server and measured in the "
                        "same rounds (columns `old Wn`): before/after in one command")
    parser.add_argument("--rounds", type=int, default=2, help="each column measured this many times in turn; "
                        "the best round is reported")
    parser.add_argument("--only", help="the cases whose label contains this (the live push always runs)")
    parser.add_argument("--live-throttle-ms", type=int, default=0,
                        help="the server's NCHAT_LIVE_QUERY_MIN_INTERVAL_MS: 0 measures the push itself; with "
                             "the default 100 one query re-runs at most 10 times a second, which caps this row")
    parser.add_argument("--gql-only", action="store_true", help="measure nchat-live only (profiling)")
    parser.add_argument("--py-spy", metavar="PREFIX", help="record the server with py-spy (pip install py-spy) "
                        "while it is measured, into PREFIX-wN.txt")
    parser.add_argument("--pg", default=os.environ.get("NCHAT_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--redis", default=os.environ.get("NCHAT_TEST_REDIS", "redis://127.0.0.1:6379/0"),
                        help="the bus of more than one worker")
    # The client, the SQL baselines and PostGraphile's driver share this loop: uvloop keeps it light.
    uvloop.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
