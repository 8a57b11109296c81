"""Health, readiness, metrics and request ids on the real app over a real database."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from nchat_live.app import create_app
from nchat_live.config import Settings


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings.model_copy(update={"media_enabled": False}))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c


async def test_health_and_readiness_report_the_database(client: httpx.AsyncClient) -> None:
    health = await client.get("/healthz")
    assert health.status_code == 200 and health.json()["database"] is True
    ready = await client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"]["database"] is True
    assert ready.json()["checks"]["migrations"] is True


async def test_requests_get_an_id_and_are_counted(client: httpx.AsyncClient) -> None:
    own = await client.get("/healthz", headers={"X-Request-Id": "abc123"})
    assert own.headers["x-request-id"] == "abc123"
    fresh = await client.get("/healthz")
    assert len(fresh.headers["x-request-id"]) == 32
    body = (await client.get("/metrics")).text
    assert 'nchat_http_requests_total{route="/healthz",status="200"}' in body


async def test_readiness_fails_when_the_database_is_gone(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"media_enabled": False}))
    async with app.router.lifespan_context(app):
        runtime = app.state.runtime
        real_url = runtime.database.url
        # The next pool (created on first use after close) connects to nothing.
        runtime.database.url = "postgresql://postgres@127.0.0.1:1/none"
        await runtime.database.close()
        try:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
                response = await c.get("/readyz")
            assert response.status_code == 503
            assert response.json()["checks"]["database"] is False
        finally:
            runtime.database.url = real_url
            await runtime.database.close()
