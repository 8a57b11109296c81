"""A real uvicorn serving the app on a free loopback port, in the test's event loop."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest
import uvicorn
import websockets

from nchat_live.app import create_app
from nchat_live.config import Settings
from nchat_live.runtime import Runtime


@dataclass
class Server:
    runtime: Runtime
    port: int

    def url(self, path: str = "/v1/graphql") -> str:
        return f"ws://127.0.0.1:{self.port}{path}"


@asynccontextmanager
async def serve(settings: Settings) -> AsyncIterator[Server]:
    runtime = Runtime(settings)
    app = create_app(runtime=runtime)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, lifespan="on", log_level="warning", ws_ping_interval=None)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    try:
        yield Server(runtime, sock.getsockname()[1])
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 15)


@pytest.fixture(scope="module")
async def server(settings: Settings) -> AsyncIterator[Server]:
    async with serve(settings) as srv:
        yield srv


Connect = Callable[..., Awaitable[Any]]


async def recv_json(ws: Any, within: float = 5.0, skip: tuple[str, ...] = ("ka", "ping")) -> dict[str, Any]:
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), within))
        if message.get("type") not in skip:
            return message


async def open_socket(url: str, token: str | None, protocol: str | None = "graphql-transport-ws",
                      **kwargs: Any) -> Any:
    """A connected, acknowledged raw websocket."""
    ws = await websockets.connect(url, subprotocols=[protocol] if protocol else None, **kwargs)
    payload = {"headers": {"Authorization": f"Bearer {token}"}} if token else {}
    await ws.send(json.dumps({"type": "connection_init", "payload": payload}))
    ack = await recv_json(ws)
    assert ack["type"] == "connection_ack", ack
    return ws
