"""Frames written straight to the transport, several per write (transport/wire.py), over real sockets."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

import websockets

from nchat_live.config import Settings
from nchat_live.subscriptions.transport.wire import text_frame
from tests.support import World

from .conftest import Server, open_socket, recv_json, serve
from .test_fanout import wait_listeners
from .test_websocket import CHAT, wait_listening

VIEWERS = "subscription($s: ID!) { viewerCount(streamId: $s) { count } }"


def test_text_frame_lengths() -> None:
    # The three length encodings of RFC 6455, read back by a real websocket parser below.
    assert text_frame("a") == b"\x81\x01a"
    assert text_frame("b" * 126)[:4] == b"\x81\x7e\x00\x7e"
    assert text_frame("c" * 70000)[:10] == b"\x81\x7f" + (70000).to_bytes(8, "big")


async def test_frames_arriving_together_share_one_write_and_keep_their_order(server: Server, world: World) -> None:
    stats = server.runtime.bus_stats
    subscribers = stats.subscribers
    sockets = [await open_socket(server.url(), None) for _ in range(12)]
    legacy = await open_socket(server.url(), None, "graphql-ws")
    query = {"query": CHAT, "variables": {"s": world.public_stream}}
    writes = server.runtime.ws_writes
    try:
        for ws in sockets:
            await ws.send(json.dumps({"type": "subscribe", "id": "1", "payload": query}))
        await legacy.send(json.dumps({"type": "start", "id": "L", "payload": query}))
        await wait_listening(server, subscribers + 13)
        direct, calls = stats.direct_sends, stats.socket_writes
        # Frames of the next 50 ms share a socket's write; sizes cross the 126-byte and 64 KiB length forms.
        writes.delay_s = 0.05
        base = {"stream_id": world.public_stream, "channel_id": world.public_channel, "user_id": world.bob}
        sizes = [1, 200, 70_000, 5, 300] * 6
        for i, size in enumerate(sizes):
            await server.runtime.bus.publish("chat.message", {**base, "id": f"b{i}", "content": "z" * size})
        for ws in [*sockets, legacy]:
            got = [await recv_json(ws) for _ in sizes]
            assert [(m["payload"]["data"]["chatEvents"]["id"], len(m["payload"]["data"]["chatEvents"]["content"]))
                    for m in got] == [(f"b{i}", size) for i, size in enumerate(sizes)]
        frames = stats.direct_sends - direct
        assert frames == 13 * len(sizes)
        # Thirty events to thirteen sockets in far fewer than 390 writes.
        assert stats.socket_writes - calls <= frames // 3, (stats.socket_writes - calls, frames)

        # The connection's own messages go through the same batches: the pongs, then the close a
        # duplicate id causes (4409), in the order the client caused them.
        writes.delay_s = 0.05
        for n in range(3):
            await sockets[0].send(json.dumps({"type": "ping", "payload": {"n": n}}))
        await sockets[0].send(json.dumps({"type": "subscribe", "id": "1", "payload": query}))
        for n in range(3):
            assert json.loads(await asyncio.wait_for(sockets[0].recv(), 5)) == {"type": "pong", "payload": {"n": n}}
        try:
            await asyncio.wait_for(sockets[0].recv(), 5)
            raise AssertionError("the socket should have closed")
        except websockets.ConnectionClosed as exc:
            assert exc.rcvd is not None and exc.rcvd.code == 4409
    finally:
        writes.delay_s = 0.0
        await asyncio.gather(*(ws.close() for ws in [*sockets, legacy]))


async def test_a_stalled_socket_is_dropped_while_batched_readers_get_everything_in_order(
    settings: Settings, world: World
) -> None:
    async with serve(settings) as server:
        server.runtime.ws_limits.send_queue = 32
        server.runtime.ws_writes.delay_s = 0.005
        query = {"query": CHAT, "variables": {"s": world.public_stream}}
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", server.port))
        stalled = await open_socket(server.url(), None, max_queue=1, sock=sock, compression=None)
        for n in range(40):
            await stalled.send(json.dumps({"type": "subscribe", "id": f"s{n}", "payload": query}))
        readers = [await open_socket(server.url(), None) for _ in range(10)]
        for ws in readers:
            await ws.send(json.dumps({"type": "subscribe", "id": "r", "payload": query}))
        await wait_listening(server, 50)
        messages, content = 150, "y" * 2000
        # 40 x 150 x 2 KB = 12 MB for the stalled socket: more than the kernel's buffers and the transport's
        # high-water mark, so its frames wait, overflow the limit of 32, and it is dropped.

        async def read_all(ws: Any) -> list[str]:
            return [(await recv_json(ws, within=10))["payload"]["data"]["chatEvents"]["id"] for _ in range(messages)]

        reading = asyncio.gather(*(read_all(ws) for ws in readers))
        base = {"stream_id": world.public_stream, "channel_id": world.public_channel, "user_id": world.bob}
        for i in range(messages):
            await server.runtime.bus.publish("chat.message", {**base, "id": str(i), "content": content})
            if i % 10 == 9:
                await asyncio.sleep(0.01)
        got = await asyncio.wait_for(reading, 30)
        assert got == [[str(i) for i in range(messages)]] * 10
        for _ in range(200):
            if server.runtime.bus_stats.dropped["slow_consumer"]:
                break
            await asyncio.sleep(0.05)
        assert server.runtime.bus_stats.dropped["slow_consumer"] == 1
        # Its subscriptions are gone with it; the readers' remain.
        for _ in range(200):
            if server.runtime.bus_stats.subscribers == 10:
                break
            await asyncio.sleep(0.05)
        assert server.runtime.bus_stats.subscribers == 10
        stalled.transport.abort()
        await asyncio.gather(*(ws.close() for ws in readers))


async def test_viewer_counts_are_one_execution_and_a_joiner_starts_from_the_latest(
    server: Server, world: World
) -> None:
    stats = server.runtime.bus_stats
    listeners, subscribers = stats.listeners, stats.subscribers
    first = await open_socket(server.url(), None)
    second = await open_socket(server.url(), None)
    query = {"query": VIEWERS, "variables": {"s": world.public_stream}}
    try:
        await first.send(json.dumps({"type": "subscribe", "id": "v", "payload": query}))
        initial = (await recv_json(first))["payload"]["data"]["viewerCount"]["count"]
        assert isinstance(initial, int)
        await wait_listening(server, subscribers + 1)
        change = {"stream_id": world.public_stream, "count": initial + 7}
        await server.runtime.bus.publish("viewer.count", change)
        assert (await recv_json(first))["payload"]["data"]["viewerCount"]["count"] == initial + 7
        # The second subscriber joins the running execution and starts from its latest count.
        await second.send(json.dumps({"type": "subscribe", "id": "w", "payload": query}))
        assert (await recv_json(second))["payload"]["data"]["viewerCount"]["count"] == initial + 7
        await wait_listening(server, subscribers + 2)
        await wait_listeners(server, listeners + 1)
        await server.runtime.bus.publish("viewer.count", {**change, "count": initial + 9})
        for ws in (first, second):
            assert (await recv_json(ws))["payload"]["data"]["viewerCount"]["count"] == initial + 9
    finally:
        await asyncio.gather(first.close(), second.close())
