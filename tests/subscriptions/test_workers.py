"""`nchat-live api --workers 2`: two processes on one port, events reaching subscribers on both."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from nchat_live.subscriptions.bus import EventBus
from tests.support import JWT_SECRET, NEEDS_REDIS, REDIS_URL, World

from .conftest import open_socket, recv_json
from .test_websocket import CHAT


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _workers(pid: int) -> list[int]:
    """The worker processes of `pid` (not multiprocessing's resource tracker)."""
    children = [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    return [c for c in children if b"resource_tracker" not in Path(f"/proc/{c}/cmdline").read_bytes()]


def _established(pid: int, port: int) -> int:
    """Established TCP connections on local `port` that process `pid` holds."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port and fields[3] == "01":
            inodes.add(fields[9])
    held = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:[") and target[8:-1] in inodes:
            held += 1
    return held


@NEEDS_REDIS
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SO_REUSEPORT balancing and /proc are Linux's")
async def test_two_workers_share_the_port_and_the_redis_bus(database_url: str, world: World) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.endswith("DATABASE_URL")}
    env.update(DATABASE_URL=database_url, BUS_URL=REDIS_URL, NCHAT_JWT_SECRET=JWT_SECRET, NCHAT_MEDIA_ENABLED="0",
               NCHAT_ORPHAN_SWEEP_SECONDS="0", NCHAT_WS_MAX_CONNECTIONS_PER_CLIENT="0")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "nchat_live.cli", "api", "--workers", "2", "--port", str(port), "--no-migrate",
        "--log-level", "warning", env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    sockets = []
    bus = EventBus(REDIS_URL)
    try:
        url = f"ws://127.0.0.1:{port}/v1/graphql"
        for _ in range(300):
            try:
                sockets.append(await open_socket(url, None))
                break
            except OSError:
                assert proc.returncode is None, "the server exited"
                await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)  # the second worker listening too
        workers = _workers(proc.pid)
        assert len(workers) == 2, workers
        # The kernel spreads connections by their source port: open sockets until both hold some.
        while (len(sockets) < 40 and min(_established(w, port) for w in workers) == 0) or len(sockets) < 8:
            sockets.append(await open_socket(url, None))
        held = [_established(w, port) for w in workers]
        assert min(held) > 0 and sum(held) == len(sockets), held
        query = {"query": CHAT, "variables": {"s": world.public_stream}}
        for ws in sockets:
            await ws.send(json.dumps({"type": "subscribe", "id": "1", "payload": query}))
        await asyncio.sleep(1.0)  # subscriptions listening on both workers
        await bus.start()
        base = {"stream_id": world.public_stream, "channel_id": world.public_channel, "user_id": world.bob}
        for i in range(3):
            await bus.publish("chat.message", {**base, "id": f"w{i}", "content": f"w{i}"})
        for ws in sockets:
            got = [(await recv_json(ws, within=10))["payload"]["data"]["chatEvents"]["content"] for _ in range(3)]
            assert got == ["w0", "w1", "w2"]
    finally:
        await bus.stop()
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
        proc.send_signal(signal.SIGTERM)
        try:
            _, err = await asyncio.wait_for(proc.communicate(), 30)
        except TimeoutError:
            proc.kill()
            _, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()


def test_workers_refuse_the_in_process_bus() -> None:
    env = {k: v for k, v in os.environ.items() if not k.endswith("BUS_URL")}
    env.update(BUS_URL="memory://", NCHAT_MEDIA_ENABLED="0")
    result = subprocess.run([sys.executable, "-m", "nchat_live.cli", "api", "--workers", "2", "--port",
                             str(_free_port())], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "--workers needs a bus the processes share" in result.stderr
