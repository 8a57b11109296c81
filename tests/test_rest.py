"""The guide's REST routes: same auth and rules as GraphQL, camelCase JSON, 4xx error bodies."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette

from nchat_live.app import create_app
from nchat_live.auth import Claims
from nchat_live.config import Settings
from nchat_live.db import Database
from nchat_live.graphql import context
from tests.support import World


@pytest.fixture(scope="module")
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app: Starlette = create_app(settings.model_copy(update={"media_enabled": False}))
    async with app.router.lifespan_context(app), httpx.AsyncClient(
        transport=httpx.ASGITransport(app), base_url="http://test"
    ) as c:
        yield c


def auth(world: World, user: str) -> dict[str, str]:
    return {"authorization": f"Bearer {world.token(user)}"}


async def test_guide_flow(client: httpx.AsyncClient, world: World) -> None:
    alice, bob = auth(world, world.alice), auth(world, world.bob)
    r = await client.post("/api/streams/create", headers=alice, json={
        "channelId": world.public_channel, "title": "Test Stream", "description": "Testing live streaming"})
    assert r.status_code == 201, r.text
    stream = r.json()
    sid = stream["id"]
    assert stream["status"] == "preparing" and stream["streamKey"] and stream["rtmpUrl"].startswith("rtmp://")
    assert stream["playbackUrl"].endswith(f"/hls/{sid}/master.m3u8")
    assert (await client.post(f"/api/streams/{sid}/start", headers=alice)).json()["status"] == "live"
    got = (await client.get(f"/api/streams/{sid}")).json()
    assert got["title"] == "Test Stream" and "streamKey" not in got and got["startedAt"]
    live = (await client.get("/api/streams/live", params={"channelId": world.public_channel})).json()
    assert [s["id"] for s in live["streams"]] == [sid]
    hls = (await client.get(f"/api/streams/{sid}/hls")).json()
    assert hls["manifestUrl"] == stream["playbackUrl"]
    assert (await client.get(f"/api/streams/{sid}/viewers")).json() == {"count": 0}
    sent = await client.post(f"/api/streams/{sid}/chat", headers=bob, json={"content": "hello"})
    assert sent.status_code == 201 and sent.json()["content"] == "hello"
    mid = sent.json()["id"]
    pinned = await client.post(f"/api/streams/{sid}/chat/{mid}/pin", headers=alice)
    assert pinned.json()["isPinned"] is True
    history = (await client.get(f"/api/streams/{sid}/chat", params={"limit": 10})).json()
    assert [m["content"] for m in history["messages"]] == ["hello"] and history["pinned"]["id"] == mid
    reacted = await client.post(f"/api/streams/{sid}/reactions", headers=bob, json={"emoji": "🎉", "positionX": 50})
    assert reacted.status_code == 201 and reacted.json()["positionX"] == 50.0
    deleted = await client.delete(f"/api/streams/{sid}/chat/{mid}", headers=bob)
    assert deleted.json()["isDeleted"] is True and deleted.json()["content"] == ""
    ended = await client.post(f"/api/streams/{sid}/end", headers=alice)
    assert ended.json()["status"] == "ended"
    exported = await client.get(f"/api/streams/{sid}/analytics.csv", headers=alice)
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(exported.text)))
    assert ["metric", "total_reactions", "1"] in rows and ["emoji", "🎉", "1"] in rows


async def stored_messages(db: Database, stream: str) -> int:
    async with db.session(Claims.service()) as s:
        return int(await s.fetchval("SELECT count(*) FROM nchat_stream_chat_messages WHERE stream_id = $1", stream))


@pytest.mark.parametrize(("method", "path", "user", "body", "status", "code"), [
    ("POST", "/api/streams/create", "alice", {"channelId": "{public_channel}", "title": ""}, 400, "validation-failed"),
    ("POST", "/api/streams/create", "alice", {"channelId": "{public_channel}", "title": "x", "bogus": 1}, 400,
     "validation-failed"),
    ("POST", "/api/streams/create", "carol", {"channelId": "{public_channel}", "title": "x"}, 403, "permission-error"),
    ("POST", "/api/streams/create", None, {"channelId": "{public_channel}", "title": "x"}, 403, "access-denied"),
    ("POST", "/api/streams/{public_stream}/start", "bob", None, 403, "permission-error"),
    ("POST", "/api/streams/{public_stream}/end", "alice", None, 409, "invalid-transition"),
    ("GET", "/api/streams/{private_stream}", "carol", None, 404, "stream-not-found"),
    ("GET", "/api/streams/not-a-uuid", "alice", None, 400, "validation-failed"),
    ("POST", "/api/streams/{public_stream}/chat", "bob", {"content": "early"}, 409, "stream-not-live"),
    ("POST", "/api/streams/{public_stream}/reactions", "bob", {"emoji": "💩"}, 400, "invalid-emoji"),
    ("GET", "/api/streams/{public_stream}/analytics.csv", "bob", None, 403, "permission-error"),
])
async def test_errors_are_json_with_codes(
    client: httpx.AsyncClient, db: Database, world: World, method: str, path: str, user: str | None,
    body: dict | None, status: int, code: str,
) -> None:
    values = {k: getattr(world, k) for k in ("public_channel", "public_stream", "private_stream")}
    filled = {k: (v.format(**values) if isinstance(v, str) else v) for k, v in (body or {}).items()}
    headers = auth(world, getattr(world, user)) if user else {}
    r = await client.request(method, path.format(**values), headers=headers,
                             json=filled if body is not None else None)
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code and r.json()["error"]["message"]
    assert await stored_messages(db, world.public_stream) == 0


async def test_refused_chat_on_a_live_stream_is_not_stored(client: httpx.AsyncClient, db: Database,
                                                          world: World) -> None:
    await client.post(f"/api/streams/{world.public_stream}/start", headers=auth(world, world.alice))
    r = await client.post(f"/api/streams/{world.public_stream}/chat", headers=auth(world, world.bob),
                          json={"content": "x" * 501})
    assert r.status_code == 400 and r.json()["error"]["code"] == "validation-failed"
    bad = await client.post(f"/api/streams/{world.public_stream}/chat", headers=auth(world, world.bob),
                            content=b"{not json")
    assert bad.status_code == 400
    for i in range(5):
        ok = await client.post(f"/api/streams/{world.public_stream}/chat", headers=auth(world, world.bob),
                               json={"content": f"m{i}"})
        assert ok.status_code == 201
    limited = await client.post(f"/api/streams/{world.public_stream}/chat", headers=auth(world, world.bob),
                                json={"content": "sixth"})
    assert limited.status_code == 429 and limited.json()["error"]["code"] == "rate-limited"
    other = await client.delete(f"/api/streams/{world.private_stream}/chat/00000000-0000-0000-0000-000000000000",
                                headers=auth(world, world.alice))
    assert other.status_code == 404 and other.json()["error"]["code"] == "message-not-found"
    assert await stored_messages(db, world.public_stream) == 5
    bad_token = await client.get(f"/api/streams/{world.public_stream}", headers={"authorization": "Bearer junk"})
    assert bad_token.status_code == 401 and bad_token.json()["error"]["code"] == "invalid-jwt"


async def test_rest_requests_take_the_clients_share_of_the_pool(
    settings: Settings, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A signed-in user with a loop of REST requests held as many connections as it liked (and without the
    # statement timeout): REST now runs in the same per-client share as GraphQL.
    monkeypatch.setattr(context, "SLOT_WAIT_SECONDS", 0.05)
    app: Starlette = create_app(settings.model_copy(update={"media_enabled": False, "db_sessions_per_client": 1}))
    async with app.router.lifespan_context(app), httpx.AsyncClient(
        transport=httpx.ASGITransport(app), base_url="http://test"
    ) as c:
        path = f"/api/streams/{world.public_stream}"
        held = await context.SLOTS.take(f"user:{world.bob}", 1)  # bob's one session is in use
        try:
            refused = await c.get(path, headers=auth(world, world.bob))
            other = await c.get(path, headers=auth(world, world.alice))
        finally:
            context.SLOTS.give(f"user:{world.bob}", 1, held)
        again = await c.get(path, headers=auth(world, world.bob))
    assert refused.status_code == 429, refused.text
    assert refused.json()["error"]["code"] == "too-many-requests"
    assert other.status_code == 200 and again.status_code == 200, (other.text, again.text)
