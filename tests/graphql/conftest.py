"""One app (real Postgres, media off) per test module, driven over ASGI or a real uvicorn."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from nchat_live.app import create_app
from nchat_live.config import Settings
from nchat_live.db import Database
from tests.support import ADMIN_SECRET, World, make_world


@pytest.fixture(scope="module")
async def app(settings: Settings) -> AsyncIterator[Starlette]:
    application = create_app(settings.model_copy(update={"media_enabled": False}))
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture(scope="module")
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://test") as c:
        yield c


@pytest.fixture(scope="module")
async def cast(db: Database) -> World:
    """The module's users, channels and streams (module-scoped, unlike `world`)."""
    return await make_world(db)


class GQL:
    """Posts documents as a given caller and returns the Hasura-shaped JSON."""

    def __init__(self, client: httpx.AsyncClient, world: World) -> None:
        self.client = client
        self.world = world

    async def __call__(
        self, query: str, variables: dict[str, Any] | None = None, *, as_: str | None = None, role: str = "user",
        headers: dict[str, str] | None = None, path: str = "/v1/graphql",
    ) -> dict[str, Any]:
        h = dict(headers or {})
        if as_ == "admin":
            h["x-hasura-admin-secret"] = ADMIN_SECRET
        elif as_ is not None:
            h["authorization"] = f"Bearer {self.world.token(getattr(self.world, as_), role)}"
        response = await self.client.post(path, json={"query": query, "variables": variables}, headers=h)
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture(scope="module")
def gql(client: httpx.AsyncClient, cast: World) -> GQL:
    return GQL(client, cast)


def data(result: dict[str, Any]) -> Any:
    assert "errors" not in result, result
    return result["data"]


def code(result: dict[str, Any]) -> str:
    assert "errors" in result and "data" not in result, result
    return str(result["errors"][0]["extensions"]["code"])


@pytest.fixture(scope="module")
async def chat(db: Database, cast: World) -> dict[str, Any]:
    """Chat, reactions and a recording on the cast's public stream, with known values."""
    from nchat_live.auth import Claims

    async with db.session(Claims.service()) as s:
        await s.fetchval(
            "UPDATE nchat_streams SET tags = '{music,live}', language = 'en', metadata = '{\"mood\": \"calm\", "
            "\"n\": 1}', total_views = 10 WHERE id = $1 RETURNING id", cast.public_stream)
        await s.fetchval(
            "UPDATE nchat_streams SET tags = '{talk}', total_views = 3 WHERE id = $1 RETURNING id",
            cast.private_stream)
        messages = []
        for i, (user, content) in enumerate([
            (cast.bob, "hello world"), (cast.alice, "Hello Bob"), (cast.bob, "second"), (cast.mod, "be nice"),
            (cast.bob, "third one"),
        ]):
            messages.append(str(await s.fetchval(
                "INSERT INTO nchat_stream_chat_messages (stream_id, user_id, content, created_at, is_pinned) "
                "VALUES ($1, $2, $3, now() - make_interval(mins => $4), $5) RETURNING id",
                cast.public_stream, user, content, 10 - i, content == "be nice")))
        for emoji, x, user in (("🔥", 10, cast.bob), ("🔥", 20, cast.alice), ("❤️", 30, cast.bob)):
            await s.fetchval(
                "INSERT INTO nchat_stream_reactions (stream_id, user_id, emoji, position_x) VALUES ($1, $2, $3, $4) "
                "RETURNING id", cast.public_stream, user, emoji, x)
        await s.fetchval("INSERT INTO nchat_stream_chat_messages (stream_id, user_id, content) VALUES ($1, $2, $3) "
                         "RETURNING id", cast.private_stream, cast.alice, "secret chat")
    return {"messages": messages}
