"""Ingest abuse bench (not a test): the RTMP attacks of issue 13, bounded, on loopback, against
`nchat-live serve` with media on. Same shape as bench/abuse.py: a well-behaved client measures GET
/healthz throughout; for each attack the bench prints its p99 next to the quiet baseline of the same
run and the server's memory growth (RSS). Attacks are `async def attack_x(target, stop) -> str` in ATTACKS.

    .venv/bin/python bench/abuse_ingest.py --pg postgresql://postgres@127.0.0.1:5432/postgres --seconds 5
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import socket
import struct
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx

from nchat_live.media.rtmp import amf0
from nchat_live.media.rtmp.chunks import COMMAND_AMF0, SET_CHUNK_SIZE, USER_CONTROL, Message, encode_message


@dataclass
class Target:
    base: str  # http://127.0.0.1:port
    rtmp_port: int
    pid: int


Attack = Callable[[Target, asyncio.Event], Awaitable[str]]


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


async def measure(target: Target, stop: asyncio.Event) -> list[float]:
    samples: list[float] = []
    async with httpx.AsyncClient(base_url=target.base, timeout=60) as client:
        while not stop.is_set():
            started = time.perf_counter()
            with contextlib.suppress(httpx.HTTPError):
                await client.get("/healthz")
            samples.append(time.perf_counter() - started)
            await asyncio.sleep(0.05)
    return samples


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


# -- attacks ----------------------------------------------------------------------------------------


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


ATTACKS: list[Attack] = [attack_rtmp_big_chunks, attack_rtmp_slowloris, attack_rtmp_key_guess]


# -- driver -----------------------------------------------------------------------------------------


async def phase(target: Target, seconds: float, attack: Attack | None) -> tuple[float, str]:
    stop = asyncio.Event()
    attacker = asyncio.create_task(attack(target, stop)) if attack else None
    await asyncio.sleep(0.3 if attack else 0)
    meter = asyncio.create_task(measure(target, stop))
    await asyncio.sleep(seconds)
    stop.set()
    health = await meter
    summary = ""
    if attacker is not None:
        try:
            summary = await asyncio.wait_for(attacker, 60)
        except Exception as exc:
            summary = f"attack failed: {type(exc).__name__} {exc}"
    return p99(health), summary


def start_server(port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    exe = Path(sys.executable).with_name("nchat-live")
    return subprocess.Popen([str(exe), "serve", "--host", "127.0.0.1", "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres", help="admin URL")
    parser.add_argument("--seconds", type=float, default=5.0, help="measuring time per phase")
    parser.add_argument("--only", default="", help="comma-separated attack names (default: all)")
    args = parser.parse_args()

    name = f"nchat_abuse_ingest_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(args.pg)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    url = args.pg.rsplit("/", 1)[0] + "/" + name
    port, rtmp_port = free_port(), free_port()
    env = {**os.environ, "DATABASE_URL": url, "NCHAT_RTMP_PORT": str(rtmp_port),
           "NCHAT_DATA_DIR": f"/tmp/{name}", "NCHAT_MEDIA_DIR": f"/tmp/{name}/media",
           "STREAM_RECORDING_PATH": f"/tmp/{name}/recordings"}
    server = start_server(port, env)
    try:
        target = Target(f"http://127.0.0.1:{port}", rtmp_port, server.pid)
        async with httpx.AsyncClient(base_url=target.base) as client:
            for _ in range(300):
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get("/healthz")).status_code == 200:
                        break
                await asyncio.sleep(0.1)
        attacks = [a for a in ATTACKS if not args.only or a.__name__.removeprefix("attack_") in args.only.split(",")]
        rss0 = rss_mb(server.pid)
        quiet, _ = await phase(target, args.seconds, None)
        print(f"{'phase':<20} {'healthz p99 ms':>15} {'RSS +MB':>8}  server answers")
        print(f"{'quiet':<20} {quiet:>15.1f} {0.0:>8.1f}")
        for attack in attacks:
            h, summary = await phase(target, args.seconds, attack)
            grown = rss_mb(server.pid) - rss0
            flag = " " if h <= 2 * quiet and grown < 50 else "!"
            print(f"{attack.__name__.removeprefix('attack_'):<20} {h:>15.1f} {grown:>8.1f} {flag} {summary}")
        h, _ = await phase(target, args.seconds, None)
        rss = rss_mb(server.pid)
        print(f"quiet again: healthz p99 {h:.1f} ms; RSS {rss:.0f} MB (+{rss - rss0:.1f})")
    finally:
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
        admin = await asyncpg.connect(args.pg)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
