"""A viewer session outlives a database restart: its heartbeats (websocket presence and WHEP share
them) miss a beat while the database is away and go on after. They stopped at the first failure, so
every viewer of the process expired 30 s after a restart while still watching."""

from __future__ import annotations

import asyncio

import pytest

from nchat_live.auth import Claims
from nchat_live.db import Database
from nchat_live.resolvers.viewers import join_stream
from nchat_live.subscriptions import presence
from tests.support import make_world, private_cluster, set_live, start_cluster


async def last_seen(db: Database, token: str) -> object:
    async with db.session(Claims.service()) as s:
        return await s.fetchval("SELECT last_seen_at FROM nchat_stream_viewers WHERE viewer_session_id = $1", token)


async def test_heartbeats_go_on_after_a_database_restart(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(presence, "HEARTBEAT_S", 0.2)
    async with private_cluster("nchat-presence-pg-") as (server, url):
        db = Database(url, pool_size=2)
        try:
            world = await make_world(db)
            await set_live(db, world.public_stream)
            claims = Claims.user(world.bob)
            async with db.session(claims) as s:
                token = (await join_stream(s, world.public_stream))["session_id"]
            beating = asyncio.create_task(presence.keep_alive(db, claims, token, world.public_stream))
            try:
                await asyncio.sleep(0.5)
                await asyncio.to_thread(server.stop)
                await asyncio.sleep(1.0)  # beats fail: the database is away
                assert not beating.done(), beating
                await asyncio.to_thread(start_cluster, server)
                back = await last_seen(db, token)
                await asyncio.sleep(1.0)
                assert not beating.done(), beating
                assert await last_seen(db, token) > back, "no heartbeat after the restart"
            finally:
                beating.cancel()
        finally:
            await db.close()
