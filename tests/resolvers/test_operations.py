"""The operations over HTTP /v1/graphql: camelCase fields, inputs, and errors with extensions.code."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from nchat_live.app import create_app
from nchat_live.config import Settings
from nchat_live.db import Database
from tests.support import World, fold_chat_tallies

from .conftest import go_live


@pytest.fixture(scope="module")
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app: Starlette = create_app(settings.model_copy(update={"media_enabled": False}))
    async with app.router.lifespan_context(app), httpx.AsyncClient(
        transport=httpx.ASGITransport(app), base_url="http://test"
    ) as c:
        yield c


async def gql(client: httpx.AsyncClient, world: World, user: str | None, query: str,
              variables: dict[str, Any] | None = None) -> dict[str, Any]:
    headers = {"authorization": f"Bearer {world.token(user)}"} if user else {}
    response = await client.post("/v1/graphql", json={"query": query, "variables": variables or {}},
                                 headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def code(result: dict[str, Any]) -> str:
    assert "errors" in result, result
    return result["errors"][0]["extensions"]["code"]


CREATE = """mutation($input: CreateStreamInput!) { createStream(input: $input) {
  id status title streamKey whipUrl rtmpUrl playbackUrl ingestUrl chatMode tags } }"""


async def test_create_start_chat_react_end(client: httpx.AsyncClient, db: Database, world: World) -> None:
    created = await gql(client, world, world.alice, CREATE, {"input": {
        "channelId": world.public_channel, "title": "GraphQL", "chatMode": "open", "tags": ["x"],
        "enableQa": True, "slowModeSeconds": 0, "maxResolution": "720p"}})
    stream = created["data"]["createStream"]
    assert stream["status"] == "preparing" and len(stream["streamKey"]) >= 43
    assert stream["whipUrl"] == f"http://testserver/whip/{stream['id']}" == stream["ingestUrl"]
    sid = stream["id"]
    started = await gql(client, world, world.alice, "mutation($id: ID!) { startStream(streamId: $id) { status } }",
                        {"id": sid})
    assert started["data"]["startStream"]["status"] == "live"
    joined = await gql(client, world, None, "mutation($id: ID!) { joinStream(streamId: $id, quality: \"720p\") "
                       "{ sessionId currentViewers } }", {"id": sid})
    assert joined["data"]["joinStream"]["currentViewers"] == 1
    sent = await gql(client, world, world.bob, "mutation($id: ID!) { sendChatMessage(streamId: $id, "
                     "content: \" hello \") { id content isPinned } }", {"id": sid})
    assert sent["data"]["sendChatMessage"]["content"] == "hello"
    reacted = await gql(client, world, world.bob, "mutation($id: ID!) { sendReaction(streamId: $id, emoji: \"🔥\", "
                        "positionX: 10) { emoji positionX } }", {"id": sid})
    assert reacted["data"]["sendReaction"] == {"emoji": "🔥", "positionX": 10.0}
    asked = await gql(client, world, world.bob, "mutation($id: ID!) { askQuestion(streamId: $id, content: \"Q?\") "
                      "{ id upvotes } }", {"id": sid})
    assert asked["data"]["askQuestion"]["upvotes"] == 0
    reported = await gql(client, world, world.alice, "mutation($id: ID!) { reportQualityMetrics(streamId: $id, "
                         "metrics: {bitrateKbps: 2500, fps: 30, resolution: \"720p\"}) { healthScore health } }",
                         {"id": sid})
    assert reported["data"]["reportQualityMetrics"] == {"healthScore": 100, "health": "excellent"}
    await fold_chat_tallies(db)  # the scheduler's tick: the counter trails by at most one
    page = await gql(client, world, None, "query($id: ID!) { chatHistory(streamId: $id, limit: 10) "
                     "{ messages { content } hasMore nextCursor } viewerCount(streamId: $id) "
                     "reactionTotals(streamId: $id) { emoji count } questions(streamId: $id) { content } "
                     "stream(id: $id) { totalChatMessages streamKey } }", {"id": sid})
    assert page["data"]["chatHistory"] == {"messages": [{"content": "hello"}], "hasMore": False, "nextCursor": None}
    assert page["data"]["viewerCount"] == 1 and page["data"]["reactionTotals"] == [{"emoji": "🔥", "count": 1}]
    assert page["data"]["stream"] == {"totalChatMessages": 1, "streamKey": None}
    ended = await gql(client, world, world.alice, "mutation($id: ID!) { endStream(streamId: $id) "
                      "{ status currentViewers durationSeconds } }", {"id": sid})
    assert ended["data"]["endStream"]["status"] == "ended" and ended["data"]["endStream"]["currentViewers"] == 0
    stats = await gql(client, world, world.alice, "query($id: ID!) { streamAnalytics(streamId: $id) "
                      "{ peakConcurrentViewers totalViews topEmojis { emoji } } streamHealth(streamId: $id) "
                      "{ healthScore samples1m } }", {"id": sid})
    assert stats["data"]["streamAnalytics"] == {"peakConcurrentViewers": 1, "totalViews": 1,
                                                "topEmojis": [{"emoji": "🔥"}]}
    assert stats["data"]["streamHealth"]["healthScore"] == 100


@pytest.mark.parametrize(("user", "doc", "expected"), [
    ("bob", "mutation($id: ID!) { startStream(streamId: $id) { status } }", "permission-error"),
    ("alice", "mutation($id: ID!) { endStream(streamId: $id) { status } }", "invalid-transition"),
    ("bob", "mutation($id: ID!) { sendChatMessage(streamId: $id, content: \"hi\") { id } }", "stream-not-live"),
    ("bob", "mutation($id: ID!) { sendReaction(streamId: $id, emoji: \"💩\") { id } }", "invalid-emoji"),
    (None, "mutation($id: ID!) { sendChatMessage(streamId: $id, content: \"hi\") { id } }", "access-denied"),
    ("bob", "query($id: ID!) { streamAnalytics(streamId: $id) { totalViews } }", "permission-error"),
    ("carol", "mutation($id: ID!) { joinStream(streamId: $id) { sessionId } }", "stream-not-live"),
])
async def test_errors_carry_their_code(
    client: httpx.AsyncClient, world: World, user: str | None, doc: str, expected: str
) -> None:
    result = await gql(client, world, getattr(world, user) if user else None, doc, {"id": world.public_stream})
    assert code(result) == expected
    assert not any((result.get("data") or {}).values())


async def test_bad_input_is_validation_failed_and_changes_nothing(
    client: httpx.AsyncClient, db: Database, world: World
) -> None:
    await go_live(db, world.public_stream)
    result = await gql(client, world, world.bob, "mutation($id: ID!) { sendChatMessage(streamId: $id, content: $c) "
                       "{ id } }".replace("$c", '"' + "x" * 501 + '"'), {"id": world.public_stream})
    assert code(result) == "validation-failed" and "at most 500" in result["errors"][0]["message"]
    history = await gql(client, world, world.bob, "query($id: ID!) { chatHistory(streamId: $id) "
                        "{ messages { id } } }", {"id": world.public_stream})
    assert history["data"]["chatHistory"]["messages"] == []
    bad = await gql(client, world, world.alice, CREATE, {"input": {"channelId": world.public_channel, "title": "x",
                                                                   "chatMode": "nope"}})
    assert code(bad) == "validation-failed"
