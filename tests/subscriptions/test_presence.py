"""Presence: a `watchStream` subscription is a viewer session, counted in `nchat_viewers`."""

from __future__ import annotations

import asyncio
import json

from prometheus_client import REGISTRY

from nchat_live.auth import Claims
from nchat_live.resolvers import lifecycle
from tests.support import World

from .conftest import Server, open_socket, recv_json


def viewers() -> float:
    return REGISTRY.get_sample_value("nchat_viewers") or 0.0


async def until(predicate: object, within: float = 5.0) -> bool:
    assert callable(predicate)
    deadline = asyncio.get_running_loop().time() + within
    while asyncio.get_running_loop().time() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.02)
    return bool(predicate())


async def test_the_viewers_gauge_counts_open_viewer_sessions(server: Server, world: World) -> None:
    async with server.runtime.database.session(Claims.service()) as s:
        await lifecycle.transition(s, world.public_stream, lifecycle.LIVE)
    before = viewers()
    watcher = await open_socket(server.url(), world.token(world.bob))
    await watcher.send(json.dumps({"type": "subscribe", "id": "w", "payload": {
        "query": "subscription($s: ID!) { watchStream(streamId: $s) { count } }",
        "variables": {"s": world.public_stream}}}))
    assert (await recv_json(watcher))["payload"]["data"]["watchStream"]["count"] == 1
    assert viewers() == before + 1
    await watcher.send(json.dumps({"type": "complete", "id": "w"}))
    assert await until(lambda: viewers() == before), f"nchat_viewers is {viewers()}, expected {before}"
    await watcher.close()
