"""Request bodies: every route reads at most its limit and answers 413 before reading more."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette

from nchat_live.app import create_app
from nchat_live.config import Settings
from tests.support import World, serve_app

REST_LIMIT = 64 * 1024
GRAPHQL_LIMIT = 200_000


@pytest.fixture(scope="module")
async def app(settings: Settings) -> AsyncIterator[Starlette]:
    app = create_app(settings.model_copy(update={
        "media_enabled": False, "max_rest_body_bytes": REST_LIMIT, "max_body_bytes": GRAPHQL_LIMIT}))
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture(scope="module")
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://test") as c:
        yield c


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


async def test_rest_body_over_the_limit_is_413_before_auth(client: httpx.AsyncClient, world: World) -> None:
    # Anonymous, as in the report: the size is refused before anything else is looked at.
    r = await client.post(f"/api/streams/{world.public_stream}/chat", content=b"x" * (REST_LIMIT + 1),
                          headers={"content-type": "application/json"})
    assert r.status_code == 413
    error = r.json()["error"]
    assert error["code"] == "request-too-large" and error["extensions"]["limitBytes"] == REST_LIMIT
    assert str(REST_LIMIT) in error["message"]


async def test_rest_body_within_the_limit_still_works(client: httpx.AsyncClient, world: World) -> None:
    r = await client.post(f"/api/streams/{world.public_stream}/chat", json={"content": "hi"})
    assert r.status_code != 413  # anonymous: refused for who it is, not for its size


async def test_graphql_body_over_the_limit_is_413(client: httpx.AsyncClient) -> None:
    for path in ("/v1/graphql", "/graphql"):
        r = await client.post(path, content=b"{" + b" " * GRAPHQL_LIMIT + b"}",
                              headers={"content-type": "application/json"})
        assert r.status_code == 413
        extensions = r.json()["errors"][0]["extensions"]
        assert extensions["code"] == "request-too-large" and extensions["limitBytes"] == GRAPHQL_LIMIT
    ok = await client.post("/v1/graphql", json={"query": "{ __typename }"})
    assert ok.status_code == 200 and ok.json()["data"] == {"__typename": "query_root"}


async def test_chunked_body_without_content_length_is_counted(client: httpx.AsyncClient, world: World) -> None:
    async def body() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b"y" * (REST_LIMIT // 4)

    r = await client.post(f"/api/streams/{world.public_stream}/chat", content=body())
    assert r.status_code == 413 and r.json()["error"]["code"] == "request-too-large"

    async def small() -> AsyncIterator[bytes]:
        yield b'{"content": '
        yield b'"hi"}'

    r = await client.post(f"/api/streams/{world.public_stream}/chat", content=small())
    assert r.status_code != 413


async def test_get_is_untouched(client: httpx.AsyncClient, world: World) -> None:
    r = await client.get(f"/api/streams/{world.public_stream}")
    assert r.status_code == 200


async def _chunked_upload(url: str, path: str, total: int) -> tuple[int, bytes]:
    """POST `total` bytes chunked, reading the answer while sending; stops sending once it arrives.
    Returns (bytes sent, the answer's head and body)."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(f"POST {path} HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\n"
                 "transfer-encoding: chunked\r\n\r\n".encode())
    answer = asyncio.create_task(reader.read(65536))
    chunk = b"z" * (256 * 1024)
    frame = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    sent = 0
    try:
        while sent < total and not answer.done():
            writer.write(frame)
            await writer.drain()
            sent += len(chunk)
        got = await asyncio.wait_for(answer, 10)
    except ConnectionError:
        got = await asyncio.wait_for(answer, 10)
    finally:
        writer.close()
    return sent, got


async def test_streamed_50_mb_is_refused_early_and_memory_stays_flat(app: Starlette, world: World) -> None:
    """A real server (uvicorn): a client streams 50 MB chunked; the 413 arrives once the limit is
    passed, the client stops long before the end, and the process does not grow."""
    total = 50 * 1024 * 1024
    before = _rss_bytes()
    async with serve_app(app, lifespan="off") as url:
        started = time.monotonic()
        sent, got = await _chunked_upload(url, f"/api/streams/{world.public_stream}/chat", total)
        assert got.startswith(b"HTTP/1.1 413"), got[:200]
        assert b"request-too-large" in got
        assert sent < total / 4, f"the client sent {sent} bytes before the answer"
        assert time.monotonic() - started < 10
        async with httpx.AsyncClient(base_url=url, timeout=20) as c:
            # A Content-Length over the limit is answered without reading the body; the client,
            # which writes all of it first, still gets the answer.
            big = await c.post("/v1/graphql", content=b"a" * (GRAPHQL_LIMIT * 5))
            assert big.status_code == 413 and big.json()["errors"][0]["extensions"]["code"] == "request-too-large"
            assert (await c.get("/healthz")).status_code == 200
    grown = _rss_bytes() - before
    assert grown < 30 * 1024 * 1024, f"the process grew by {grown} bytes"
