"""POST /v1/graphql answered before the rest of the stack (graphql/http.py `GraphQLPosts`).

A POST with a Content-Length within the limit is answered by the middleware; a chunked one goes
through the router to the same route. Both must give the same status and body for the same request,
keep the request id and the request metrics, and leave a body over the limit to BodyLimitMiddleware.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.types import Send

from nchat_live.graphql import http
from nchat_live.graphql.http import answer_post
from nchat_live.runtime import Runtime
from tests.graphql.conftest import GQL
from tests.support import World, serve_app

QUERY = (b'{"query": "query($c: uuid!) { nchat_channels(where: {id: {_eq: $c}}) { name slug } }", '
         b'"variables": {"c": "%s"}}')


async def _chunked(body: bytes) -> AsyncIterator[bytes]:
    yield body[:7]
    yield body[7:]


def _bodies(cast: World) -> list[bytes]:
    return [
        QUERY % cast.public_channel.encode(),
        QUERY % cast.private_channel.encode(),  # a row the caller may not read: no row
        b'{"query": "{ __typename nchat_streams(limit: 1) { id } }"}',  # the normal path
        b'{"query": "mutation { sendChatMessage(streamId: \\"x\\", content: \\"hi\\") { id } }"}',  # an error
        b"{not json",
        b"[1, 2]",
        b'[' + b",".join([b'{"query": "{ __typename }"}'] * 100) + b"]",  # a batch over the cap
        b'{"query": "{ nchat_streams { nope } }"}',
    ]


async def test_the_middleware_and_the_route_answer_alike(client: httpx.AsyncClient, cast: World,
                                                         gql: GQL) -> None:
    for token in (cast.token(cast.carol), "not-a-token"):
        headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
        for body in _bodies(cast):
            lean = await client.post("/v1/graphql", content=body, headers=headers)
            routed = await client.post("/v1/graphql", content=_chunked(body), headers=headers)
            assert "content-length" in lean.request.headers and "content-length" not in routed.request.headers
            assert (lean.status_code, lean.content) == (routed.status_code, routed.content), body
            assert lean.headers["content-type"] == routed.headers["content-type"] == "application/json"
            assert lean.status_code != 500


async def test_the_middleware_answers_and_keeps_ids_and_metrics(client: httpx.AsyncClient, cast: World,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    routed: list[bool] = []  # per answered POST: did it come through the router (scope["endpoint"])

    async def spy(runtime: Runtime, request: Request, body: bytes) -> tuple[int, bytes]:
        routed.append("endpoint" in request.scope)
        return await answer_post(runtime, request, body)

    monkeypatch.setattr(http, "answer_post", spy)
    headers = {"authorization": f"Bearer {cast.token(cast.bob)}", "content-type": "application/json",
               "x-request-id": "own-id-1"}
    r = await client.post("/graphql", content=QUERY % cast.public_channel.encode(), headers=headers)
    assert r.status_code == 200 and r.json()["data"]["nchat_channels"][0]["name"] == "Public"
    assert r.headers["x-request-id"] == "own-id-1"
    fresh = await client.post("/v1/graphql", content=b"{not json", headers={"content-type": "application/json"})
    assert fresh.status_code == 400 and len(fresh.headers["x-request-id"]) == 32
    chunked = await client.post("/v1/graphql", content=_chunked(b"{not json"),
                                headers={"content-type": "application/json"})
    assert chunked.status_code == 400 and len(chunked.headers["x-request-id"]) == 32
    assert routed == [False, False, True]
    metrics = (await client.get("/metrics")).text
    assert 'nchat_http_requests_total{route="/graphql",status="200"}' in metrics
    assert 'nchat_http_requests_total{route="/v1/graphql",status="400"}' in metrics
    assert 'nchat_http_request_seconds_count{route="/v1/graphql"}' in metrics


async def test_get_and_other_paths_pass_through(client: httpx.AsyncClient) -> None:
    page = await client.get("/v1/graphql")
    assert page.status_code == 200 and "GraphiQL" in page.text
    other = await client.post("/v1/graphql/", content=b"{}", headers={"content-type": "application/json"})
    assert other.status_code != 500


async def test_over_uvicorn_the_answer_is_one_write_with_the_servers_headers(
        app: Starlette, client: httpx.AsyncClient, cast: World, monkeypatch: pytest.MonkeyPatch) -> None:
    written: list[bool] = []
    whole = http._write_whole

    def spy(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> bool:
        written.append(whole(send, status, headers, body))
        return written[-1]

    monkeypatch.setattr(http, "_write_whole", spy)
    headers = {"authorization": f"Bearer {cast.token(cast.carol)}", "content-type": "application/json"}
    async with serve_app(app, lifespan="off", http="httptools") as url, httpx.AsyncClient(base_url=url) as real:
        for body in _bodies(cast):
            over_tcp = await real.post("/v1/graphql", content=body, headers={**headers, "x-request-id": "tcp-1"})
            in_process = await client.post("/v1/graphql", content=body, headers=headers)
            assert (over_tcp.status_code, over_tcp.content) == (in_process.status_code, in_process.content), body
            assert over_tcp.headers["content-type"] == "application/json"
            assert over_tcp.headers["x-request-id"] == "tcp-1"
            assert over_tcp.headers["server"] == "uvicorn" and "date" in over_tcp.headers
        # Keep-alive holds across the answers written whole (one connection for all of them).
        assert len(real._transport._pool.connections) == 1  # type: ignore[attr-defined]
        closing = await real.post("/graphql", content=QUERY % cast.public_channel.encode(),
                                  headers={**headers, "connection": "close"})
        assert closing.status_code == 200 and closing.headers["connection"] == "close"
    # Written whole over uvicorn; over ASGI (the in-process client) the send is not uvicorn's.
    assert written == [True, False] * len(_bodies(cast)) + [True]


async def test_an_unexpected_error_is_a_plain_500_as_the_stack_gives(
        client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
    async def broken(runtime: Runtime, request: Request, body: bytes) -> tuple[int, bytes]:
        raise RuntimeError("boom")

    monkeypatch.setattr(http, "answer_post", broken)
    # httpx's ASGI transport re-raises the app's exception after the response, as a server logs it.
    transport = httpx.ASGITransport(client._transport.app, raise_app_exceptions=False)  # type: ignore[attr-defined]
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as quiet:
        answer = await quiet.post("/v1/graphql", content=b"{}", headers={"content-type": "application/json"})
    assert (answer.status_code, answer.text) == (500, "Internal Server Error")
    assert answer.headers["content-type"] == "text/plain; charset=utf-8"


@pytest.mark.parametrize("body", [
    b'{"query": "{ x }", "variables": {"n": 123456789012345678901234567890}}',  # past 64 bits
    b'{"query": "{ x }", "variables": {"f": NaN}}',
    b'\xef\xbb\xbf{"query": "{ x }"}',  # a UTF-8 byte order mark
    b'{"query": "\\ud800"}',  # a lone surrogate
    b"[" * 300 + b"]" * 300,  # nested past orjson's 255
])
async def test_bodies_orjson_refuses_decode_as_the_standard_decoder_does(client: httpx.AsyncClient,
                                                                         body: bytes) -> None:
    assert http._loads(body) == json.loads(body)
    headers = {"content-type": "application/json"}
    lean = await client.post("/v1/graphql", content=body, headers=headers)
    routed = await client.post("/v1/graphql", content=_chunked(body), headers=headers)
    assert (lean.status_code, lean.content) == (routed.status_code, routed.content)
    assert lean.status_code == 200  # decoded, then answered by GraphQL (not a 400 of the decoder)


def test_a_body_neither_decoder_takes_is_worded_by_the_standard_one() -> None:
    with pytest.raises(json.JSONDecodeError, match="Expecting property name enclosed in double quotes"):
        http._loads(b"{not json")


def test_an_unknown_uvicorn_cycle_takes_the_plain_send() -> None:
    """uvicorn is not pinned: a cycle of its httptools module without the attributes the one-write answer
    uses (a release that renamed one) gets False, so the normal send answers, rather than an error."""
    renamed = type("RequestResponseCycle", (), {"__module__": http._HTTPTOOLS, "response_started": False,
                                                "send": lambda self, message: None})
    cycle = renamed()
    assert http._write_whole(cycle.send, 200, [(b"x-request-id", b"r1")], b"{}") is False
    assert cycle.response_started is False  # nothing of its state touched
