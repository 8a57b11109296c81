"""Audience analytics: country (bundled data and a MaxMind-format file), device/OS/browser, playback
bitrate; the address kept only as a pseudonym; the distributions in streamAnalytics, CSV and PDF."""

from __future__ import annotations

import csv
import io
import ipaddress
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pypdf
import pytest
from mmdb_writer import MMDBWriter
from netaddr import IPSet
from starlette.applications import Starlette

from nchat_live.app import create_app
from nchat_live.auth import Claims
from nchat_live.config import Settings
from nchat_live.db import Database
from nchat_live.resolvers import audience
from tests.support import World

from .conftest import go_live

IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
          "Version/17.0 Mobile/15E148 Safari/604.1")
WINDOWS_CHROME = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
                  "Chrome/126.0.0.0 Safari/537.36")
IPAD = ("Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 "
        "Mobile/15E148 Safari/604.1")
MAC_FIREFOX = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14.5; rv:127.0) Gecko/20100101 Firefox/127.0"


@pytest.mark.parametrize(("ip", "country"), [
    ("8.8.8.8", "US"), ("81.2.69.142", "GB"), ("133.242.0.3", "JP"), ("193.0.6.139", "NL"),
    ("2001:4860:4860::8888", "US"), ("192.0.2.1", None), ("10.1.2.3", None), ("not-an-ip", None), (None, None),
])
def test_country_from_the_bundled_database(ip: str | None, country: str | None) -> None:
    assert audience.country_of(ip) == country


def test_country_from_a_maxmind_database(tmp_path: Path) -> None:
    writer = MMDBWriter(ip_version=4, database_type="GeoLite2-Country")
    writer.insert_network(IPSet(["8.8.8.0/24"]), {"country": {"iso_code": "FR"}})
    path = tmp_path / "country.mmdb"
    writer.to_db_file(str(path))
    assert audience.country_of("8.8.8.8", path) == "FR"  # the configured file, not the bundled data (US)
    assert audience.country_of("1.1.1.1", path) is None


@pytest.mark.parametrize(("agent", "expected"), [
    (IPHONE, ("mobile", "iOS", "Mobile Safari")),
    (WINDOWS_CHROME, ("desktop", "Windows", "Chrome")),
    (IPAD, ("tablet", "iOS", "Mobile Safari")),
    (MAC_FIREFOX, ("desktop", "Mac OS X", "Firefox")),
    ("Googlebot/2.1 (+http://www.google.com/bot.html)", ("bot", None, "Googlebot")),
    (None, ("other", None, None)),
])
def test_device_from_the_user_agent(agent: str | None, expected: tuple[str, str | None, str | None]) -> None:
    assert audience.device_of(agent) == expected


def test_the_address_is_kept_as_a_pseudonym() -> None:
    one = audience.stored_address("81.2.69.142", store_ip=False, key="k")
    assert one is not None and ipaddress.ip_address(one) in audience.PSEUDONYM_NETWORK
    assert one == audience.stored_address("81.2.69.142", store_ip=False, key="k")
    assert one != audience.stored_address("81.2.69.143", store_ip=False, key="k")
    assert one != audience.stored_address("81.2.69.142", store_ip=False, key="other")
    assert audience.stored_address("81.2.69.142", store_ip=True, key="k") == "81.2.69.142"


@pytest.fixture(scope="module")
async def app(settings: Settings) -> AsyncIterator[Starlette]:
    application: Starlette = create_app(settings.model_copy(update={"media_enabled": False}))
    async with application.router.lifespan_context(application):
        yield application


