"""Fan-out: one chat message delivered to N websocket subscribers, nchat-live vs python-socketio.

Each server runs in its own process on loopback; the N clients and the publisher share this
process (one clock for latency). nchat-live: clients subscribe to `chatEvents` over
graphql-transport-ws as anonymous viewers of a public stream, and the message is published on
the Redis bus, as another API process would. python-socketio: clients join the default
namespace, and the message is sent by a client whose event the server broadcasts to everyone.

    .venv/bin/python bench/fanout.py            # N = 100, 1000
    .venv/bin/python bench/fanout.py -n 100 1000 5000 --messages 20
    .venv/bin/python bench/fanout.py --no-deflate   # nchat clients without permessage-deflate

The websockets client offers permessage-deflate and uvicorn accepts it, so by default every nchat
frame is compressed once per subscriber; python-socketio's client does not offer it.

Needs PostgreSQL (NCHAT_TEST_PG, a scratch database is created and dropped) and Redis
(NCHAT_TEST_REDIS).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import secrets
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import websockets

PG = os.environ.get("NCHAT_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS = os.environ.get("NCHAT_TEST_REDIS", "redis://127.0.0.1:6379/0")
CONTENT = "benchmark message " + "x" * 100


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- servers (run in child processes) ------------------------------------------------------------

def serve_nchat(port: int, database_url: str) -> None:
    import uvicorn

    from nchat_live.app import create_app
    from nchat_live.config import Settings

    settings = Settings(DATABASE_URL=database_url, BUS_URL=REDIS, NCHAT_MEDIA_ENABLED=False)
    uvicorn.run(create_app(settings), host="127.0.0.1", port=port, log_level="warning",
                ws_ping_interval=None, backlog=8192)


def serve_socketio(port: int) -> None:
    import socketio
    import uvicorn

    sio = socketio.AsyncServer(async_mode="asgi", cors_allowed_origins="*")

    @sio.on("send")  # type: ignore[misc]
    async def send(_sid: str, data: Any) -> None:
        await sio.emit("chat", data)

    uvicorn.run(socketio.ASGIApp(sio), host="127.0.0.1", port=port, log_level="warning",
                ws_ping_interval=None, backlog=8192)


def spawn(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, __file__, *args])


async def wait_port(port: int) -> None:
    for _ in range(300):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.1)
    raise RuntimeError(f"server on port {port} did not start")


# -- measurement ---------------------------------------------------------------------------------

class Tally:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.last_at = 0.0
        self.count = 0
        self.done = asyncio.Event()
        self.expected = 0

    def got(self, sent_at: float) -> None:
        now = time.time()
        self.latencies.append(now - sent_at)
        self.last_at = now
        self.count += 1
        if self.count >= self.expected:
            self.done.set()


async def measure(n: int, messages: int, publish: Callable[[float], Awaitable[None]], tally: Tally
                  ) -> dict[str, float]:
    busy = 0.0
    for _ in range(messages):
        tally.done.clear()
        tally.expected = tally.count + n
        sent_at = time.time()
        await publish(sent_at)
        try:
            await asyncio.wait_for(tally.done.wait(), 30)
        except TimeoutError:
            print(f"  warning: {tally.expected - tally.count} deliveries missing after 30 s", file=sys.stderr)
        busy += tally.last_at - sent_at
        await asyncio.sleep(0.05)
    lat = sorted(tally.latencies)
    return {
        "p50_ms": 1000 * statistics.median(lat),
        "p99_ms": 1000 * lat[min(len(lat) - 1, int(len(lat) * 0.99))],
        "msgs_per_s": tally.count / busy if busy > 0 else float("nan"),
        "delivered": tally.count,
    }


async def bench_nchat(n: int, messages: int, port: int, stream_id: str, channel_id: str, deflate: bool = True
                      ) -> dict[str, float]:
    from nchat_live.subscriptions.bus import EventBus

    tally = Tally()
    query = "subscription($s: ID!) { chatEvents(streamId: $s) { id content createdAt } }"

    async def client() -> websockets.ClientConnection:
        ws = await websockets.connect(f"ws://127.0.0.1:{port}/v1/graphql", subprotocols=["graphql-transport-ws"],
                                      max_queue=None, ping_interval=None,
                                      compression="deflate" if deflate else None)
        await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        await ws.send(json.dumps({"type": "subscribe", "id": "1",
                                  "payload": {"query": query, "variables": {"s": stream_id}}}))
        return ws

    async def reader(ws: websockets.ClientConnection) -> None:
        async for raw in ws:
            msg = json.loads(raw)
            if msg.get("type") == "next":
                tally.got(float(msg["payload"]["data"]["chatEvents"]["createdAt"]))

    clients = []
    for i in range(0, n, 200):
        clients += await asyncio.gather(*(client() for _ in range(min(200, n - i))))
    readers = [asyncio.create_task(reader(ws)) for ws in clients]
    bus = EventBus(REDIS)
    await bus.start()
    await asyncio.sleep(1.0)  # subscriptions registered server-side

    async def publish(sent_at: float) -> None:
        await bus.publish("chat.message", {"stream_id": stream_id, "channel_id": channel_id,
                                           "id": secrets.token_hex(4), "content": CONTENT,
                                           "created_at": repr(sent_at), "user_id": None, "is_pinned": False})

    try:
        return await measure(n, messages, publish, tally)
    finally:
        await bus.stop()
        for task in readers:
            task.cancel()
        await asyncio.gather(*(ws.close() for ws in clients), return_exceptions=True)


async def bench_socketio(n: int, messages: int, port: int) -> dict[str, float]:
    import socketio

    tally = Tally()

    async def client() -> Any:
        sio = socketio.AsyncClient(reconnection=False)
        sio.on("chat", lambda data: tally.got(float(data["created_at"])))
        await sio.connect(f"http://127.0.0.1:{port}", transports=["websocket"])
        return sio

    clients = []
    for i in range(0, n, 200):
        clients += await asyncio.gather(*(client() for _ in range(min(200, n - i))))
    sender = await client()
    tally_sender_skip = 1  # the sender receives the broadcast too; expect n + 1 per message
    await asyncio.sleep(1.0)

    async def publish(sent_at: float) -> None:
        await sender.emit("send", {"id": secrets.token_hex(4), "content": CONTENT, "created_at": repr(sent_at),
                                   "user_id": None, "is_pinned": False})

    try:
        return await measure(n + tally_sender_skip, messages, publish, tally)
    finally:
        await asyncio.gather(*(c.disconnect() for c in [*clients, sender]), return_exceptions=True)


async def make_database() -> tuple[str, str, str, str]:
    """A scratch database with a public channel and stream; returns (admin url, db url, stream, channel)."""
    from nchat_live.auth import Claims
    from nchat_live.db import Database

    name = f"nchat_bench_{secrets.token_hex(4)}"
    conn = await asyncpg.connect(PG)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    url = PG.rsplit("/", 1)[0] + "/" + name
    db = Database(url)
    await db.migrate()
    async with db.session(Claims.service()) as s:
        user = await s.fetchval("INSERT INTO nchat_users (username) VALUES ('bench') RETURNING id")
        channel = await s.fetchval(
            "INSERT INTO nchat_channels (name, slug, owner_id) VALUES ('Bench', 'bench', $1) RETURNING id", user)
        stream = await s.fetchval(
            "INSERT INTO nchat_streams (channel_id, broadcaster_id, title) VALUES ($1, $2, 'bench') RETURNING id",
            channel, user)
    await db.close()
    return name, url, str(stream), str(channel)


async def main(sizes: list[int], messages: int, deflate: bool = True) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 4 * max(sizes) + 1024)), hard))
    name, url, stream_id, channel_id = await make_database()
    nchat_port, sio_port = free_port(), free_port()
    servers = [spawn("--serve-nchat", str(nchat_port), url), spawn("--serve-socketio", str(sio_port))]
    rows = []
    try:
        await wait_port(nchat_port)
        await wait_port(sio_port)
        for n in sizes:
            ours = await bench_nchat(n, messages, nchat_port, stream_id, channel_id, deflate)
            theirs = await bench_socketio(n, messages, sio_port)
            rows.append((n, ours, theirs))
            print(f"N={n}: nchat-live p50 {ours['p50_ms']:.1f} ms p99 {ours['p99_ms']:.1f} ms "
                  f"{ours['msgs_per_s']:.0f} msg/s | python-socketio p50 {theirs['p50_ms']:.1f} ms "
                  f"p99 {theirs['p99_ms']:.1f} ms {theirs['msgs_per_s']:.0f} msg/s", flush=True)
    finally:
        for proc in servers:
            proc.terminate()
            proc.wait(10)
        conn = await asyncpg.connect(PG)
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()
    print("\n     N | nchat p50 ms | nchat p99 ms | nchat msg/s | sio p50 ms | sio p99 ms | sio msg/s | "
          "msg/s ratio (nchat/sio)")
    for n, ours, theirs in rows:
        print(f"{n:6d} | {ours['p50_ms']:12.1f} | {ours['p99_ms']:12.1f} | {ours['msgs_per_s']:11.0f} | "
              f"{theirs['p50_ms']:10.1f} | {theirs['p99_ms']:10.1f} | {theirs['msgs_per_s']:9.0f} | "
              f"{ours['msgs_per_s'] / theirs['msgs_per_s']:.2f}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--serve-nchat":
        serve_nchat(int(sys.argv[2]), sys.argv[3])
    elif len(sys.argv) > 1 and sys.argv[1] == "--serve-socketio":
        serve_socketio(int(sys.argv[2]))
    else:
        parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
        parser.add_argument("-n", "--subscribers", type=int, nargs="+", default=[100, 1000])
        parser.add_argument("--messages", type=int, default=20, help="messages per N (one at a time)")
        parser.add_argument("--no-deflate", action="store_true", help="nchat clients without permessage-deflate")
        args = parser.parse_args()
        asyncio.run(main(args.subscribers, args.messages, not args.no_deflate))
