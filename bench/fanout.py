"""Fan-out: one stream's events delivered to N websocket subscribers, nchat-live vs python-socketio.

The servers run in their own processes on loopback (nchat-live: `--workers W` processes on one port
with SO_REUSEPORT, sharing the Redis bus, as `nchat-live serve --workers W` does). The N clients run
in `--client-procs` separate processes (N/k sockets each), so the figures are the server's and not
one client loop's; latency is receive time minus the publish time carried in the event (one clock,
one machine). The publisher is this process: chat messages, reactions and viewer counts go onto the
Redis bus as another API process would publish them; python-socketio broadcasts a client's event.

    .venv/bin/python bench/fanout.py                       # chat, N = 1000 and 5000, nchat + socketio
    .venv/bin/python bench/fanout.py -n 5000 --workers 2   # both cores serve
    .venv/bin/python bench/fanout.py -n 5000 --scenario reactions viewers
    .venv/bin/python bench/fanout.py -n 20000 --scenario idle --no-socketio   # memory per connection
    .venv/bin/python bench/fanout.py --ws wsproto          # uvicorn's websocket implementation
    .venv/bin/python bench/fanout.py --server-src /tmp/old/src   # an older checkout's server only
    .venv/bin/python bench/fanout.py --before-src /tmp/old/src   # before (that checkout) and after, same run
    .venv/bin/python bench/fanout.py --profile /tmp/prof   # cProfile each server process (pstats files)

nchat-live's clients are raw sockets that find the timestamps in the byte stream (a websockets
client parsing JSON per message costs more than the server's send, and on 2 cores the clients
would be what is measured); `--deflate` uses websockets clients. python-socketio's are its own
client (heavier: its figures include more client time).

With `--before-src`, each case runs on the older checkout's server too ("before", its own processes
on another port, idle while the other is measured) and a line gives after/before ratios of p99 and
CPU. Each row: p50/p99/max delivery latency, delivered/expected, server CPU seconds and CPU % of one
core over the measured window, the client processes' CPU seconds (on 2 cores they compete with
the server), server RSS (all workers). Chat messages go out at `--rate` per second (`--messages`
of them); reactions in bursts of `--burst` per round; viewer counts once per 1.1 s (the feed
sends at most one a second). Needs PostgreSQL (NCHAT_TEST_PG, a scratch database is created and
dropped) and Redis (NCHAT_TEST_REDIS). The per-address connection cap is lifted for the bench's
servers (every client is on 127.0.0.1).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import multiprocessing
import os
import resource
import secrets
import socket
import statistics
import subprocess
import sys
import time
from multiprocessing.connection import Connection
from typing import Any

import asyncpg
import uvloop
import websockets

PG = os.environ.get("NCHAT_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS = os.environ.get("NCHAT_TEST_REDIS", "redis://127.0.0.1:6379/0")
CONTENT = "benchmark message " + "x" * 100
QUERIES = {
    "chat": "subscription($s: ID!) { chatEvents(streamId: $s) { id content createdAt } }",
    "reactions": "subscription($s: ID!) { reactions(streamId: $s) { reactions { id emoji } } }",
    "viewers": "subscription($s: ID!) { viewerCount(streamId: $s) { count } }",
    "idle": "subscription($s: ID!) { chatEvents(streamId: $s) { id content createdAt } }",
}
WRAP = 2**31  # viewer counts carry the publish time in ms modulo a GraphQL Int


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def raise_nofile() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# -- servers (child processes) -------------------------------------------------------------------

def reuseport_socket(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(8192)
    return sock


def run_profiled(run: Any) -> None:
    path = os.environ.get("FANOUT_PROFILE")
    if not path:
        run()
        return
    import cProfile

    profiler = cProfile.Profile()
    profiler.enable()
    try:
        run()
    finally:
        profiler.disable()
        profiler.dump_stats(f"{path}.{os.getpid()}")


def serve_nchat(port: int, database_url: str, ws: str, deflate: bool) -> None:
    import uvicorn

    from nchat_live.app import create_app
    from nchat_live.config import Settings

    raise_nofile()
    settings = Settings(DATABASE_URL=database_url, BUS_URL=REDIS, NCHAT_MEDIA_ENABLED=False,
                        NCHAT_WS_MAX_CONNECTIONS_PER_CLIENT=0)
    config = uvicorn.Config(create_app(settings), log_level="warning", ws=ws, ws_ping_interval=None,
                            ws_per_message_deflate=deflate)
    sock = reuseport_socket(port)
    run_profiled(lambda: uvicorn.Server(config).run(sockets=[sock]))


def serve_socketio(port: int, ws: str) -> None:
    import socketio
    import uvicorn

    raise_nofile()
    sio = socketio.AsyncServer(async_mode="asgi", cors_allowed_origins="*")

    @sio.on("send")  # type: ignore[misc]
    async def send(_sid: str, data: Any) -> None:
        await sio.emit("chat", data)

    config = uvicorn.Config(socketio.ASGIApp(sio), log_level="warning", ws=ws, ws_ping_interval=None)
    sock = reuseport_socket(port)
    run_profiled(lambda: uvicorn.Server(config).run(sockets=[sock]))


def spawn(args: list[str], src: str | None) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    if src:
        env["PYTHONPATH"] = src
    return subprocess.Popen([sys.executable, __file__, *args], env=env)


async def wait_port(port: int) -> None:
    for _ in range(600):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.1)
    raise RuntimeError(f"server on port {port} did not start")


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def rss_mib(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total / 1024


# -- clients (child processes) -------------------------------------------------------------------

def latency_of(kind: str, data: dict[str, Any], now: float) -> list[float]:
    if "chatEvents" in data:
        return [now - float(data["chatEvents"]["createdAt"])]
    if "reactions" in data:
        return [now - float(r["id"]) for r in data["reactions"]["reactions"]]
    if "viewerCount" in data:
        count = int(data["viewerCount"]["count"])
        if count == 0:
            return []  # the snapshot on subscribe
        now_ms = int(now * 1000)
        return [((now_ms - count) % WRAP) / 1000]
    if "chat" in data:  # socketio
        return [now - float(data["chat"]["created_at"])]
    return []


MARKERS = {"chat": b'"createdAt":"', "reactions": b'"id":"', "viewers": b'"count":', "idle": b'"createdAt":"'}


def frame(text: str) -> bytes:
    """A masked client text frame (the mask key may be any four bytes; zeros leave the payload as is)."""
    data = text.encode()
    size = len(data)
    head = bytes([0x81, 0x80 | size]) if size < 126 else bytes([0x81, 0x80 | 126]) + size.to_bytes(2, "big")
    return head + b"\0\0\0\0" + data


class RawSubscriber(asyncio.Protocol):
    """A graphql-transport-ws subscriber that reads its frames as bytes and only finds the timestamps.

    A full client (websockets + json per message) costs several times what the server spends per
    frame, and on a 2-core machine the clients would be what is measured. The server sends
    unmasked, uncompressed text frames, so the timestamp is found in the raw stream.
    """

    def __init__(self, kind: str, port: int, stream_id: str, latencies: list[float], got: asyncio.Event,
                 opened: asyncio.Future[None]) -> None:
        self.kind, self.marker = kind, MARKERS[kind]
        self.port, self.stream_id = port, stream_id
        self.latencies, self.got, self.opened = latencies, got, opened
        self.buffer = b""
        self.upgraded = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's transport is no asyncio.Transport
        key = base64.b64encode(os.urandom(16)).decode()
        transport.write((f"GET /v1/graphql HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\nUpgrade: websocket\r\n"
                         f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                         "Sec-WebSocket-Protocol: graphql-transport-ws\r\n\r\n").encode())

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer + data
        if not self.upgraded:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                self.buffer = buffer
                return
            if not buffer.startswith(b"HTTP/1.1 101"):
                self.opened.set_exception(RuntimeError(buffer[:80].decode(errors="replace")))
                return
            self.upgraded = True
            buffer = buffer[end + 4:]
            assert self.transport is not None
            self.transport.write(frame(json.dumps({"type": "connection_init", "payload": {}})) + frame(json.dumps(
                {"type": "subscribe", "id": "1", "payload": {"query": QUERIES[self.kind],
                                                             "variables": {"s": self.stream_id}}})))
            self.opened.set_result(None)
        now, marker, pos, found = time.time(), self.marker, 0, False
        while (at := buffer.find(marker, pos)) >= 0:
            start = at + len(marker)
            stop = start
            while stop < len(buffer) and buffer[stop] in b"0123456789.":
                stop += 1
            if stop == len(buffer):
                break  # the value continues in the next read
            pos = stop
            value = float(buffer[start:stop] or 0)
            if self.kind == "viewers":
                if value > 0:
                    self.latencies.append(((int(now * 1000) - int(value)) % WRAP) / 1000)
                    found = True
            elif value > 1e9:  # not the operation id
                self.latencies.append(now - value)
                found = True
        self.buffer = buffer[pos:] if pos else buffer[-64:]
        if found:
            self.got.set()


async def client_loop(pipe: Connection, system: str, kind: str, port: int, count: int, stream_id: str,
                      deflate: bool) -> None:
    latencies: list[float] = []
    got = asyncio.Event()
    sockets: list[Any] = []
    readers: list[asyncio.Task[None]] = []

    async def nchat_client() -> None:
        ws = await websockets.connect(f"ws://127.0.0.1:{port}/v1/graphql", subprotocols=["graphql-transport-ws"],
                                      max_queue=None, ping_interval=None, open_timeout=60,
                                      compression="deflate" if deflate else None)
        await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        await ws.send(json.dumps({"type": "subscribe", "id": "1",
                                  "payload": {"query": QUERIES[kind], "variables": {"s": stream_id}}}))
        sockets.append(ws)

        async def read() -> None:
            async for raw in ws:
                msg = json.loads(raw)
                if msg.get("type") == "next":
                    latencies.extend(latency_of(kind, msg["payload"]["data"], time.time()))
                    got.set()
                elif msg.get("type") in ("error", "complete"):
                    print(f"  client: {str(msg)[:200]}", file=sys.stderr)
        readers.append(asyncio.create_task(read()))

    async def sio_client() -> None:
        import socketio

        sio = socketio.AsyncClient(reconnection=False)

        def on_chat(data: Any) -> None:
            latencies.extend(latency_of(kind, {"chat": data}, time.time()))
            got.set()
        sio.on("chat", on_chat)
        await sio.connect(f"http://127.0.0.1:{port}", transports=["websocket"], wait_timeout=60)
        sockets.append(sio)

    async def raw_client() -> None:
        loop = asyncio.get_running_loop()
        opened: asyncio.Future[None] = loop.create_future()
        _, subscriber = await loop.create_connection(
            lambda: RawSubscriber(kind, port, stream_id, latencies, got, opened), "127.0.0.1", port)
        await asyncio.wait_for(opened, 60)
        sockets.append(subscriber)

    make = (raw_client if not deflate else nchat_client) if system != "sio" else sio_client
    failed = 0
    for i in range(0, count, 100):
        results = await asyncio.gather(*(make() for _ in range(min(100, count - i))), return_exceptions=True)
        failed += sum(isinstance(r, BaseException) for r in results)
    pipe.send(("ready", len(sockets), failed))
    loop = asyncio.get_running_loop()
    while True:
        command = await loop.run_in_executor(None, pipe.recv)
        if command[0] == "collect":
            expected, deadline = command[1], time.monotonic() + command[2]
            while len(latencies) < expected and time.monotonic() < deadline:
                got.clear()
                try:
                    await asyncio.wait_for(got.wait(), max(0.01, deadline - time.monotonic()))
                except TimeoutError:
                    break
            pipe.send(("latencies", latencies[:]))
            latencies.clear()
        elif command[0] == "close":
            for task in readers:
                task.cancel()
            raw = [s for s in sockets if isinstance(s, RawSubscriber)]
            for subscriber in raw:
                if subscriber.transport is not None:
                    subscriber.transport.close()
            closes = [s.close() if system != "sio" else s.disconnect() for s in sockets if s not in raw]
            await asyncio.gather(*closes, return_exceptions=True)
            pipe.send(("closed",))
            return


def client_process(pipe: Connection, system: str, kind: str, port: int, count: int, stream_id: str,
                   deflate: bool) -> None:
    raise_nofile()
    uvloop.install()
    asyncio.run(client_loop(pipe, system, kind, port, count, stream_id, deflate))


class Clients:
    """k client processes holding n sockets between them."""

    def __init__(self, system: str, kind: str, port: int, n: int, procs: int, stream_id: str, deflate: bool) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.pipes: list[Connection] = []
        self.counts = [n // procs + (1 if i < n % procs else 0) for i in range(procs)]
        self.procs = []
        for count in self.counts:
            ours, theirs = ctx.Pipe()
            proc = ctx.Process(target=client_process, args=(theirs, system, kind, port, count, stream_id, deflate))
            proc.start()
            self.pipes.append(ours)
            self.procs.append(proc)

    async def _recv(self, pipe: Connection) -> Any:
        return await asyncio.get_running_loop().run_in_executor(None, pipe.recv)

    async def ready(self) -> tuple[int, int]:
        answers = await asyncio.gather(*(self._recv(p) for p in self.pipes))
        return sum(a[1] for a in answers), sum(a[2] for a in answers)

    async def collect(self, per_socket: int, within: float) -> list[float]:
        for pipe, count in zip(self.pipes, self.counts, strict=True):
            pipe.send(("collect", per_socket * count, within))
        answers = await asyncio.gather(*(self._recv(p) for p in self.pipes))
        return [x for a in answers for x in a[1]]

    async def close(self) -> None:
        for pipe in self.pipes:
            pipe.send(("close",))
        await asyncio.gather(*(self._recv(p) for p in self.pipes), return_exceptions=True)
        for proc in self.procs:
            proc.join(10)


# -- one measured run ----------------------------------------------------------------------------

async def run_case(system: str, kind: str, n: int, args: argparse.Namespace, port: int, pids: list[int],
                   stream_id: str, channel_id: str) -> dict[str, Any]:
    from nchat_live.subscriptions.bus import EventBus

    rss_before = rss_mib(pids)
    clients = Clients(system, kind, port, n, min(args.client_procs, n), stream_id, args.deflate)
    connected, failed = await clients.ready()
    await asyncio.sleep(1.5)  # subscriptions registered server-side
    rss_held = rss_mib(pids)
    bus = EventBus(REDIS) if system != "sio" else None
    sender: Any = None
    if bus is not None:
        await bus.start()
    else:
        import socketio

        sender = socketio.AsyncClient(reconnection=False)
        await sender.connect(f"http://127.0.0.1:{port}", transports=["websocket"])
    client_pids = [p.pid for p in clients.procs if p.pid is not None]
    cpu0, client_cpu0, t0 = cpu_seconds(pids), cpu_seconds(client_pids), time.monotonic()
    per_socket = 0
    try:
        if kind == "chat":
            for _ in range(args.messages):
                sent_at = repr(time.time())
                if bus is not None:
                    await bus.publish("chat.message", {
                        "stream_id": stream_id, "channel_id": channel_id, "id": secrets.token_hex(4),
                        "content": CONTENT, "created_at": sent_at, "user_id": None, "is_pinned": False})
                else:
                    await sender.emit("send", {"id": secrets.token_hex(4), "content": CONTENT,
                                               "created_at": sent_at, "user_id": None, "is_pinned": False})
                per_socket += 1
                await asyncio.sleep(1 / args.rate)
        elif kind == "reactions":
            assert bus is not None
            for _ in range(args.messages):
                for _ in range(args.burst):
                    await bus.publish("reaction", {"stream_id": stream_id, "id": repr(time.time()), "emoji": "🔥",
                                                   "position_x": 0.5, "position_y": 0.5, "user_id": None})
                    per_socket += 1
                    await asyncio.sleep(0.002)
                await asyncio.sleep(1 / args.rate)
        elif kind == "viewers":
            assert bus is not None
            for _ in range(max(2, args.messages // 5)):
                await asyncio.sleep(1.1)
                await bus.publish("viewer.count", {"stream_id": stream_id,
                                                   "count": int(time.time() * 1000) % WRAP})
                per_socket += 1
        elif kind == "idle":
            await asyncio.sleep(args.seconds)
        latencies = await clients.collect(per_socket, 30)
        elapsed = time.monotonic() - t0
        cpu = cpu_seconds(pids) - cpu0
        client_cpu = cpu_seconds(client_pids) - client_cpu0
        rss_after = rss_mib(pids)
    finally:
        if bus is not None:
            await bus.stop()
        if sender is not None:
            await sender.disconnect()
        await clients.close()
    lat = sorted(latencies)
    row: dict[str, Any] = {
        "system": system, "kind": kind, "n": n, "connected": connected, "failed": failed,
        "delivered": len(lat), "expected": per_socket * connected, "cpu_s": cpu, "cpu_pct": 100 * cpu / elapsed,
        "client_cpu_s": client_cpu,
        "rss_mib": rss_after, "kib_per_conn": 1024 * (rss_held - rss_before) / max(1, connected),
    }
    if lat:
        row |= {"p50_ms": 1000 * statistics.median(lat), "p99_ms": 1000 * lat[min(len(lat) - 1, int(len(lat) * 0.99))],
                "max_ms": 1000 * lat[-1]}
    return row


def ratio(after: dict[str, Any], before: dict[str, Any]) -> str:
    """After/before of the same case in the same run."""
    parts = []
    for key, label in (("p50_ms", "p50"), ("p99_ms", "p99"), ("cpu_s", "CPU")):
        if after.get(key) and before.get(key):
            parts.append(f"{label} {after[key] / before[key]:.2f}x")
    return f"{'':6s} {after['kind']:9s} N={after['n']:6d} after/before: " + (", ".join(parts) or "-")


def show(row: dict[str, Any]) -> str:
    lat = (f"p50 {row['p50_ms']:7.1f} p99 {row['p99_ms']:7.1f} max {row['max_ms']:7.1f} ms"
           if "p50_ms" in row else "p50       - p99       - max       -   ")
    return (f"{row['system']:6s} {row['kind']:9s} N={row['n']:6d} conn {row['connected']:6d} | {lat} | "
            f"delivered {row['delivered']}/{row['expected']} | CPU {row['cpu_s']:5.1f} s ({row['cpu_pct']:4.0f}%), "
            f"clients {row['client_cpu_s']:5.1f} s | "
            f"RSS {row['rss_mib']:7.1f} MiB, {row['kib_per_conn']:5.1f} KiB/conn")


async def make_database() -> tuple[str, str, str, str]:
    """A scratch database with a public channel and a live stream; returns (name, url, stream, channel)."""
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


async def main(args: argparse.Namespace) -> None:
    raise_nofile()
    name, url, stream_id, channel_id = await make_database()
    nchat_port, sio_port = free_port(), free_port()
    profile = ["FANOUT_PROFILE"] if args.profile else []
    if args.profile:
        os.environ["FANOUT_PROFILE"] = args.profile
    os.environ["NCHAT_WS_BATCH_MS"] = str(args.batch_ms)
    nchat = [spawn(["--serve-nchat", str(nchat_port), url, args.ws, str(int(args.deflate))], args.server_src)
             for _ in range(args.workers)]
    before_port = free_port()
    while before_port in (nchat_port, sio_port):
        before_port = free_port()
    before: list[subprocess.Popen[bytes]] = []
    databases = [name]
    if args.before_src:
        # The older checkout migrates a database of its own (it refuses one with migrations it does not know).
        maker = await asyncio.create_subprocess_exec(sys.executable, __file__, "--make-db",
                                                     env={**os.environ, "PYTHONPATH": args.before_src},
                                                     stdout=asyncio.subprocess.PIPE)
        made, _ = await maker.communicate()
        old_name, old_url, old_stream, old_channel = json.loads(made.decode().strip().splitlines()[-1])
        databases.append(old_name)
        before = [spawn(["--serve-nchat", str(before_port), old_url, args.ws, str(int(args.deflate))], args.before_src)
                  for _ in range(args.workers)]
    sio = [] if args.no_socketio else [spawn(["--serve-socketio", str(sio_port), args.ws], None)]
    for var in profile:
        del os.environ[var]
    rows = []
    try:
        await wait_port(nchat_port)
        if before:
            await wait_port(before_port)
        if sio:
            await wait_port(sio_port)
        await asyncio.sleep(2.0)  # every worker listening
        for n in args.subscribers:
            for kind in args.scenario:
                if before:
                    old = await run_case("before", kind, n, args, before_port, [p.pid for p in before], old_stream,
                                         old_channel)
                    rows.append(old)
                    print(show(old), flush=True)
                row = await run_case("nchat", kind, n, args, nchat_port, [p.pid for p in nchat], stream_id, channel_id)
                rows.append(row)
                print(show(row), flush=True)
                if before:
                    rows.append({"ratio": ratio(row, old)})
                    print(rows[-1]["ratio"], flush=True)
                if sio and kind == "chat":
                    row = await run_case("sio", kind, n, args, sio_port, [p.pid for p in sio], stream_id, channel_id)
                    rows.append(row)
                    print(show(row), flush=True)
    finally:
        for proc in [*nchat, *before, *sio]:
            proc.terminate()
        for proc in [*nchat, *before, *sio]:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        conn = await asyncpg.connect(PG)
        for database in databases:
            await conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await conn.close()
    print(f"\nworkers={args.workers} ws={args.ws} batch_ms={args.batch_ms} deflate={args.deflate} "
          f"client procs={args.client_procs} "
          f"rate={args.rate}/s messages={args.messages}")
    for row in rows:
        print(row["ratio"] if "ratio" in row else show(row))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--serve-nchat":
        serve_nchat(int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5] == "1")
    elif len(sys.argv) > 1 and sys.argv[1] == "--make-db":
        print(json.dumps(asyncio.run(make_database())))
    elif len(sys.argv) > 1 and sys.argv[1] == "--serve-socketio":
        serve_socketio(int(sys.argv[2]), sys.argv[3])
    else:
        parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
        parser.add_argument("-n", "--subscribers", type=int, nargs="+", default=[1000, 5000])
        parser.add_argument("--scenario", nargs="+", default=["chat"], choices=["chat", "reactions", "viewers", "idle"])
        parser.add_argument("--messages", type=int, default=20, help="chat messages (or reaction rounds) per run")
        parser.add_argument("--rate", type=float, default=10.0, help="chat messages (reaction rounds) per second")
        parser.add_argument("--burst", type=int, default=10, help="reactions per round")
        parser.add_argument("--seconds", type=float, default=5.0, help="how long idle subscribers are held")
        parser.add_argument("--workers", type=int, default=1, help="nchat-live server processes on one port")
        parser.add_argument("--client-procs", type=int, default=4, help="client processes")
        parser.add_argument("--ws", default="websockets-sansio", choices=["websockets", "websockets-sansio", "wsproto"])
        parser.add_argument("--deflate", action="store_true", help="permessage-deflate (off in production)")
        parser.add_argument("--no-socketio", action="store_true", help="skip the python-socketio baseline")
        parser.add_argument("--server-src", help="PYTHONPATH for the nchat-live server (another checkout's src)")
        parser.add_argument("--before-src", help="also run each case on this checkout's src (before/after ratios)")
        parser.add_argument("--batch-ms", type=float, default=0.0, help="NCHAT_WS_BATCH_MS for the servers")
        parser.add_argument("--profile", help="cProfile each server process into PROFILE.<pid>")
        asyncio.run(main(parser.parse_args()))
