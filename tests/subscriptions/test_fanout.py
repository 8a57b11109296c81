"""Shared event subscriptions: one execution per document, variables and visibility."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from nchat_live.subscriptions.transport import fanout
from nchat_live.subscriptions.transport.protocols import Protocol
from tests.support import World

from .conftest import Server, open_socket, recv_json
from .test_websocket import CHAT, emit, wait_listening


async def wait_listeners(server: Server, count: int) -> None:
    for _ in range(200):
        if server.runtime.bus_stats.listeners == count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{server.runtime.bus_stats.listeners} bus listeners, expected {count}")


async def test_equal_subscriptions_share_one_listener_and_visibility_never_mixes(
    server: Server, world: World
) -> None:
    listeners, subscribers = server.runtime.bus_stats.listeners, server.runtime.bus_stats.subscribers
    tokens = [world.token(world.alice), world.token(world.alice), world.token(world.bob), None, None]
    sockets = [await open_socket(server.url(), token) for token in tokens]
    # The legacy protocol and another operation id share the execution, not the frame.
    legacy = await open_socket(server.url(), None, "graphql-ws")
    query = {"query": CHAT, "variables": {"s": world.public_stream}}
    try:
        for ws in sockets:
            await ws.send(json.dumps({"type": "subscribe", "id": "1", "payload": query}))
        await legacy.send(json.dumps({"type": "start", "id": "legacy", "payload": query}))
        await wait_listening(server, subscribers + 6)
        # alice, bob and anonymous: three visibility keys, three executions.
        await wait_listeners(server, listeners + 3)
        base = {"stream_id": world.public_stream, "channel_id": world.public_channel, "user_id": world.bob}
        for i in range(3):
            await emit(server, "chat.message", {**base, "id": f"f{i}", "content": f"m{i}"})
        for ws in sockets:
            got = [await recv_json(ws) for _ in range(3)]
            assert [(m["type"], m["id"], m["payload"]["data"]["chatEvents"]["id"]) for m in got] == [
                ("next", "1", "f0"), ("next", "1", "f1"), ("next", "1", "f2")]
        got = [await recv_json(legacy) for _ in range(3)]
        assert [(m["type"], m["id"]) for m in got] == [("data", "legacy")] * 3

        # The socket that started the anonymous group leaves; the group goes on for the others.
        await sockets[3].close()
        await wait_listening(server, subscribers + 5)
        await emit(server, "chat.message", {**base, "id": "after", "content": "still here"})
        for ws in [*sockets[:3], sockets[4], legacy]:
            assert (await recv_json(ws))["payload"]["data"]["chatEvents"]["id"] == "after"

        # Stopping every member of a group ends its execution and its bus listener.
        await sockets[2].send(json.dumps({"type": "complete", "id": "1"}))
        await wait_listeners(server, listeners + 2)
    finally:
        await asyncio.gather(*(ws.close() for ws in [*sockets, legacy]))
    await wait_listeners(server, listeners)
    assert not server.runtime.shared_feeds.groups


async def test_a_denied_group_fails_every_member_and_is_not_kept(server: Server, world: World) -> None:
    outsiders = [await open_socket(server.url(), world.token(world.carol)) for _ in range(2)]
    query = {"query": CHAT, "variables": {"s": world.private_stream}}
    try:
        for ws in outsiders:
            await ws.send(json.dumps({"type": "subscribe", "id": "x", "payload": query}))
        for ws in outsiders:
            denied = await recv_json(ws)
            assert denied["type"] == "error" and denied["id"] == "x"
            assert denied["payload"][0]["extensions"]["code"] == "stream-not-found"
        assert not server.runtime.shared_feeds.groups
        # The id is free again: the failed operation is forgotten on each socket.
        await outsiders[0].send(json.dumps({"type": "subscribe", "id": "x", "payload": query}))
        assert (await recv_json(outsiders[0]))["payload"][0]["extensions"]["code"] == "stream-not-found"
    finally:
        await asyncio.gather(*(ws.close() for ws in outsiders))


async def test_each_event_is_encoded_once_and_written_in_order_without_a_task_per_subscriber(
    server: Server, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """30 subscribers, 20 events: 20 encodings and 20 frames, not 600; every socket in order."""
    encoded: list[str] = []
    framed: list[str] = []
    real_dumps, real_frame = fanout._dumps, Protocol.frame

    def dumps(value: Any) -> str:
        encoded.append("x")
        return real_dumps(value)

    def frame(self: Protocol, op_id: str, payload_json: str) -> str:
        framed.append(op_id)
        return real_frame(self, op_id, payload_json)

    monkeypatch.setattr(fanout, "_dumps", dumps)
    monkeypatch.setattr(Protocol, "frame", frame)
    subscribers = server.runtime.bus_stats.subscribers
    sockets = [await open_socket(server.url(), None) for _ in range(30)]
    query = {"query": CHAT, "variables": {"s": world.public_stream}}
    try:
        for ws in sockets:
            await ws.send(json.dumps({"type": "subscribe", "id": "1", "payload": query}))
        await wait_listening(server, subscribers + 30)
        direct = server.runtime.bus_stats.direct_sends
        base = {"stream_id": world.public_stream, "channel_id": world.public_channel, "user_id": world.bob}
        for i in range(20):
            await server.runtime.bus.publish("chat.message", {**base, "id": f"o{i}", "content": f"m{i}"})
        for ws in sockets:
            got = [(await recv_json(ws))["payload"]["data"]["chatEvents"]["content"] for _ in range(20)]
            assert got == [f"m{i}" for i in range(20)]
        assert len(encoded) == 20 and len(framed) == 20, (len(encoded), len(framed))
        # Readers that keep up are written to straight from the shared execution.
        assert server.runtime.bus_stats.direct_sends - direct == 600
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets))
