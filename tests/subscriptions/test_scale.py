"""Across processes, under a stalled client, and presence when a viewer's socket closes."""

from __future__ import annotations

import asyncio
import json
import socket
import time

import pytest
import websockets

from nchat_live.auth import Claims
from nchat_live.config import Settings
from nchat_live.resolvers import lifecycle
from tests.support import NEEDS_REDIS, REDIS_URL, World

from .conftest import Server, open_socket, recv_json, serve
from .test_websocket import CHAT, emit, wait_listening


@pytest.mark.parametrize("bus_url", ["postgres://", pytest.param(REDIS_URL, marks=NEEDS_REDIS)],
                         ids=["postgres", "redis"])
async def test_event_committed_on_one_server_reaches_a_subscriber_on_another(
    settings: Settings, world: World, bus_url: str
) -> None:
    shared = settings.model_copy(update={"bus_url": bus_url})
    async with serve(shared) as one, serve(shared) as two:
        ws = await open_socket(two.url(), world.token(world.bob))
        try:
            await ws.send(json.dumps({"type": "subscribe", "id": "1",
                                      "payload": {"query": CHAT, "variables": {"s": world.public_stream}}}))
            await wait_listening(two, 1)
            big = "x" * 9000  # over NOTIFY's limit
            await emit(one, "chat.message", {"stream_id": world.public_stream, "channel_id": world.public_channel,
                                             "id": "m", "user_id": world.bob, "content": big})
            got = await recv_json(ws)
            assert got["payload"]["data"]["chatEvents"]["content"] == big
        finally:
            await ws.close()


async def test_stalled_client_is_dropped_and_readers_get_every_message(
    settings: Settings, world: World
) -> None:
    async with serve(settings) as server:
        server.runtime.ws_limits.send_queue = 64
        query = {"query": CHAT, "variables": {"s": world.public_stream}}
        # A tiny receive buffer, max_queue=1 and never reading: this client stops taking frames
        # off the socket, so the server's sends to it block and its queue fills.
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", server.port))
        # Anonymous like the readers: it is a member of their shared execution, which must not
        # wait for it either.
        stalled = await open_socket(server.url(), None, max_queue=1, sock=sock, compression=None)
        # Fifty subscriptions of the same chat: the stalled socket's kernel buffers fill fifty
        # times faster than a reader's, without loading the readers.
        for n in range(50):
            await stalled.send(json.dumps({"type": "subscribe", "id": f"s{n}", "payload": query}))
        readers = await asyncio.gather(*(open_socket(server.url(), None) for _ in range(100)))
        for ws in readers:
            await ws.send(json.dumps({"type": "subscribe", "id": "r", "payload": query}))
        await wait_listening(server, 150)
        messages = 100
        # 50 x 100 x 2 KB = 10 MB, uncompressed, for the stalled socket: frames go straight to a
        # socket whose buffers have room (websocket.py), so it is dropped only once the kernel's
        # send buffer (tcp_wmem, up to 4 MiB) and the transport's are full and its queue overflows.
        content = "y" * 2000

        async def read_all(ws: websockets.ClientConnection) -> int:
            n = 0
            while n < messages:
                msg = await recv_json(ws, within=10)
                assert msg["type"] == "next", msg
                n += 1
            return n

        readers_done = asyncio.gather(*(read_all(ws) for ws in readers))
        started = time.monotonic()
        base = {"stream_id": world.public_stream, "channel_id": world.public_channel, "user_id": world.bob}
        for i in range(messages):
            await server.runtime.bus.publish("chat.message", {**base, "id": str(i), "content": content})
            if i % 10 == 9:
                # About 500 messages a second: a busy chat, not one burst.
                await asyncio.sleep(0.02)
        counts = await asyncio.wait_for(readers_done, 20)
        elapsed = time.monotonic() - started
        assert counts == [messages] * 100
        assert elapsed < 10, f"readers took {elapsed:.1f}s"
        for _ in range(100):
            if server.runtime.bus_stats.dropped["slow_consumer"]:
                break
            await asyncio.sleep(0.05)
        assert server.runtime.bus_stats.dropped["slow_consumer"] == 1
        stalled.transport.abort()
        await asyncio.gather(*(ws.close() for ws in readers))


async def test_viewer_whose_socket_closes_is_counted_as_left(
    server: Server, world: World, settings: Settings
) -> None:
    async with server.runtime.database.session(Claims.service()) as s:
        await lifecycle.transition(s, world.public_stream, lifecycle.LIVE)
    watcher = await open_socket(server.url(), world.token(world.bob))
    counter = await open_socket(server.url(), world.token(world.alice))
    await counter.send(json.dumps({"type": "subscribe", "id": "c", "payload": {
        "query": "subscription($s: ID!) { viewerCount(streamId: $s) { count } }",
        "variables": {"s": world.public_stream}}}))
    assert (await recv_json(counter))["payload"]["data"]["viewerCount"]["count"] == 0
    await watcher.send(json.dumps({"type": "subscribe", "id": "w", "payload": {
        "query": "subscription($s: ID!) { watchStream(streamId: $s) { count } }",
        "variables": {"s": world.public_stream}}}))
    assert (await recv_json(watcher))["payload"]["data"]["watchStream"]["count"] == 1
    assert (await recv_json(counter, within=3))["payload"]["data"]["viewerCount"]["count"] == 1
    closed_at = time.monotonic()
    await watcher.close()
    # Counts go out at most once a second; the leave itself is immediate.
    assert (await recv_json(counter, within=3))["payload"]["data"]["viewerCount"]["count"] == 0
    assert time.monotonic() - closed_at < 3
    async with server.runtime.database.session(Claims.service()) as s:
        left = await s.fetchval("SELECT left_at IS NOT NULL FROM nchat_stream_viewers WHERE stream_id = $1 "
                                "AND user_id = $2", world.public_stream, world.bob)
    assert left is True
    await counter.close()
