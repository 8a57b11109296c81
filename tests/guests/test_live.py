"""The console follows a stream's guests live: the table API's live query over nchat_stream_guests, under the
subscriber's row policies (a real uvicorn, real websockets, real Postgres with RLS, its change triggers)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from nchat_live.auth import Claims
from nchat_live.config import Settings
from nchat_live.db import Database
from tests.subscriptions.conftest import Server, open_socket, recv_json, serve
from tests.support import World

from .conftest import INVITE, MUTE, RESPOND

# What the broadcaster's Guests panel subscribes to (web/src/guests.ts): the layout and the guests, one root field.
PANEL = ("subscription($s: uuid!) { nchat_streams_by_pk(id: $s) { program_layout "
         "guests(order_by: {created_at: asc}) { id status muted user { username } } } }")
# What the guest page subscribes to (web/src/guest.ts), and the plain table read an outsider might try.
MINE = ("subscription($u: uuid!) { nchat_stream_guests(where: {user_id: {_eq: $u}, status: {_in: [\"invited\", "
        "\"accepted\"]}}) { id status stream { title status } } }")
TABLE = ("subscription($s: uuid!) { nchat_stream_guests(where: {stream_id: {_eq: $s}}, order_by: {created_at: asc}) "
         "{ id status muted } }")


@pytest.fixture(scope="module")
async def server(settings: Settings) -> AsyncIterator[Server]:
    async with serve(settings.model_copy(update={"media_enabled": False})) as srv:
        yield srv


class Subscription:
    """One graphql-transport-ws subscription on its own socket."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws

    @classmethod
    async def open(cls, server: Server, token: str | None, query: str, **variables: Any) -> Subscription:
        ws = await open_socket(server.url(), token)
        await ws.send(json.dumps({"type": "subscribe", "id": "1",
                                  "payload": {"query": query, "variables": variables}}))
        return cls(ws)

    async def next(self, within: float = 5.0) -> dict[str, Any]:
        message = await recv_json(self.ws, within)
        assert message["type"] == "next", message
        payload: dict[str, Any] = message["payload"]
        return payload

    async def until(self, check: Any, within: float = 10.0) -> dict[str, Any]:
        """The first pushed result for which `check(data)` holds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            payload = await self.next(max(0.1, deadline - loop.time()))
            assert "errors" not in payload, payload
            if check(payload["data"]):
                return payload["data"]

    async def silent(self, seconds: float) -> None:
        """Nothing pushed for `seconds`."""
        try:
            message = await recv_json(self.ws, seconds)
        except TimeoutError:
            return
        raise AssertionError(f"pushed {message}")

    async def close(self) -> None:
        await self.ws.close()


async def gql(server: Server, world: World, user: str, query: str, **variables: Any) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as http:
        response = await http.post("/v1/graphql", json={"query": query, "variables": variables},
                                   headers={"Authorization": f"Bearer {world.token(user)}"})
    body: dict[str, Any] = response.json()
    assert response.status_code == 200 and "errors" not in body, body
    return body["data"]


async def test_the_owner_sees_guests_change_live_and_an_outsider_gets_nothing(server: Server, world: World) -> None:
    sid = world.public_stream
    owner = await Subscription.open(server, world.token(world.alice), PANEL, s=sid)
    outsider = await Subscription.open(server, world.token(world.carol), TABLE, s=sid)
    # Carol reads the stream (public) but none of its guests, on the relationship as on the table.
    outsider_panel = await Subscription.open(server, world.token(world.carol), PANEL, s=sid)
    guest = await Subscription.open(server, world.token(world.bob), MINE, u=world.bob)
    subs = [owner, outsider, outsider_panel, guest]
    try:
        first = await owner.until(lambda d: d["nchat_streams_by_pk"] is not None)
        assert first["nchat_streams_by_pk"]["guests"] == []
        assert (await outsider.next())["data"] == {"nchat_stream_guests": []}
        assert (await outsider_panel.next())["data"]["nchat_streams_by_pk"]["guests"] == []
        assert (await guest.next())["data"] == {"nchat_stream_guests": []}

        gid = (await gql(server, world, world.alice, INVITE, s=sid, u=world.bob))["inviteGuest"]["id"]
        seen = await owner.until(lambda d: d["nchat_streams_by_pk"]["guests"] != [], within=5)
        bob = (await gql(server, world, world.alice, "query($u: uuid!) { nchat_users_by_pk(id: $u) { username } }",
                         u=world.bob))["nchat_users_by_pk"]["username"]
        assert seen["nchat_streams_by_pk"]["guests"] == [
            {"id": gid, "status": "invited", "muted": False, "user": {"username": bob}}]
        invited = await guest.until(lambda d: d["nchat_stream_guests"] != [], within=5)
        assert [(r["id"], r["status"]) for r in invited["nchat_stream_guests"]] == [(gid, "invited")]

        await gql(server, world, world.bob, RESPOND, g=gid, a=True)
        await owner.until(lambda d: d["nchat_streams_by_pk"]["guests"][0]["status"] == "accepted", within=5)
        await guest.until(lambda d: d["nchat_stream_guests"][0]["status"] == "accepted", within=5)
        await gql(server, world, world.alice, MUTE, g=gid, m=True)
        await owner.until(lambda d: d["nchat_streams_by_pk"]["guests"][0]["muted"] is True, within=5)

        # Three changes went by: the outsider was never pushed a row (a result that stays [] is not re-sent).
        await outsider.silent(0.5)
        await outsider_panel.silent(0.1)
    finally:
        for sub in subs:
            await sub.close()


async def test_anonymous_has_no_guest_table_to_subscribe_to(server: Server, world: World) -> None:
    sub = await Subscription.open(server, None, TABLE, s=world.public_stream)
    try:
        message = await recv_json(sub.ws)
        assert message["type"] == "error", message
        assert message["payload"][0]["extensions"]["code"] == "validation-failed"
    finally:
        await sub.close()


async def test_guest_rows_are_read_as_a_set_not_a_call_per_row(db: Database, world: World) -> None:
    """0021: the read policy probes nchat.managed_streams() as one hashed set per statement; 0019's
    can_manage_stream(stream_id) ran a definer function for every row."""
    async with db.session(Claims.user(world.alice)) as session:
        plan = "\n".join(r[0] for r in await session.fetch(
            "EXPLAIN (COSTS OFF) SELECT id FROM nchat_stream_guests WHERE stream_id = $1", world.public_stream))
    assert "hashed SubPlan" in plan and "can_manage_stream" not in plan, plan
