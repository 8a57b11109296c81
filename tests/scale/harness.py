"""Chat load against real API processes: subprocesses, websocket subscribers, paced senders, tallies.

Shared by the CI-sized tests in this package and by `bench/load_chat.py`. Every message's
content names its sender lane, its sequence number in that lane and the wall-clock time its
request started (`lane:seq:t`), so any process on this machine can check exactly-once delivery,
per-sender order and latency without shared state.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import websockets

from nchat_live.auth import Claims, mint_token
from nchat_live.db import Database
from nchat_live.resolvers import lifecycle

CHAT = "subscription($s: ID!) { chatEvents(streamId: $s) { type id content } }"
SEND = "mutation($s: ID!, $c: String!) { sendChatMessage(streamId: $s, content: $c) { id } }"
# The chat limit is 5 messages per 10 s per user (resolvers/chat.py); a lane sends at most this
# often, with room for timing jitter.
LANE_RATE = 0.4
PROBE_LANE = -1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- the API processes ---------------------------------------------------------------------------

class ApiProcess:
    """`nchat-live api` on a free loopback port, its output in a log file."""

    def __init__(self, env: dict[str, str], name: str = "api") -> None:
        self.env = env
        self.name = name
        self.port = free_port()
        self.log = Path(tempfile.mkstemp(prefix=f"nchat-{name}-", suffix=".log")[1])
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/graphql"

    def start(self) -> None:
        exe = Path(sys.executable).parent / "nchat-live"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [str(exe), "api", "--host", "127.0.0.1", "--port", str(self.port), "--no-migrate",
                 "--log-level", "warning"],
                env={**os.environ, **self.env}, stdout=out, stderr=subprocess.STDOUT,
            )

    async def ready(self, within: float = 45.0) -> None:
        deadline = time.monotonic() + within
        async with httpx.AsyncClient() as client:
            while True:
                assert self.proc is not None
                if self.proc.poll() is not None:
                    raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.tail()}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"{self.http}/healthz", timeout=2)).status_code == 200:
                        return
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{self.name} not healthy within {within:.0f}s:\n{self.tail()}")
                await asyncio.sleep(0.2)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.kill()

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def api_env(database_url: str, bus_url: str, jwt_secret: str) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url, "BUS_URL": bus_url, "NCHAT_JWT_SECRET": jwt_secret,
        "NCHAT_MEDIA_ENABLED": "0", "NCHAT_RTMP_ENABLED": "0", "NCHAT_DB_POOL_SIZE": "5",
    }


# -- the cast ------------------------------------------------------------------------------------

@dataclass
class Cast:
    stream_id: str
    tokens: list[str]  # one per sender lane


async def prepare(database_url: str, jwt_secret: str, senders: int) -> Cast:
    """A live public stream with open chat, and `senders` users to chat in it (as the server)."""
    tag = uuid.uuid4().hex[:8]
    db = Database(database_url)
    try:
        async with db.session(Claims.service()) as s:
            owner = str(await s.fetchval(
                "INSERT INTO nchat_users (username) VALUES ($1) RETURNING id", f"load-owner-{tag}"))
            channel = str(await s.fetchval(
                "INSERT INTO nchat_channels (name, slug, owner_id) VALUES ('Load', $1, $2) RETURNING id",
                f"load-{tag}", owner))
            stream = str(await s.fetchval(
                "INSERT INTO nchat_streams (channel_id, broadcaster_id, title) VALUES ($1, $2, 'load') RETURNING id",
                channel, owner))
            users = await s.fetch(
                "INSERT INTO nchat_users (username) SELECT 'load-' || $1 || '-' || n FROM generate_series(1, $2) n "
                "RETURNING id", tag, senders)
        async with db.session(Claims.service()) as s:
            await lifecycle.transition(s, stream, lifecycle.LIVE)
    finally:
        await db.close()
    return Cast(stream, [mint_token(jwt_secret, str(u["id"]), "user", ttl_seconds=3600) for u in users])


# -- subscribers ---------------------------------------------------------------------------------

@dataclass
class Subscriber:
    """One websocket subscriber of a stream's chat; reconnects to the next URL when its socket dies."""

    index: int
    urls: Sequence[str]
    stream_id: str
    received: list[tuple[int, int]] = field(default_factory=list)  # (lane, seq) in arrival order
    latencies: list[float] = field(default_factory=list)
    subscribed_at: list[tuple[float, int]] = field(default_factory=list)  # (time, url index) per subscription
    errors: list[str] = field(default_factory=list)
    synced: asyncio.Event = field(default_factory=asyncio.Event)
    current: int = 0

    async def run(self, stop: asyncio.Event) -> None:
        self.current = self.index % len(self.urls)
        while not stop.is_set():
            try:
                await self._session(stop)
            except (OSError, websockets.ConnectionClosed, TimeoutError) as exc:
                if stop.is_set():
                    return
                self.errors.append(f"{type(exc).__name__} on {self.urls[self.current]}")
            # A real client moves on to another server of the pool after a lost connection.
            self.current = (self.current + 1) % len(self.urls)
            await asyncio.sleep(0.2)

    async def _session(self, stop: asyncio.Event) -> None:
        async with websockets.connect(self.urls[self.current], subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
                                      ping_interval=None, max_queue=None, open_timeout=20) as ws:
            await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
            ack = json.loads(await asyncio.wait_for(ws.recv(), 20))
            if ack.get("type") != "connection_ack":
                raise OSError(f"no ack: {ack}")
            await ws.send(json.dumps({"type": "subscribe", "id": "chat",
                                      "payload": {"query": CHAT, "variables": {"s": self.stream_id}}}))
            self.subscribed_at.append((time.time(), self.current))
            stopping = asyncio.ensure_future(stop.wait())
            try:
                while True:
                    receive = asyncio.ensure_future(ws.recv())
                    await asyncio.wait({receive, stopping}, return_when=asyncio.FIRST_COMPLETED)
                    if not receive.done():
                        receive.cancel()
                        return
                    await self._handle(json.loads(receive.result()), ws)
            finally:
                stopping.cancel()

    async def _handle(self, message: dict[str, Any], ws: Any) -> None:
        kind = message.get("type")
        if kind == "ping":
            await ws.send(json.dumps({"type": "pong"}))
            return
        if kind in ("error", "complete"):
            # The subscription ended under a live socket: a server fault. Record it and resubscribe.
            self.errors.append(f"{kind}: {json.dumps(message.get('payload'))[:200]}")
            raise OSError("subscription ended")
        if kind != "next":
            return
        event = message["payload"]["data"]["chatEvents"]
        lane_s, seq_s, sent_s = str(event["content"]).split(":")
        lane, seq = int(lane_s), int(seq_s)
        if lane == PROBE_LANE:
            self.synced.set()
            return
        self.latencies.append(time.time() - float(sent_s))
        self.received.append((lane, seq))


