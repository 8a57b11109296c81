"""Bad input: each a clear error with the right code, in Hasura's shape, never a traceback."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import pytest
from starlette.applications import Starlette

from nchat_live.app import create_app
from nchat_live.auth import mint_token
from nchat_live.config import Settings
from tests.graphql.conftest import GQL, code, data
from tests.support import JWT_SECRET, World

KEY = "test-secret-key-that-is-long-enough-for-hs256"
STREAMS = "{ nchat_streams(limit: 1) { id } }"


def claims(user: str, default: str = "user", allowed: tuple[str, ...] = ("user",)) -> dict[str, Any]:
    return {"sub": user, "exp": int(time.time()) + 60, "https://hasura.io/jwt/claims": {
        "x-hasura-user-id": user, "x-hasura-default-role": default, "x-hasura-allowed-roles": list(allowed)}}


async def post(client: httpx.AsyncClient, query: str, headers: dict[str, str] | None = None,
               variables: dict[str, Any] | None = None) -> dict[str, Any]:
    response = await client.post("/v1/graphql", json={"query": query, "variables": variables}, headers=headers or {})
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.parametrize(("make_token", "expected", "text"), [
    (lambda u: "not.a.jwt", "invalid-jwt", "Could not verify JWT"),
    (lambda u: jwt.encode(claims(u), None, algorithm="none"), "invalid-jwt", "algorithm 'none'"),
    (lambda u: mint_token(JWT_SECRET, u, ttl_seconds=-30), "invalid-jwt", "JWTExpired"),
    (lambda u: jwt.encode(claims(u), "another-secret-key-that-is-long-enough!!", algorithm="HS256"), "invalid-jwt",
     "Signature verification failed"),
    (lambda u: jwt.encode({"sub": u, "https://hasura.io/jwt/claims": {"x-hasura-default-role": "user"}}, KEY,
                          algorithm="HS256"), "invalid-jwt", "x-hasura-allowed-roles"),
])
async def test_bad_tokens(client: httpx.AsyncClient, cast: World, make_token: Any, expected: str, text: str) -> None:
    result = await post(client, STREAMS, {"authorization": f"Bearer {make_token(cast.bob)}"})
    assert code(result) == expected
    assert text in result["errors"][0]["message"]


async def test_role_outside_allowed_roles_and_bad_admin_secret(client: httpx.AsyncClient, cast: World) -> None:
    token = cast.token(cast.bob)
    denied = await post(client, STREAMS, {"authorization": f"Bearer {token}", "x-hasura-role": "admin"})
    assert code(denied) == "access-denied"
    assert code(await post(client, STREAMS, {"x-hasura-admin-secret": "wrong"})) == "access-denied"
    # x-hasura-role picks among the allowed roles.
    mod_token = jwt.encode(claims(cast.mod, "user", ("user", "moderator")), KEY, algorithm="HS256")
    as_mod = await post(client, "{ nchat_stream_bans(limit: 1) { id } }",
                        {"authorization": f"Bearer {mod_token}", "x-hasura-role": "moderator"})
    # Platform moderators read every ban (other tests in the session may have made some).
    assert "errors" not in as_mod and isinstance(data(as_mod)["nchat_stream_bans"], list)


async def test_validation_errors(gql: GQL) -> None:
    unknown = await gql("{ nchat_streams { nope } }", as_="bob")
    assert code(unknown) == "validation-failed"
    assert unknown["errors"][0]["message"] == "field 'nope' not found in type: 'nchat_streams'"
    assert code(await gql("{ nchat_nothing { id } }", as_="bob")) == "validation-failed"
    wrong_type = await gql("query($l: String) { nchat_streams(limit: $l) { id } }", {"l": "1"}, as_="bob")
    assert code(wrong_type) == "validation-failed"
    wrong_value = await gql("query($l: Int) { nchat_streams(limit: $l) { id } }", {"l": "ten"}, as_="bob")
    assert code(wrong_value) == "validation-failed" and "$l" in wrong_value["errors"][0]["message"]
    negative = await gql("{ nchat_streams(limit: -1) { id } }", as_="bob")
    assert code(negative) == "validation-failed" and "non-negative" in negative["errors"][0]["message"]
    assert code(await gql("{ nchat_streams(offset: -5) { id } }", as_="bob")) == "validation-failed"
    syntax = await gql("{ nchat_streams { id ", as_="bob")
    assert code(syntax) == "validation-failed" and "not a valid graphql query" in syntax["errors"][0]["message"]
    over_http = await gql("subscription { nchat_streams { id } }", as_="bob")
    assert code(over_http) == "validation-failed" and "websocket" in over_http["errors"][0]["message"]
    null_eq = await gql('{ nchat_streams(where: {title: {_eq: null}}) { id } }', as_="bob")
    assert code(null_eq) == "validation-failed"


async def test_deep_queries_are_refused(gql: GQL) -> None:
    deep = "{ nchat_streams { " + "channel { streams { " * 100 + "id" + " } }" * 100 + " } }"
    result = await gql(deep, as_="bob")
    assert code(result) == "validation-failed" and "depth" in result["errors"][0]["message"]
    sixteen = "{ nchat_streams { " + "channel { streams { " * 7 + "id" + " } }" * 7 + " } }"
    assert code(await gql(sixteen, as_="bob")) == "validation-failed"
    # Depth 15 passes the depth limit; its lists need limits to pass the cost limit (test_limits.py).
    fifteen = ("{ nchat_streams(limit: 1) { " + "channel { streams(limit: 2) { " * 6 + "channel { id }"
               + " } }" * 6 + " } }")
    assert "data" in await gql(fifteen, as_="bob")


async def test_http_limits_and_shapes(client: httpx.AsyncClient) -> None:
    big = await client.post("/v1/graphql", content=b'{"query": "' + b" " * 10_000_000 + b'"}',
                            headers={"content-type": "application/json"})
    assert big.status_code == 413 and big.json()["errors"][0]["extensions"]["code"] == "request-too-large"
    not_json = await client.post("/v1/graphql", content=b"{oops", headers={"content-type": "application/json"})
    assert not_json.status_code == 400 and not_json.json()["errors"][0]["extensions"]["code"] == "parse-failed"
    page = await client.get("/v1/graphql", headers={"accept": "text/html"})
    assert page.status_code == 200 and "graphiql" in page.text.lower()
    batch = await client.post("/graphql", json=[{"query": "{ __typename }"}, {"query": "{ nope }"}])
    assert batch.json()[0] == {"data": {"__typename": "query_root"}}
    assert batch.json()[1]["errors"][0]["extensions"]["code"] == "validation-failed"
    missing = await client.post("/graphql", json={"variables": {}})
    assert missing.json()["errors"][0]["extensions"]["code"] == "validation-failed"


@pytest.fixture(scope="module")
async def strict(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """An app with a small row cap and introspection for admins only."""
    app: Starlette = create_app(settings.model_copy(update={
        "media_enabled": False, "max_rows": 1, "introspection_for_all": False}))
    async with app.router.lifespan_context(app), httpx.AsyncClient(
        transport=httpx.ASGITransport(app), base_url="http://test"
    ) as c:
        yield c


async def test_row_cap_clamps_limits(strict: httpx.AsyncClient, cast: World) -> None:
    headers = {"authorization": f"Bearer {cast.token(cast.alice)}"}
    huge = await post(strict, "{ nchat_streams(limit: 1000000000) { id } }", headers)
    assert len(data(huge)["nchat_streams"]) == 1
    assert len(data(await post(strict, STREAMS.replace("(limit: 1)", ""), headers))["nchat_streams"]) == 1


async def test_introspection_can_be_admin_only(strict: httpx.AsyncClient, cast: World) -> None:
    headers = {"authorization": f"Bearer {cast.token(cast.alice)}"}
    refused = await post(strict, "{ __schema { queryType { name } } }", headers)
    assert code(refused) == "validation-failed"
    admin = await post(strict, "{ __schema { queryType { name } } }", {"x-hasura-admin-secret": "test-admin-secret"})
    assert data(admin) == {"__schema": {"queryType": {"name": "query_root"}}}
