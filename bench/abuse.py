"""Abuse bench (not a test): each attack of issue 13, bounded, on loopback, against `nchat-live serve`.

A well-behaved client measures GET /healthz and a small GraphQL query throughout; for each attack
the bench prints their p99 next to the quiet baseline measured in the same run, and the server's
memory growth (RSS). Attacks are plain async functions in ATTACKS: add one by writing
`async def attack_x(target: Target, stop: asyncio.Event) -> str` (it runs until `stop` is set and
returns a one-line summary of what the server answered) and appending it to ATTACKS.

    .venv/bin/python bench/abuse.py --pg postgresql://postgres@127.0.0.1:5432/postgres --seconds 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import websockets


@dataclass
class Target:
    base: str  # http://127.0.0.1:port
    pid: int

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
                counts[f"{answer.status_code}:{ext.get('limit') or ext.get('code') or 'data'}"] += 1
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


ATTACKS: list[Attack] = [attack_aliases, attack_wide, attack_nesting, attack_batch, attack_ws_deep, attack_ws_live,
                         attack_ws_connections, attack_rest_body]


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


async def seed(url: str) -> None:
    """A channel with 10 streams (the nesting attack's fan-out) and a few users."""
    conn = await asyncpg.connect(url)
    try:
        users = [await conn.fetchval("INSERT INTO nchat_users (username) VALUES ($1) RETURNING id",
                                     f"bench-{secrets.token_hex(3)}") for _ in range(3)]
        channel = await conn.fetchval("INSERT INTO nchat_channels (name, slug, owner_id) VALUES ('Bench', $1, $2) "
                                      "RETURNING id", f"bench-{secrets.token_hex(3)}", users[0])
        for i in range(10):
            await conn.execute("INSERT INTO nchat_streams (channel_id, broadcaster_id, title) VALUES ($1, $2, $3)",
                               channel, users[0], f"bench {i}")
    finally:
        await conn.close()


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
    port = free_port()
    env = {**os.environ, "DATABASE_URL": url, "NCHAT_MEDIA_ENABLED": "false", "NCHAT_RTMP_ENABLED": "false",
           "NCHAT_DATA_DIR": f"/tmp/{name}"}
    exe = Path(sys.executable).with_name("nchat-live")
    server = await asyncio.create_subprocess_exec(str(exe), "serve", "--host", "127.0.0.1", "--port", str(port),
                                                  env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        target = Target(f"http://127.0.0.1:{port}", server.pid)
        async with httpx.AsyncClient(base_url=target.base) as client:
            for _ in range(300):
                try:
                    if (await client.get("/healthz")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
        await seed(url)
        attacks = [a for a in ATTACKS if not args.only or a.__name__.removeprefix("attack_") in args.only.split(",")]
        rss0 = rss_mb(server.pid)
        quiet_h, quiet_q, _ = await phase(target, args.seconds, None)
        print(f"{'phase':<22} {'healthz p99 ms':>15} {'query p99 ms':>13} {'RSS +MB':>8}  server answers")
        print(f"{'quiet':<22} {quiet_h:>15.1f} {quiet_q:>13.1f} {0.0:>8.1f}")
        for attack in attacks:
            h, q, summary = await phase(target, args.seconds, attack)
            grown = rss_mb(server.pid) - rss0
            flag = " " if h <= 2 * quiet_h and q <= 2 * quiet_q else "!"
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