async def run_subscribers(subscribers: Sequence[Subscriber], stop: asyncio.Event, connect_per_s: float = 200
                          ) -> list[asyncio.Task[None]]:
    """Start every subscriber, paced so the servers' accept queues are not flooded."""
    tasks = []
    for sub in subscribers:
        tasks.append(asyncio.create_task(sub.run(stop)))
        await asyncio.sleep(1 / connect_per_s)
    return tasks


# -- senders -------------------------------------------------------------------------------------

@dataclass
class Sent:
    lane: int
    seq: int
    url: str
    started: float
    finished: float = 0.0
    outcome: str = "pending"  # "ok", an error code, "http-<status>" or a transport error
    detail: str = ""

    @property
    def accepted(self) -> bool:
        return self.outcome == "ok"


async def send_one(client: httpx.AsyncClient, url: str, token: str, stream_id: str, lane: int, seq: int) -> Sent:
    sent = Sent(lane, seq, url, time.time())
    content = f"{lane}:{seq}:{sent.started:.6f}"
    try:
        response = await client.post(f"{url}/v1/graphql", headers={"Authorization": f"Bearer {token}"},
                                     json={"query": SEND, "variables": {"s": stream_id, "c": content}})
    except httpx.HTTPError as exc:
        sent.outcome = f"transport:{type(exc).__name__}"
    else:
        if response.status_code >= 500:
            sent.outcome = f"http-{response.status_code}"
        else:
            body = response.json()
            if body.get("errors"):
                sent.outcome = str(body["errors"][0].get("extensions", {}).get("code", "no-code"))
                sent.detail = str(body["errors"][0].get("message"))
            elif response.status_code == 200 and (body.get("data") or {}).get("sendChatMessage"):
                sent.outcome = "ok"
            else:
                sent.outcome = f"http-{response.status_code}"
    sent.finished = time.time()
    return sent


async def probe(client: httpx.AsyncClient, urls: Sequence[str], token: str, stream_id: str,
                subscribers: Sequence[Subscriber], within: float = 30.0) -> None:
    """Chat until every subscriber has seen a probe message: all subscriptions are live."""
    deadline = time.monotonic() + within
    n = 0
    outcomes: list[str] = []
    while not all(s.synced.is_set() for s in subscribers):
        if time.monotonic() > deadline:
            missing = sum(not s.synced.is_set() for s in subscribers)
            errors = {e for s in subscribers for e in s.errors}
            raise AssertionError(f"{missing} subscribers never received a probe; probes: {outcomes}; "
                                 f"subscriber errors: {sorted(errors)[:5]}")
        sent = await send_one(client, urls[n % len(urls)], token, stream_id, PROBE_LANE, n)
        outcomes.append(f"{sent.outcome} {sent.detail}".strip())
        n += 1
        # The probe user obeys the chat limit too: one message per 2.5 s once it has sent a few.
        await asyncio.sleep(0.3 if n < 4 and sent.outcome == "ok" else 2.5)


