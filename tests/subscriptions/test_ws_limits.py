"""Websockets go through the same GraphQL front door as HTTP: every limit, in both protocols."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from nchat_live.config import Settings
from nchat_live.subscriptions.transport.limits import Limits
from tests.support import ADMIN_SECRET, World

from .conftest import Server, open_socket, recv_json, serve

PROTOCOLS = ["graphql-transport-ws", "graphql-ws"]
START = {"graphql-transport-ws": "subscribe", "graphql-ws": "start"}


@pytest.fixture(scope="module")
async def limited(settings: Settings) -> AsyncIterator[Server]:
    async with serve(settings.model_copy(update={
        "media_enabled": False, "max_query_depth": 6, "introspection_for_all": False, "max_query_aliases": 5,
        "max_query_tokens": 300, "max_query_cost": 100_000, "ws_max_live_queries": 2,
        "ws_max_connections_per_client": 4,
    })) as srv:
        yield srv


async def admin_socket(server: Server, protocol: str) -> Any:
    ws = await websockets.connect(server.url(), subprotocols=[protocol])
    init = {"type": "connection_init", "payload": {"headers": {"x-hasura-admin-secret": ADMIN_SECRET}}}
    await ws.send(json.dumps(init))
    assert (await recv_json(ws))["type"] == "connection_ack"
    return ws


async def ask(ws: Any, protocol: str, query: str, op_id: str | None = None,
              variables: dict[str, Any] | None = None) -> dict[str, Any]:
    op_id = op_id or uuid.uuid4().hex
    await ws.send(json.dumps({"id": op_id, "type": START[protocol],
                              "payload": {"query": query, "variables": variables or {}}}))
    return await recv_json(ws, skip=("ka", "ping", "complete"))


def refusal(message: dict[str, Any]) -> dict[str, Any]:
    """The one error of an `error` message (or of a next/data payload)."""
    payload = message["payload"]
    errors = payload if isinstance(payload, list) else payload["errors"]
    return errors[0]


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_depth_introspection_and_caps_apply(limited: Server, protocol: str) -> None:
    ws = await open_socket(limited.url(), None, protocol)
    try:
        deep = "query { nchat_streams(limit: 1) { " + "channel { streams(limit: 1) { " * 4 + "id" + " } }" * 4 + " } }"
        err = refusal(await ask(ws, protocol, deep))
        assert err["extensions"]["code"] == "validation-failed" and "depth" in err["message"]
        err = refusal(await ask(ws, protocol, "query { __schema { queryType { name } } }"))
        assert err["extensions"]["code"] == "validation-failed"
        aliases = "query { " + " ".join(f"a{i}: nchat_streams(limit: 1) {{ id }}" for i in range(6)) + " }"
        assert refusal(await ask(ws, protocol, aliases))["extensions"]["limit"] == "aliases"
        tokens = "query { nchat_streams(limit: 1) { " + " ".join(["id"] * 300) + " } }"
        assert refusal(await ask(ws, protocol, tokens))["extensions"]["limit"] == "tokens"
        costly = "subscription { nchat_streams { channel { streams { channel { streams { id } } } } } }"
        assert refusal(await ask(ws, protocol, costly))["extensions"]["limit"] == "cost"
        ok = await ask(ws, protocol, "query { nchat_streams(limit: 1) { id } }")
        assert ok["type"] in ("next", "data") and "data" in ok["payload"]
    finally:
        await ws.close()


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_admin_may_introspect_over_websockets(limited: Server, protocol: str) -> None:
    ws = await admin_socket(limited, protocol)
    try:
        answer = await ask(ws, protocol, "query { __schema { queryType { name } } }")
        assert answer["payload"]["data"]["__schema"]["queryType"]["name"] == "query_root"
    finally:
        await ws.close()


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_mutation_document_is_one_transaction(limited: Server, world: World, protocol: str) -> None:
    slug = f"atomic-{uuid.uuid4().hex[:8]}"
    ws = await admin_socket(limited, protocol)
    try:
        mutation = """mutation($slug: String!, $owner: uuid!) {
          a: insert_nchat_channels_one(object: {name: "A", slug: $slug, owner_id: $owner}) { id }
          b: insert_nchat_channels_one(object: {name: "B", slug: $slug, owner_id: $owner}) { id }
        }"""
        answer = await ask(ws, protocol, mutation, variables={"slug": slug, "owner": world.alice})
        assert answer["payload"]["errors"][0]["extensions"]["code"] == "constraint-violation", answer
        check = await ask(ws, protocol, "query($s: String!) { nchat_channels(where: {slug: {_eq: $s}}) { id } }",
                          variables={"s": slug})
        assert check["payload"]["data"]["nchat_channels"] == []  # the first insert was rolled back
    finally:
        await ws.close()


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_live_query_cap_per_connection(limited: Server, protocol: str) -> None:
    ws = await open_socket(limited.url(), None, protocol)
    try:
        for i in range(2):
            first = await ask(ws, protocol, f"subscription {{ nchat_streams(limit: {i + 1}) {{ id }} }}", f"live{i}")
            assert first["type"] in ("next", "data"), first
        over = await ask(ws, protocol, "subscription { nchat_streams(limit: 3) { id } }", "live2")
        assert over["type"] == "error" and over["id"] == "live2"
        assert refusal(over)["extensions"]["code"] == "too-many-operations"
        assert "live queries" in refusal(over)["message"]
    finally:
        await ws.close()


@pytest.fixture
async def capped(settings: Settings) -> AsyncIterator[Server]:
    # A server of its own: the module's server may still be counting the other tests' sockets as open.
    async with serve(settings.model_copy(update={"media_enabled": False, "ws_max_connections_per_client": 4})) as srv:
        yield srv


async def test_connection_cap_per_address(capped: Server) -> None:
    limited = capped
    sockets = [await open_socket(limited.url(), None) for _ in range(4)]
    try:
        extra = await websockets.connect(limited.url(), subprotocols=["graphql-transport-ws"])
        with pytest.raises(ConnectionClosed) as closed:
            await extra.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
        assert "too many connections" in closed.value.rcvd.reason
    finally:
        for ws in sockets:
            await ws.close()
    # Closing frees the address's share (once the server has seen the closes).
    for _ in range(50):
        try:
            again = await open_socket(limited.url(), None)
        except (ConnectionClosed, AssertionError):
            await asyncio.sleep(0.05)
            continue
        await again.close()
        return
    raise AssertionError("the connection cap did not free closed sockets")


def test_websocket_limits_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Limits.from_settings(Settings()) == Limits()
    monkeypatch.setenv("NCHAT_WS_KEEPALIVE_SECONDS", "2.5")
    monkeypatch.setenv("NCHAT_WS_MAX_OPERATIONS", "7")
    monkeypatch.setenv("NCHAT_WS_MAX_MESSAGE_BYTES", "1024")
    monkeypatch.setenv("NCHAT_WS_SEND_QUEUE", "9")
    limits = Limits.from_settings(Settings())
    assert (limits.keepalive_s, limits.max_operations, limits.max_message_bytes, limits.send_queue) == (2.5, 7, 1024, 9)
