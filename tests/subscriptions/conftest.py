"""A real uvicorn serving the app on a free loopback port, in the test's event loop."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pytest
import websockets

from nchat_live.app import create_app
from nchat_live.config import Settings
from nchat_live.runtime import Runtime
from tests.support import serve_app


@dataclass
class Server:
    runtime: Runtime
    port: int

    def url(self, path: str = "/v1/graphql") -> str:
        return f"ws://127.0.0.1:{self.port}{path}"


@asynccontextmanager
async def serve(settings: Settings) -> AsyncIterator[Server]:
    runtime = Runtime(settings)
    async with serve_app(create_app(runtime=runtime), ws_ping_interval=None) as url:
        port = urlsplit(url).port
        assert port is not None
        yield Server(runtime, port)


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
