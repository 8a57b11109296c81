"""The issue's bad-input list: each is a protocol error or a close with a reason, and the server
keeps serving everyone else."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from tests.support import World

from .conftest import Server, open_socket, recv_json
from .test_websocket import CHAT, emit, wait_listening


async def close_of(ws: Any) -> tuple[int, str]:
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            await recv_json(ws)
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code, closed.value.rcvd.reason


def sub(op_id: str, query: str = "subscription { streamReminders { streamId } }") -> str:
    return json.dumps({"type": "subscribe", "id": op_id, "payload": {"query": query}})


async def test_bad_input_closes_or_errors_with_a_reason_and_others_keep_being_served(
    server: Server, world: World
) -> None:
    bystander = await open_socket(server.url(), world.token(world.bob))
    before = server.runtime.bus_stats.subscribers
    await bystander.send(json.dumps({"type": "subscribe", "id": "b", "payload": {
        "query": CHAT, "variables": {"s": world.public_stream}}}))
    await wait_listening(server, before + 1)
    url = server.url()

    ws = await open_socket(url, None)
    await ws.send(json.dumps({"type": "shout"}))
    assert await close_of(ws) == (4400, "Unknown message type 'shout'")

    ws = await websockets.connect(url, subprotocols=["graphql-transport-ws"])
    await ws.send(sub("1"))
    code, reason = await close_of(ws)
    assert code == 4401 and reason.startswith("Unauthorized")

    ws = await open_socket(url, None)
    await ws.send(sub("dup"))
    await ws.send(sub("dup"))
    assert await close_of(ws) == (4409, "Subscriber for dup already exists")

    ws = await open_socket(url, None)
    await ws.send(sub("syntax", "subscription { streamReminders { "))
    error = await recv_json(ws)
    assert error["type"] == "error" and error["id"] == "syntax"
    assert error["payload"][0]["extensions"]["code"] == "validation-failed"
    assert "not a valid graphql query" in error["payload"][0]["message"]
    await ws.send(sub("unknown-field", "subscription { nope }"))
    error = await recv_json(ws)
    # The same message as over HTTP (one GraphQL front door): Hasura's wording.
    assert "field 'nope' not found in type: 'subscription_root'" in error["payload"][0]["message"]
    await ws.close()

    ws = await open_socket(url, world.token(world.carol))

    async def send_all() -> None:
        for n in range(10_000):
            await ws.send(sub(f"s{n}"))

    sender = asyncio.create_task(send_all())
    refused = 0
    while refused < 10_000 - 200:
        message = await recv_json(ws)
        assert message["type"] == "error", message
        assert message["payload"][0]["extensions"]["code"] == "too-many-operations"
        refused += 1
    await sender
    await ws.close()

    ws = await open_socket(url, None)
    await ws.send(json.dumps({"type": "ping", "payload": {"blob": "z" * 1_000_000}}))
    code, reason = await close_of(ws)
    assert code == 1009 and "limit is" in reason

    legacy = await open_socket(url, None, protocol=None)
    await legacy.send(json.dumps({"type": "start", "id": "x", "payload": {"query": "subscription {"}}))
    error = await recv_json(legacy)
    assert error["type"] == "error" and error["id"] == "x"
    await legacy.send("not json")
    error = await recv_json(legacy)
    assert error["type"] == "error" and "Invalid message" in error["payload"][0]["message"]
    await legacy.close()

    await emit(server, "chat.message", {"stream_id": world.public_stream, "channel_id": world.public_channel,
                                        "id": "after", "content": "still here", "user_id": world.bob})
    got = await recv_json(bystander)
    assert got["payload"]["data"]["chatEvents"]["content"] == "still here"
    await bystander.close()
