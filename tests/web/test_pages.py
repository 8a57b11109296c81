"""The console's pages and assets as the app serves them (no browser: see tests/e2e for that)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette

from nchat_live.web import STATIC_DIR, web_routes


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=Starlette(routes=web_routes()))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


async def test_every_page_is_served_as_html_without_caching(client: httpx.AsyncClient) -> None:
    for path in ("/console", "/watch/0b5e2f5e-1d7c-4d43-9d7e-5a0f2b1f7c11", "/schedule", "/dashboard/x", "/guest"):
        res = await client.get(path)
        assert res.status_code == 200, path
        assert res.headers["content-type"].startswith("text/html")
        assert res.headers["cache-control"] == "no-cache"
        assert '<script type="module"' in res.text


async def test_page_assets_resolve_and_are_immutable(client: httpx.AsyncClient) -> None:
    html = (await client.get("/console")).text
    assets = re.findall(r'(?:src|href)="(/ui/assets/[^"]+)"', html)
    assert assets, "the built console references no asset"
    for asset in assets:
        res = await client.get(asset)
        assert res.status_code == 200, asset
        assert "immutable" in res.headers["cache-control"]


def test_bundle_is_inside_the_package() -> None:
    # `serve` on a machine with only Python depends on the committed build.
    assert {p.name for p in STATIC_DIR.glob("*.html")} == {
        "console.html", "watch.html", "schedule.html", "dashboard.html", "guest.html",
    }


async def test_missing_asset_is_404_and_root_goes_to_console(client: httpx.AsyncClient) -> None:
    assert (await client.get("/ui/assets/nope.js")).status_code == 404
    res = await client.get("/")
    assert res.status_code == 307 and res.headers["location"] == "/console"
