"""GraphQL over websockets: both subprotocols, raw and with the gql client, auth, bad input."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import websockets
from gql import Client, gql
from gql.transport.websockets import WebsocketsTransport
from websockets.exceptions import ConnectionClosed

from nchat_live.auth import Claims, mint_token
from tests.support import JWT_SECRET, World, set_live

from .conftest import Server, open_socket, recv_json

CHAT = "subscription($s: ID!) { chatEvents(streamId: $s) { type id userId content isPinned } }"


async def emit(server: Server, event_type: str, payload: dict[str, Any]) -> None:
    async with server.runtime.database.session(Claims.service()) as s:
        s.emit(event_type, payload)


async def wait_listening(server: Server, count: int) -> None:
    """Until `count` subscriptions receive bus events server-side (shared ones count once each)."""
    for _ in range(200):
        if server.runtime.bus_stats.subscribers >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"only {server.runtime.bus_stats.subscribers} subscribers, expected {count}")


@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws", None])
async def test_raw_client_receives_chat_events_in_each_protocol(
    server: Server, world: World, protocol: str | None
) -> None:
    ws = await open_socket(server.url(), world.token(world.bob), protocol)
    start = "subscribe" if protocol == "graphql-transport-ws" else "start"
    data = "next" if protocol == "graphql-transport-ws" else "data"
    try:
        before = server.runtime.bus_stats.subscribers
        await ws.send(json.dumps({"type": start, "id": "1",
                                  "payload": {"query": CHAT, "variables": {"s": world.public_stream}}}))
        await wait_listening(server, before + 1)
        base = {"stream_id": world.public_stream, "channel_id": world.public_channel}
        await emit(server, "chat.message", {**base, "id": "m1", "user_id": world.bob, "content": "hello",
                                            "created_at": "2026-01-01T00:00:00Z", "is_pinned": False})
        await emit(server, "chat.deleted", {**base, "id": "m1", "content": "hello"})
        first = await recv_json(ws)
        second = await recv_json(ws)
        assert first == {"type": data, "id": "1", "payload": {"data": {"chatEvents": {
            "type": "MESSAGE", "id": "m1", "userId": world.bob, "content": "hello", "isPinned": False}}}}
        assert second["payload"]["data"]["chatEvents"]["type"] == "DELETED"
        assert second["payload"]["data"]["chatEvents"]["content"] is None
        assert ws.subprotocol == protocol
    finally:
        await ws.close()


@pytest.mark.parametrize("subprotocol", [WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL,
                                         WebsocketsTransport.APOLLO_SUBPROTOCOL])
async def test_gql_client_subscribes_in_each_protocol(server: Server, world: World, subprotocol: str) -> None:
    transport = WebsocketsTransport(
        url=server.url("/graphql"), init_payload={"headers": {"Authorization": f"Bearer {world.token(world.bob)}"}},
        subprotocols=[subprotocol],
    )
    received: list[dict[str, Any]] = []
    async with Client(transport=transport) as session:
        before = server.runtime.bus_stats.subscribers

        request = gql(CHAT)
        request.variable_values = {"s": world.public_stream}

        async def consume() -> None:
            async for result in session.subscribe(request):
                received.append(result["chatEvents"])
                if len(received) == 2:
                    return

        task = asyncio.create_task(consume())
        await wait_listening(server, before + 1)
        base = {"stream_id": world.public_stream, "channel_id": world.public_channel, "user_id": world.bob}
        await emit(server, "chat.message", {**base, "id": "a", "content": "one", "is_pinned": False})
        await emit(server, "chat.pinned", {**base, "id": "a", "content": "one", "is_pinned": True})
        await asyncio.wait_for(task, 5)
        ping = await session.execute(gql("query { __typename }"))
    assert [r["type"] for r in received] == ["MESSAGE", "PINNED"]
    assert received[1]["isPinned"] is True
    assert ping == {"__typename": ping["__typename"]}


async def test_every_event_type_reaches_its_subscription(server: Server, world: World) -> None:
    sid, base = world.public_stream, {"stream_id": world.public_stream, "channel_id": world.public_channel}
    subscriptions = {
        "status": "subscription($s: ID!) { streamStatus(streamId: $s) { type status previousStatus } }",
        "quality": "subscription($s: ID!) { streamQuality(streamId: $s) { bitrateKbps fps healthScore } }",
        "count": "subscription($s: ID!) { viewerCount(streamId: $s) { count } }",
        "presence": "subscription($s: ID!) { viewerPresence(streamId: $s) { type userId } }",
        "chat": "subscription($s: ID!) { chatEvents(streamId: $s) { type id content } }",
        "reactions": "subscription($s: ID!) { reactions(streamId: $s) { reactions { emoji positionX userId } } }",
        "qa": "subscription($s: ID!) { questions(streamId: $s) { type content status } }",
        "reminders": "subscription { streamReminders { streamId leadMinutes title } }",
    }
    # alice manages the stream: she sees who joins.
    ws = await open_socket(server.url(), world.token(world.alice))
    try:
        before = server.runtime.bus_stats.subscribers
        for name, query in subscriptions.items():
            await ws.send(json.dumps({"type": "subscribe", "id": name,
                                      "payload": {"query": query, "variables": {"s": sid}}}))
        await wait_listening(server, before + len(subscriptions))
        initial = await recv_json(ws)
        assert initial["id"] == "count" and initial["payload"]["data"]["viewerCount"]["count"] == 0
        await asyncio.sleep(0.1)  # viewerPresence checks manager rights after its listener is up
        events = [
            ("stream.started", {"status": "live", "previous_status": "scheduled"}),
            ("stream.ended", {"status": "ended", "previous_status": "live"}),
            ("stream.cancelled", {"status": "cancelled"}), ("stream.failed", {"status": "failed"}),
            ("stream.updated", {"changes": ["title"]}),
            ("quality.update", {"bitrate_kbps": 2500, "fps": 30, "health_score": 97}),
            ("viewer.joined", {"user_id": world.bob}), ("viewer.left", {"user_id": world.bob}),
            ("chat.message", {"id": "c1", "content": "hey", "user_id": world.bob}),
            ("chat.deleted", {"id": "c1"}), ("chat.pinned", {"id": "c2", "content": "pin"}),
            ("chat.unpinned", {"id": "c2"}),
            ("reaction", {"id": "r1", "emoji": "🔥", "position_x": 10.5, "position_y": 20, "user_id": world.bob}),
            ("qa.question", {"id": "q1", "content": "why?", "status": "open"}),
            ("qa.updated", {"id": "q1", "status": "answered"}),
            ("stream.reminder", {"lead_minutes": 15, "user_ids": [world.alice], "title": "soon"}),
            ("stream.reminder", {"lead_minutes": 5, "user_ids": [world.bob], "title": "not for alice"}),
            ("viewer.count", {"count": 3}),
        ]
        for event_type, payload in events:
            await emit(server, event_type, {**base, **payload})
        got: dict[str, list[dict[str, Any]]] = {}
        while sum(len(v) for v in got.values()) < 17:
            message = await recv_json(ws)
            assert message["type"] == "next", message
            got.setdefault(message["id"], []).append(next(iter(message["payload"]["data"].values())))
    finally:
        await ws.close()
    assert [e["type"] for e in got["status"]] == [
        "stream.started", "stream.ended", "stream.cancelled", "stream.failed", "stream.updated"]
    assert got["quality"] == [{"bitrateKbps": 2500.0, "fps": 30.0, "healthScore": 97}]
    assert got["presence"] == [{"type": "JOINED", "userId": world.bob}, {"type": "LEFT", "userId": world.bob}]
    assert [(e["type"], e["content"]) for e in got["chat"]] == [
        ("MESSAGE", "hey"), ("DELETED", None), ("PINNED", "pin"), ("UNPINNED", None)]
    assert got["reactions"] == [{"reactions": [{"emoji": "🔥", "positionX": 10.5, "userId": world.bob}]}]
    assert [(e["type"], e["status"]) for e in got["qa"]] == [("ASKED", "open"), ("UPDATED", "answered")]
    assert got["reminders"] == [{"streamId": sid, "leadMinutes": 15, "title": "soon"}]
    assert got["count"] == [{"count": 3}]


async def test_non_member_gets_nothing_of_a_private_stream(server: Server, world: World) -> None:
    outsider = await open_socket(server.url(), world.token(world.carol))
    member = await open_socket(server.url(), world.token(world.alice))
    try:
        query = {"query": CHAT, "variables": {"s": world.private_stream}}
        await outsider.send(json.dumps({"type": "subscribe", "id": "x", "payload": query}))
        denied = await recv_json(outsider)
        assert denied["type"] == "error"
        assert denied["payload"][0]["extensions"]["code"] == "stream-not-found"
        # A reminder listener is stream-agnostic: the outsider must not get the private one either.
        await outsider.send(json.dumps({"type": "subscribe", "id": "r", "payload": {
            "query": "subscription { streamReminders { streamId } }"}}))
        before = server.runtime.bus_stats.subscribers
        await member.send(json.dumps({"type": "subscribe", "id": "m", "payload": query}))
        await wait_listening(server, before + 1)
        base = {"stream_id": world.private_stream, "channel_id": world.private_channel}
        await emit(server, "chat.message", {**base, "id": "p1", "content": "members only", "user_id": world.alice})
        await emit(server, "stream.reminder", {**base, "lead_minutes": 5, "user_ids": [world.carol, world.alice]})
        got = await recv_json(member)
        assert got["payload"]["data"]["chatEvents"]["content"] == "members only"
        with pytest.raises(TimeoutError):
            await recv_json(outsider, within=0.5)
    finally:
        await outsider.close()
        await member.close()


async def test_bad_tokens_are_refused_in_each_protocol(server: Server, world: World) -> None:
    ws = await websockets.connect(server.url(), subprotocols=["graphql-transport-ws"])
    await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": "Bearer not-a-jwt"}}))
    with pytest.raises(ConnectionClosed) as closed:
        await recv_json(ws)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403
    assert "Could not verify JWT" in closed.value.rcvd.reason

    legacy = await websockets.connect(server.url())
    await legacy.send(json.dumps({"type": "connection_init", "payload": {
        "headers": {"Authorization": f"Bearer {world.token(world.bob)}", "x-hasura-role": "admin"}}}))
    error = await recv_json(legacy)
    assert error["type"] == "connection_error"
    assert "not in allowed roles" in error["payload"]["message"]
    with pytest.raises(ConnectionClosed):
        await recv_json(legacy)


async def test_socket_closes_when_the_token_expires(server: Server, world: World) -> None:
    # 3 s: on a loaded machine the handshake alone has taken over 1 s, and a token expired by then is
    # refused at connection_init (4403) before it could expire on an open socket.
    token = mint_token(JWT_SECRET, world.bob, ttl_seconds=3)
    ws = await open_socket(server.url(), token)
    with pytest.raises(ConnectionClosed) as closed:
        await recv_json(ws, within=8)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
    assert "JWTExpired" in closed.value.rcvd.reason


async def test_keepalive_follows_the_ack(server: Server, world: World) -> None:
    limits = server.runtime.ws_limits
    old, limits.keepalive_s = limits.keepalive_s, 0.1
    try:
        legacy = await websockets.connect(server.url())
        await legacy.send(json.dumps({"type": "connection_init", "payload": {}}))
        kinds = [json.loads(await asyncio.wait_for(legacy.recv(), 2))["type"] for _ in range(3)]
        assert kinds == ["connection_ack", "ka", "ka"]
        await legacy.close()
        modern = await open_socket(server.url(), None)
        ping = json.loads(await asyncio.wait_for(modern.recv(), 2))
        assert ping["type"] == "ping"
        await modern.close()
    finally:
        limits.keepalive_s = old


async def test_a_mutation_is_carried_out_with_its_events_when_its_socket_closes_meanwhile(
    server: Server, world: World
) -> None:
    # Cancelled with the socket, the send committed its message and lost its event: the viewers watching
    # live never saw a message that a reload shows. The publish is slowed here (the real bus, behind a
    # wrapper that waits) so that the socket closes after the commit and before the event is out.
    await set_live(server.runtime.database, world.public_stream)
    database = server.runtime.database
    publish = database.publisher
    assert publish is not None
    publishing = asyncio.Event()

    async def slow_publish(event_type: str, payload: dict[str, Any]) -> None:
        publishing.set()
        await asyncio.sleep(0.5)
        await publish(event_type, payload)

    database.publisher = slow_publish
    try:
        with server.runtime.bus.listen(streams=[world.public_stream], types=["chat.message"]) as listener:
            ws = await open_socket(server.url(), world.token(world.bob))
            await ws.send(json.dumps({"type": "subscribe", "id": "1", "payload": {
                "query": "mutation($s: ID!) { sendChatMessage(streamId: $s, content: \"carried\") { id } }",
                "variables": {"s": world.public_stream}}}))
            await asyncio.wait_for(publishing.wait(), 10)
            await ws.close()
            event = await asyncio.wait_for(listener.get(), 10)
            assert event.payload["content"] == "carried"
    finally:
        database.publisher = publish
