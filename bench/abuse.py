"""Abuse bench (not a test): each attack of issue 13, bounded, on loopback, against `nchat-live serve`
with media and RTMP on (GraphQL, websockets, REST bodies, RTMP ingest, creation and question floods).

A well-behaved client measures GET /healthz and a small GraphQL query throughout; for each attack
the bench prints their p99 next to the quiet baseline measured in the same run, and the server's
memory growth (RSS). Attacks are plain async functions in ATTACKS: add one by writing
`async def attack_x(target: Target, stop: asyncio.Event) -> str` (it runs until `stop` is set and
returns a one-line summary of what the server answered) and appending it to ATTACKS.

    .venv/bin/python bench/abuse.py --pg postgresql://postgres@127.0.0.1:5432/postgres --seconds 3
    .venv/bin/python bench/abuse.py --seconds 2 --only rtmp_big_chunks,channel_flood
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import socket
import struct
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
import websockets

from nchat_live.auth import mint_token
from nchat_live.media.ingest.rtmp import amf0
from nchat_live.media.ingest.rtmp.chunks import COMMAND_AMF0, SET_CHUNK_SIZE, USER_CONTROL, Message, encode_message

JWT_SECRET = '{"type": "HS256", "key": "nchat-live-abuse-bench-secret-0123456789abcdef"}'


@dataclass
class Target:
    base: str  # http://127.0.0.1:port
    pid: int
    rtmp_port: int = 0
    # A signed-in user (a row in nchat_users and her token) and a stream of hers (seed()).
    user_id: str = ""
    token: str = ""
    stream_id: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def ws(self) -> str:
        return self.base.replace("http://", "ws://") + "/v1/graphql"


Attack = Callable[[Target, asyncio.Event], Awaitable[str]]
NORMAL_QUERY = {"query": "{ nchat_streams(limit: 5) { id title status } }"}


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def p99(samples: list[float]) -> float:
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000


async def measure(target: Target, stop: asyncio.Event) -> tuple[list[float], list[float]]:
    """The well-behaved client: /healthz and a normal query, one after the other, until stopped."""
    health: list[float] = []
    query: list[float] = []
    async with httpx.AsyncClient(base_url=target.base, timeout=60) as client:
        while not stop.is_set():
            t = time.perf_counter()
            await client.get("/healthz")
            health.append(time.perf_counter() - t)
            t = time.perf_counter()
            await client.post("/v1/graphql", json=NORMAL_QUERY)
            query.append(time.perf_counter() - t)
            await asyncio.sleep(0.02)
    return health, query


def _codes(answers: list[object]) -> str:
    counts: Counter[str] = Counter()
    for answer in answers:
        if isinstance(answer, BaseException):
            counts[type(answer).__name__] += 1
        elif isinstance(answer, httpx.Response):
            try:
                body = answer.json()
                first = body if isinstance(body, dict) else body[0]
                err = (first.get("errors") or [{}])[0]
                ext = err.get("extensions", {})
                limit = ext.get("limit") if isinstance(ext.get("limit"), str) else None
                counts[f"{answer.status_code}:{limit or ext.get('code') or 'data'}"] += 1
            except (ValueError, IndexError, AttributeError):
                counts[str(answer.status_code)] += 1
    return ", ".join(f"{k} x{v}" for k, v in counts.most_common())


async def _http_flood(target: Target, stop: asyncio.Event, body: object, parallel: int) -> str:
    answers: list[object] = []
    async with httpx.AsyncClient(base_url=target.base, timeout=60) as client:
        async def one() -> None:
            while not stop.is_set():
                try:
                    answers.append(await client.post("/v1/graphql", json=body))
                except httpx.HTTPError as exc:
                    answers.append(exc)
        await asyncio.gather(*(one() for _ in range(parallel)))
    return _codes(answers)


async def attack_aliases(target: Target, stop: asyncio.Event) -> str:
    """6 parallel ~13 KB documents of 500 aliased root fields (quadratic validation)."""
    query = "{ " + " ".join(f"a{i}: nchat_users(limit: 1) {{ id }}" for i in range(500)) + " }"
    return await _http_flood(target, stop, {"query": query}, 6)


async def attack_wide(target: Target, stop: asyncio.Event) -> str:
    """One 287 KB document of 9,000 aliased root fields (a session per root field starved the pool)."""
    query = "{ " + " ".join(f"a{i}: nchat_users(limit: 1) {{ id }}" for i in range(9000)) + " }"
    return await _http_flood(target, stop, {"query": query}, 1)


async def attack_nesting(target: Target, stop: asyncio.Event) -> str:
    """4 parallel 13-level `channel { streams { ... } }` documents (inside the depth limit)."""
    query = "{ nchat_streams { " + "channel { streams { " * 6 + "id" + " } }" * 6 + " } }"
    return await _http_flood(target, stop, {"query": query}, 4)


async def attack_batch(target: Target, stop: asyncio.Event) -> str:
    """An HTTP batch of 2,000 operations."""
    return await _http_flood(target, stop, [NORMAL_QUERY] * 2000, 1)


async def attack_ws_deep(target: Target, stop: asyncio.Event) -> str:
    """Over a websocket: a depth-40 anonymous query and introspection, repeatedly."""
    deep = "{ nchat_streams { " + "channel { streams { " * 20 + "id" + " } }" * 20 + " } }"
    answers: Counter[str] = Counter()
    async with websockets.connect(target.ws, subprotocols=["graphql-transport-ws"]) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
        await ws.recv()
        n = 0
        while not stop.is_set():
            for query in (deep, "{ __schema { types { name } } }"):
                n += 1
                await ws.send(json.dumps({"id": str(n), "type": "subscribe", "payload": {"query": query}}))
                while True:
                    message = json.loads(await asyncio.wait_for(ws.recv(), 60))
                    if message.get("id") == str(n) and message["type"] in ("error", "next"):
                        payload = message["payload"]
                        errs = payload if isinstance(payload, list) else payload.get("errors") or []
                        answers[(errs[0]["extensions"].get("limit") or errs[0]["extensions"]["code"])
                                if errs else "data"] += 1
                        break
    return ", ".join(f"{k} x{v}" for k, v in answers.most_common())


async def attack_ws_live(target: Target, stop: asyncio.Event) -> str:
    """200 distinct live queries on one anonymous socket, held while idle."""
    accepted = refused = 0
    async with websockets.connect(target.ws, subprotocols=["graphql-transport-ws"]) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
        await ws.recv()
        for i in range(200):
            query = f"subscription {{ nchat_streams(limit: {i + 1}) {{ id }} }}"
            await ws.send(json.dumps({"id": f"l{i}", "type": "subscribe", "payload": {"query": query}}))
        deadline = time.monotonic() + 10
        while accepted + refused < 200 and time.monotonic() < deadline:
            try:
                message = json.loads(await asyncio.wait_for(ws.recv(), 1))
            except TimeoutError:
                continue
            if message["type"] == "error":
                refused += 1
            elif message["type"] == "next" and message["id"].startswith("l"):
                accepted += 1 if message["payload"].get("data") is not None else 0
        await stop.wait()
    return f"live queries accepted {accepted}, refused {refused}"


async def attack_ws_connections(target: Target, stop: asyncio.Event) -> str:
    """600 sockets from one address."""
    opened, refused = [], 0
    for _ in range(600):
        try:
            ws = await websockets.connect(target.ws, subprotocols=["graphql-transport-ws"])
            await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
            json.loads(await asyncio.wait_for(ws.recv(), 5))
            opened.append(ws)
        except (websockets.ConnectionClosed, OSError, TimeoutError):
            refused += 1
    await stop.wait()
    for ws in opened:
        await ws.close()
    return f"sockets held {len(opened)}, refused {refused}"


async def attack_rest_body(target: Target, stop: asyncio.Event) -> str:
    """Anonymous 200 MB chunked POSTs to a REST route (the server must answer 413 at its limit)."""
    answers: list[object] = []
    chunk = b"x" * (1024 * 1024)

    async def body() -> AsyncIterator[bytes]:
        for _ in range(200):
            if stop.is_set():
                return
            yield chunk

    async with httpx.AsyncClient(base_url=target.base, timeout=60) as client:
        while not stop.is_set():
            try:
                answers.append(await client.post(f"/api/streams/{uuid.uuid4()}/chat", content=body()))
            except httpx.HTTPError as exc:
                answers.append(exc)
    return _codes(answers)


# -- a raw RTMP client ------------------------------------------------------------------------------


async def rtmp_open(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    c1 = bytes(8) + os.urandom(1528)
    writer.write(b"\x03" + c1)
    await reader.readexactly(1 + 1536)
    s2 = await reader.readexactly(1536)
    assert s2 == c1
    writer.write(s2)
    await writer.drain()
    return reader, writer


def rtmp_message(type_id: int, payload: bytes, csid: int = 3, stream_id: int = 0) -> bytes:
    return encode_message(csid, Message(type_id, stream_id, 0, payload), 128)


def rtmp_command(name: str, *args: object, stream_id: int = 0) -> bytes:
    return rtmp_message(COMMAND_AMF0, amf0.encode(name, 1.0, *args), stream_id=stream_id)


def open_chunk(csid: int, length: int, body: bytes) -> bytes:
    return bytes([csid]) + bytes(3) + length.to_bytes(3, "big") + b"\x09" + struct.pack("<I", 1) + body


async def _until_dropped(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, stop: asyncio.Event,
                         step: Callable[[], bytes] | None = None) -> float:
    """Keep the connection (sending `step()` every 0.3 s) until the server drops it; seconds held."""
    started = time.monotonic()
    try:
        while not stop.is_set():
            if step is not None:
                writer.write(step())
                await writer.drain()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.3):
                    if not await reader.read(65536):
                        break
    except ConnectionError:
        pass
    finally:
        writer.transport.abort()
    return time.monotonic() - started


async def _many(stop: asyncio.Event, parallel: int, one: Callable[[], Awaitable[str]]) -> str:
    outcomes: Counter[str] = Counter()

    async def worker() -> None:
        while not stop.is_set():
            try:
                outcomes[await one()] += 1
            except (ConnectionError, asyncio.IncompleteReadError, AssertionError):
                outcomes["dropped"] += 1
                await asyncio.sleep(0.05)

    await asyncio.gather(*(worker() for _ in range(parallel)))
    return ", ".join(f"{k}: {v}" for k, v in outcomes.most_common())


async def attack_rtmp_big_chunks(target: Target, stop: asyncio.Event) -> str:
    """Unauthenticated: 8 MiB chunk size, then 1 MiB chunks opening 40 partial 8 MiB messages."""
    async def one() -> str:
        reader, writer = await rtmp_open(target.rtmp_port)
        writer.write(rtmp_message(SET_CHUNK_SIZE, struct.pack(">I", 8 * 1024 * 1024), csid=2))
        if await _until_dropped(reader, writer, stop) < 2:
            reader, writer = await rtmp_open(target.rtmp_port)
            writer.write(rtmp_message(SET_CHUNK_SIZE, struct.pack(">I", 1024 * 1024), csid=2))
            body = bytes(1024 * 1024)
            try:
                for csid in range(3, 43):
                    writer.write(open_chunk(csid, 8 * 1024 * 1024, body))
                    await writer.drain()
            except ConnectionError:
                return "dropped at the buffer cap"
            held = await _until_dropped(reader, writer, stop)
            return f"held {held:.0f} s"
        return "8 MiB chunk size kept"

    return await _many(stop, 4, one)


async def attack_rtmp_slowloris(target: Target, stop: asyncio.Event) -> str:
    """Connections that connect but never publish, sending a 4-byte control message every 0.3 s."""
    async def one() -> str:
        reader, writer = await rtmp_open(target.rtmp_port)
        writer.write(rtmp_command("connect", {"app": "live", "tcUrl": "rtmp://127.0.0.1/live"}))
        held = await _until_dropped(reader, writer, stop,
                                    lambda: rtmp_message(USER_CONTROL, struct.pack(">HI", 6, 1), csid=2))
        return f"held {round(held)} s" if not stop.is_set() else "held to the end"

    return await _many(stop, 50, one)


async def attack_rtmp_key_guess(target: Target, stop: asyncio.Event) -> str:
    """Publishes with guessed stream keys as fast as the server answers."""
    async def one() -> str:
        reader, writer = await rtmp_open(target.rtmp_port)
        writer.write(rtmp_command("connect", {"app": "live", "tcUrl": "rtmp://127.0.0.1/live"}))
        writer.write(rtmp_command("createStream", None))
        writer.write(rtmp_command("publish", None, secrets.token_urlsafe(32), "live", stream_id=1))
        await writer.drain()
        held = await _until_dropped(reader, writer, stop)
        return "refused" if held < 5 else "held"

    return await _many(stop, 8, one)


# -- creating paths (a signed-in user) ------------------------------------------------------------


async def _signed_in_flood(target: Target, stop: asyncio.Event, make: Callable[[int], dict[str, object]],
                           parallel: int = 2) -> str:
    answers: list[object] = []
    headers = {"Authorization": f"Bearer {target.token}"}
    async with httpx.AsyncClient(base_url=target.base, timeout=60, headers=headers) as client:
        async def one(worker: int) -> None:
            n = 0
            while not stop.is_set():
                n += 1
                try:
                    answers.append(await client.post("/v1/graphql", json=make(worker * 1_000_000 + n)))
                except httpx.HTTPError as exc:
                    answers.append(exc)
        await asyncio.gather(*(one(w) for w in range(parallel)))
    return _codes(answers)


async def attack_channel_flood(target: Target, stop: asyncio.Event) -> str:
    """One signed-in user creating channels in a loop (100 in about a second before issue 13)."""
    query = "mutation ($o: nchat_channels_insert_input!) { insert_nchat_channels_one(object: $o) { id } }"
    tag = secrets.token_hex(3)
    return await _signed_in_flood(target, stop, lambda n: {"query": query, "variables": {
        "o": {"name": f"flood {n}", "slug": f"flood-{tag}-{n}", "owner_id": target.user_id}}})


async def attack_stream_flood(target: Target, stop: asyncio.Event) -> str:
    """The same user creating streams on her channel in a loop (createStream)."""
    query = "mutation ($i: CreateStreamInput!) { createStream(input: $i) { id } }"
    channel = target.extra["channel_id"]
    return await _signed_in_flood(target, stop, lambda n: {"query": query, "variables": {
        "i": {"channelId": channel, "title": f"flood {n}"}}})


async def attack_question_flood(target: Target, stop: asyncio.Event) -> str:
    """The same user asking questions on a live stream in a loop (no rate limit before issue 13)."""
    query = "mutation ($s: ID!, $c: String!) { askQuestion(streamId: $s, content: $c) { id } }"
    # Live again: the media worker ends a "live" stream that has no publisher after its grace period.
    conn = await asyncpg.connect(target.extra["db_url"])
    try:
        await conn.execute("UPDATE nchat_streams SET status = 'live', started_at = now(), ended_at = NULL "
                           "WHERE id = $1", target.stream_id)
    finally:
        await conn.close()
    return await _signed_in_flood(target, stop, lambda n: {"query": query, "variables": {
        "s": target.stream_id, "c": f"question {n}?"}})


ATTACKS: list[Attack] = [attack_aliases, attack_wide, attack_nesting, attack_batch, attack_ws_deep, attack_ws_live,
                         attack_ws_connections, attack_rest_body, attack_rtmp_big_chunks, attack_rtmp_slowloris,
                         attack_rtmp_key_guess, attack_channel_flood, attack_stream_flood, attack_question_flood]


async def phase(target: Target, seconds: float, attack: Attack | None) -> tuple[float, float, str]:
    stop = asyncio.Event()
    attacker = asyncio.create_task(attack(target, stop)) if attack else None
    await asyncio.sleep(0.3 if attack else 0)
    meter = asyncio.create_task(measure(target, stop))
    await asyncio.sleep(seconds)
    stop.set()
    health, query = await meter
    summary = ""
    if attacker is not None:
        try:
            summary = await asyncio.wait_for(attacker, 90)
        except Exception as exc:  # an attack that fails says so in the table
            summary = f"attack failed: {type(exc).__name__} {exc}"
    return p99(health), p99(query), summary


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def seed(url: str, target: Target) -> None:
    """A channel with 10 streams (the nesting attack's fan-out), a few users; the first signs in
    (her token minted as `nchat-live token` does) and her first stream is live (the question flood)."""
    conn = await asyncpg.connect(url)
    try:
        users = [await conn.fetchval("INSERT INTO nchat_users (username) VALUES ($1) RETURNING id",
                                     f"bench-{secrets.token_hex(3)}") for _ in range(3)]
        channel = await conn.fetchval("INSERT INTO nchat_channels (name, slug, owner_id) VALUES ('Bench', $1, $2) "
                                      "RETURNING id", f"bench-{secrets.token_hex(3)}", users[0])
        streams = [await conn.fetchval("INSERT INTO nchat_streams (channel_id, broadcaster_id, title) "
                                       "VALUES ($1, $2, $3) RETURNING id", channel, users[0], f"bench {i}")
                   for i in range(10)]
        await conn.execute("INSERT INTO nchat_channel_members (channel_id, user_id, role) VALUES ($1, $2, 'owner')",
                           channel, users[0])
        # Server-owned state: written by the service role, as the media manager does.
        await conn.execute("UPDATE nchat_streams SET status = 'live', started_at = now(), enable_qa = true "
                           "WHERE id = $1", streams[0])
    finally:
        await conn.close()
    target.user_id = str(users[0])
    target.token = mint_token(JWT_SECRET, target.user_id, "user", ttl_seconds=3600)
    target.stream_id = str(streams[0])
    target.extra["channel_id"] = str(channel)
    target.extra["db_url"] = url


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres", help="admin URL")
    parser.add_argument("--seconds", type=float, default=3.0, help="measuring time per phase")
    parser.add_argument("--only", default="", help="comma-separated attack names (default: all)")
    args = parser.parse_args()

    name = f"nchat_abuse_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(args.pg)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    url = args.pg.rsplit("/", 1)[0] + "/" + name
    port, rtmp_port = free_port(), free_port()
    env = {**os.environ, "DATABASE_URL": url, "NCHAT_RTMP_PORT": str(rtmp_port), "NCHAT_JWT_SECRET": JWT_SECRET,
           "NCHAT_DATA_DIR": f"/tmp/{name}", "NCHAT_MEDIA_DIR": f"/tmp/{name}/media",
           "STREAM_RECORDING_PATH": f"/tmp/{name}/recordings"}
    exe = Path(sys.executable).with_name("nchat-live")
    server = await asyncio.create_subprocess_exec(str(exe), "serve", "--host", "127.0.0.1", "--port", str(port),
                                                  env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        target = Target(f"http://127.0.0.1:{port}", server.pid, rtmp_port)
        async with httpx.AsyncClient(base_url=target.base) as client:
            for _ in range(300):
                try:
                    if (await client.get("/healthz")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
        await seed(url, target)
        attacks = [a for a in ATTACKS if not args.only or a.__name__.removeprefix("attack_") in args.only.split(",")]
        rss0 = rss_mb(server.pid)
        quiet_h, quiet_q, _ = await phase(target, args.seconds, None)
        print(f"{'phase':<22} {'healthz p99 ms':>15} {'query p99 ms':>13} {'RSS +MB':>8}  server answers")
        print(f"{'quiet':<22} {quiet_h:>15.1f} {quiet_q:>13.1f} {0.0:>8.1f}")
        # RSS +MB: growth during that attack's phase (the goal is under 50 MB); "!" marks a miss.
        for attack in attacks:
            before = rss_mb(server.pid)
            h, q, summary = await phase(target, args.seconds, attack)
            grown = rss_mb(server.pid) - before
            flag = " " if h <= 2 * quiet_h and q <= 2 * quiet_q and grown < 50 else "!"
            print(f"{attack.__name__.removeprefix('attack_'):<22} {h:>15.1f} {q:>13.1f} {grown:>8.1f} {flag} {summary}")
        print("quiet again: healthz/query p99 ", end="")
        h, q, _ = await phase(target, args.seconds, None)
        print(f"{h:.1f} / {q:.1f} ms; RSS {rss_mb(server.pid):.0f} MB (+{rss_mb(server.pid) - rss0:.1f})")
    finally:
        server.terminate()
        try:
            await asyncio.wait_for(server.wait(), 20)
        except TimeoutError:
            server.kill()
        admin = await asyncpg.connect(args.pg)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
