"""Guest speakers over HTTP /v1/graphql: one app (real Postgres with RLS, media off) per module."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from nchat_live.app import create_app
from nchat_live.auth import GuestTokens, guest_tokens
from nchat_live.config import Settings
from tests.resolvers.conftest import events  # noqa: F401  (the events fixture, shared with the resolvers' tests)
from tests.support import World


@pytest.fixture(scope="module")
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app: Starlette = create_app(settings.model_copy(update={"media_enabled": False}))
    async with app.router.lifespan_context(app), httpx.AsyncClient(
        transport=httpx.ASGITransport(app), base_url="http://test"
    ) as c:
        yield c


@pytest.fixture
def tokens(settings: Settings) -> GuestTokens:
    """The same GuestTokens the app mints with (derived from the same settings)."""
    return guest_tokens(settings.jwt_secret, settings.media_token_secret, settings.guest_token_ttl_seconds)


class Caller:
    """Posts GraphQL documents as one of the world's users (None: anonymous)."""

    def __init__(self, client: httpx.AsyncClient, world: World) -> None:
        self.client = client
        self.world = world

    async def __call__(self, user: str | None, query: str, **variables: Any) -> dict[str, Any]:
        headers = {"authorization": f"Bearer {self.world.token(user)}"} if user else {}
        response = await self.client.post("/v1/graphql", json={"query": query, "variables": variables},
                                          headers=headers)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result


@pytest.fixture
def gql(client: httpx.AsyncClient, world: World) -> Caller:
    return Caller(client, world)


def code(result: dict[str, Any]) -> str:
    assert "errors" in result, result
    value: str = result["errors"][0]["extensions"]["code"]
    return value


INVITE = "mutation($s: ID!, $u: ID!) { inviteGuest(streamId: $s, userId: $u) { id status userId username muted } }"
RESPOND = ("mutation($g: ID!, $a: Boolean!) { respondGuestInvitation(guestId: $g, accept: $a) "
           "{ id status respondedAt } }")
REMOVE = "mutation($g: ID!) { removeGuest(guestId: $g) { id status } }"
LEAVE = "mutation($g: ID!) { leaveGuest(guestId: $g) { id status } }"
MUTE = "mutation($g: ID!, $m: Boolean!) { setGuestMuted(guestId: $g, muted: $m) { id muted } }"
LAYOUT = ("mutation($s: ID!, $l: String!, $f: ID) { setProgramLayout(streamId: $s, layout: $l, focusGuestId: $f) "
          "{ id programLayout programFocus } }")
GUESTS = "query($s: ID!) { streamGuests(streamId: $s) { id userId status muted } }"
MINE = "{ myGuestInvitations { id streamId status streamTitle } }"
TOKEN = "mutation($s: ID!) { guestPublishToken(streamId: $s) { token whipUrl guestId streamId expiresAt } }"
TABLE = "query($s: uuid!) { nchat_stream_guests(where: {stream_id: {_eq: $s}}) { id user_id status } }"