async def send_load(urls: Sequence[str], tokens: Sequence[str], stream_id: str, rate: float, duration: float,
                    on_failure: Callable[[Sent], None] | None = None) -> list[Sent]:
    """`rate` messages a second for `duration` s, spread over lanes (one user each) that send in turn.

    A lane sends its messages one after another, so its order is the order of acceptance; lane i
    starts on urls[i % len(urls)] and moves to the next URL after a transport error, as a client
    of a load balancer would.
    """
    lanes = max(1, int(rate / LANE_RATE + 0.999))
    if lanes > len(tokens):
        raise ValueError(f"{rate}/s needs {lanes} sender users; only {len(tokens)}")
    period = lanes / rate
    sent: list[Sent] = []
    t0 = time.monotonic() + 0.1
    limits = httpx.Limits(max_connections=lanes, max_keepalive_connections=lanes)
    async with httpx.AsyncClient(timeout=httpx.Timeout(15.0, connect=3.0), limits=limits) as client:

        async def lane(i: int) -> None:
            target = i % len(urls)
            seq = 0
            while True:
                at = t0 + i / rate + seq * period
                if at - t0 >= duration:
                    return
                await asyncio.sleep(max(0.0, at - time.monotonic()))
                result = await send_one(client, urls[target], tokens[i], stream_id, i, seq)
                sent.append(result)
                if not result.accepted:
                    if on_failure is not None:
                        on_failure(result)
                    if result.outcome.startswith("transport:"):
                        target = (target + 1) % len(urls)
                seq += 1

        await asyncio.gather(*(lane(i) for i in range(lanes)))
    return sent


# -- the tally -----------------------------------------------------------------------------------

@dataclass
class Tally:
    accepted: int
    refused: Counter[str]
    subscribers: int
    delivered: int  # deliveries of accepted messages, over all subscribers
    expected: int  # deliveries that had to happen
    missing: int
    duplicates: int
    out_of_order: int
    unexpected: int  # deliveries of messages not answered with success (committed, answer lost)
    subscription_errors: int
    p50_ms: float
    p99_ms: float
    worst_missing: list[str] = field(default_factory=list)

    def line(self) -> str:
        refused = ", ".join(f"{k}={v}" for k, v in sorted(self.refused.items())) or "none"
        return (f"accepted {self.accepted} (refused: {refused}); {self.subscribers} subscribers; "
                f"delivered {self.delivered}/{self.expected}, missing {self.missing}, duplicates {self.duplicates}, "
                f"out-of-order {self.out_of_order}, unexpected {self.unexpected}, "
                f"subscription errors {self.subscription_errors}; latency p50 {self.p50_ms:.1f} ms, "
                f"p99 {self.p99_ms:.1f} ms")


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def tally(sent: Sequence[Sent], subscribers: Sequence[Subscriber],
          must_receive: Callable[[Subscriber, Sent], bool] = lambda _s, _m: True) -> Tally:
    """Check each subscriber against the accepted messages it had to receive."""
    accepted = {(m.lane, m.seq): m for m in sent if m.accepted}
    refused = Counter(m.outcome for m in sent if not m.accepted)
    delivered = expected = missing = duplicates = out_of_order = unexpected = errors = 0
    latencies: list[float] = []
    worst: list[str] = []
    for sub in subscribers:
        counts = Counter(sub.received)
        duplicates += sum(c - 1 for c in counts.values() if c > 1)
        last: dict[int, int] = {}
        for lane, seq in sub.received:
            if seq <= last.get(lane, -1):
                out_of_order += 1
            last[lane] = max(seq, last.get(lane, -1))
        unexpected += sum(1 for key in counts if key not in accepted)
        delivered += sum(1 for key in counts if key in accepted)
        need = [m for m in accepted.values() if must_receive(sub, m)]
        expected += len(need)
        lost = [m for m in need if (m.lane, m.seq) not in counts]
        missing += len(lost)
        if lost and len(worst) < 5:
            worst.append(f"subscriber {sub.index}: {len(lost)} missing, e.g. lane {lost[0].lane} seq {lost[0].seq} "
                         f"via {lost[0].url}; subscriptions {sub.subscribed_at}; errors {sub.errors[:3]}")
        errors += sum(1 for e in sub.errors if e.startswith(("error", "complete")))
        latencies.extend(sub.latencies)
    return Tally(
        accepted=len(accepted), refused=refused, subscribers=len(subscribers), delivered=delivered,
        expected=expected, missing=missing, duplicates=duplicates, out_of_order=out_of_order,
        unexpected=unexpected, subscription_errors=errors,
        p50_ms=1000 * statistics.median(latencies) if latencies else float("nan"),
        p99_ms=1000 * percentile(latencies, 0.99), worst_missing=worst,
    )


async def settle(subscribers: Sequence[Subscriber], sent: Sequence[Sent], quiet: float = 3.0,
                 within: float = 20.0) -> None:
    """Wait until deliveries stop growing for `quiet` s (or every accepted message arrived everywhere)."""
    want = sum(1 for m in sent if m.accepted)
    deadline = time.monotonic() + within
    last, last_change = -1, time.monotonic()
    while time.monotonic() < deadline:
        total = sum(len(s.received) for s in subscribers)
        if total >= want * len(subscribers):
            return
        if total != last:
            last, last_change = total, time.monotonic()
        elif time.monotonic() - last_change > quiet:
            return
        await asyncio.sleep(0.1)