async def gql(app: Starlette, world: World, query: str, variables: dict[str, Any], *, user: str | None = None,
              ip: str = "127.0.0.1", agent: str | None = None) -> dict[str, Any]:
    headers = {"authorization": f"Bearer {world.token(user)}"} if user else {}
    if agent:
        headers["user-agent"] = agent
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app, client=(ip, 40000)),
                                 base_url="http://test") as client:
        response = await client.post("/v1/graphql", json={"query": query, "variables": variables}, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


JOIN = "mutation($id: ID!, $q: String) { joinStream(streamId: $id, quality: $q) { sessionId } }"
BEAT = ("mutation($s: String!, $q: String, $b: Int, $k: Int) { viewerHeartbeat(sessionId: $s, quality: $q, "
        "bufferingMs: $b, bitrateKbps: $k) { sessionId } }")
ANALYTICS = """query($id: ID!) { streamAnalytics(streamId: $id) { totalViews
  countries { name count } devices { name count } operatingSystems { name count } browsers { name count }
  renditions { name count } bitrateHistogram { name count } bufferingHistogram { name count } } }"""


async def test_sessions_from_several_places_and_devices(app: Starlette, db: Database, world: World) -> None:
    sid = world.public_stream
    await go_live(db, sid)
    viewers = [("81.2.69.142", IPHONE, "480p", 900), ("81.2.69.160", WINDOWS_CHROME, "1080p", 5000),
               ("8.8.8.8", WINDOWS_CHROME, "720p", 2500), ("133.242.0.3", IPAD, "720p", 2800),
               ("192.0.2.7", MAC_FIREFOX, "1080p", 7000)]
    for ip, agent, quality, kbps in viewers:
        joined = await gql(app, world, JOIN, {"id": sid, "q": quality}, ip=ip, agent=agent)
        token = joined["data"]["joinStream"]["sessionId"]
        beat = await gql(app, world, BEAT, {"s": token, "q": quality, "b": 0, "k": kbps}, ip=ip, agent=agent)
        assert "errors" not in beat, beat
    refused = await gql(app, world, BEAT, {"s": token, "k": 2_000_000}, ip=ip, agent=MAC_FIREFOX)
    assert refused["errors"][0]["extensions"]["code"] == "validation-failed"

    async with db.session(Claims.service()) as s:
        stored = await s.fetch("SELECT ip_address::text AS ip, country FROM nchat_stream_viewers WHERE stream_id = $1",
                               sid)
    assert len(stored) == 5
    # No address is kept: only pseudonyms in the documentation prefix, and the countries.
    assert all(ipaddress.ip_interface(r["ip"]).ip in audience.PSEUDONYM_NETWORK for r in stored)
    assert sorted(r["country"] or "-" for r in stored) == ["-", "GB", "GB", "JP", "US"]

    result = await gql(app, world, ANALYTICS, {"id": sid}, user=world.alice)
    data = result["data"]["streamAnalytics"]
    assert data["totalViews"] == 5
    assert data["countries"][0] == {"name": "GB", "count": 2}
    assert {c["name"] for c in data["countries"]} == {"GB", "US", "JP", "unknown"}
    assert data["devices"][0] == {"name": "desktop", "count": 3}
    assert {d["name"]: d["count"] for d in data["devices"]} == {"desktop": 3, "mobile": 1, "tablet": 1}
    assert {b["name"]: b["count"] for b in data["browsers"]}["Chrome"] == 2
    assert {o["name"] for o in data["operatingSystems"]} == {"iOS", "Windows", "Mac OS X"}
    assert {r["name"]: r["count"] for r in data["renditions"]} == {"720p": 2, "1080p": 2, "480p": 1}
    assert {b["name"]: b["count"] for b in data["bitrateHistogram"]} == {
        "<500 kbps": 0, "500-1500 kbps": 1, "1.5-3 Mbps": 2, "3-6 Mbps": 1, "6+ Mbps": 1}
    denied = await gql(app, world, ANALYTICS, {"id": sid}, user=world.bob)
    assert denied["errors"][0]["extensions"]["code"] == "permission-error"

    alice = {"authorization": f"Bearer {world.token(world.alice)}"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://test") as client:
        exported = await client.get(f"/api/streams/{sid}/analytics.csv", headers=alice)
        rows = list(csv.reader(io.StringIO(exported.text)))
        assert ["country", "GB", "2"] in rows and ["device", "tablet", "1"] in rows
        assert ["bitrate", "6+ Mbps", "1"] in rows and ["browser", "Firefox", "1"] in rows
        report = await client.get(f"/api/streams/{sid}/analytics.pdf", headers=alice)
        assert report.status_code == 200 and report.headers["content-type"] == "application/pdf"
        text = "".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(report.content)).pages)
        for words in ("Countries", "GB", "Devices", "tablet", "Average playback bitrate", "total views"):
            assert words in text, words
        bob = await client.get(f"/api/streams/{sid}/analytics.pdf",
                               headers={"authorization": f"Bearer {world.token(world.bob)}"})
        assert bob.status_code == 403 and bob.json()["error"]["code"] == "permission-error"
