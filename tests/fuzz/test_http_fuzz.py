"""Hostile bytes at every door: WHIP, the REST routes, HLS, GraphQL over HTTP and the RTMP port.

One app with media on (WHIP, HLS and RTMP ingest live in it). Every answer to a malformed request
is a 4xx with a reason (a JSON error with a code and a message), never a 5xx or a traceback, and
after each pass the server is still healthy: /healthz answers 200, a normal query works and a
normal RTMP handshake completes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from aiortc import RTCPeerConnection
from hypothesis import given, note
from hypothesis import strategies as st

from nchat_live.app import create_app
from nchat_live.config import Settings
from nchat_live.db import Database
from nchat_live.runtime import Runtime
from tests.media.rtmp_client import RtmpTestClient
from tests.support import ADMIN_SECRET, World, make_world

from .conftest import FUZZ_HTTP as FUZZ

pytestmark = pytest.mark.slow

class Server:
    def __init__(self, runtime: Runtime, http: httpx.AsyncClient, cast: World, offer: str) -> None:
        self.runtime = runtime
        self.http = http
        self.cast = cast
        self.offer = offer

    @property
    def rtmp_port(self) -> int:
        assert self.runtime.rtmp is not None
        return self.runtime.rtmp.port

    async def still_healthy(self) -> None:
        health = await self.http.get("/healthz")
        assert health.status_code == 200, health.text
        answer = await self.http.post("/v1/graphql", json={
            "query": "query ($id: uuid!) { nchat_streams_by_pk(id: $id) { id title } }",
            "variables": {"id": self.cast.public_stream}})
        assert answer.json() == {"data": {"nchat_streams_by_pk": {
            "id": self.cast.public_stream, "title": "public stream"}}}, answer.text
        client = await asyncio.wait_for(RtmpTestClient.connect(self.rtmp_port), 10)
        client.writer.close()


async def _offer() -> str:
    """A real WebRTC offer (audio and video, sendonly), the seed the SDP garbling starts from."""
    pc = RTCPeerConnection()
    pc.addTransceiver("video", direction="sendonly")
    pc.addTransceiver("audio", direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    sdp = pc.localDescription.sdp
    await pc.close()
    return sdp


@pytest.fixture(scope="module")
async def server(settings: Settings, db: Database, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Server]:
    media = tmp_path_factory.mktemp("fuzz-media")
    # The fuzzer sends thousands of wrong stream keys from one address; the key throttle (tested on its own in
    # tests/media/test_ingest_limits.py) would otherwise lock that address out of the health checks here.
    runtime = Runtime(settings.model_copy(update={"media_dir": media / "live", "recording_dir": media / "rec",
                                                  "ingest_key_failures": 1_000_000,
                                                  "ingest_key_failure_delay_seconds": 0.0}))
    await runtime.start()
    try:
        app = create_app(runtime=runtime)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver",
                                     timeout=30) as http:
            yield Server(runtime, http, await make_world(db), await _offer())
    finally:
        await runtime.stop()


def assert_refused_with_reason(response: httpx.Response) -> None:
    """A 4xx whose body says why: a JSON error with a code and a message, or (a path no route
    matches, answered by the router) a short text such as "Not Found"; never a traceback."""
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:500])
    assert "Traceback" not in response.text, response.text[:2000]
    if not response.headers.get("content-type", "").startswith("application/json"):
        assert response.text.strip(), response.status_code
        return
    body = response.json()
    error = body.get("error") if isinstance(body, dict) else None
    if error is None and isinstance(body, dict) and body.get("errors"):  # GraphQL's shape
        error = {"code": body["errors"][0]["extensions"]["code"], "message": body["errors"][0]["message"]}
    assert isinstance(error, dict) and error.get("code") and error.get("message"), body
    assert error["code"] != "unexpected", body


def assert_no_server_error(response: httpx.Response) -> None:
    assert response.status_code < 500, (response.status_code, response.text[:500])
    if response.status_code >= 400:
        assert_refused_with_reason(response)


# -- WHIP ---------------------------------------------------------------------------------------


@st.composite
def garbled(draw: st.DrawFn, offer: str) -> bytes:
    """The real offer, damaged a few times: lines dropped, repeated, swapped, replaced, cut, mangled."""
    lines = offer.split("\r\n")
    for _ in range(draw(st.integers(1, 4))):
        if not lines:
            break
        i = draw(st.integers(0, len(lines) - 1))
        op = draw(st.sampled_from(["drop", "repeat", "swap", "replace", "cut", "mangle", "recvonly"]))
        if op == "drop":
            del lines[i]
        elif op == "repeat":
            lines.insert(i, lines[i])
        elif op == "swap":
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        elif op == "replace":
            lines[i] = draw(st.text(max_size=40))
        elif op == "cut":
            lines = lines[:i]
        elif op == "mangle":
            line = lines[i]
            k = draw(st.integers(0, len(line)))
            junk = draw(st.sampled_from(["=", ":", " ", "-1", "99999999999", "\x00", "é", ""]))
            lines[i] = line[:k] + junk + line[k:]
        else:
            lines = [x.replace("sendonly", draw(st.sampled_from(["recvonly", "inactive", "bogus"]))) for x in lines]
    return "\r\n".join(lines).encode("utf-8", "surrogatepass")


def whip_bodies(offer: str) -> st.SearchStrategy[bytes]:
    return (garbled(offer) | st.binary(max_size=3000) | st.text(max_size=300).map(str.encode)
            | st.sampled_from([b"", b"v=0", b"v=0\r\n" * 2000, b"\x00" * 512, offer.replace("m=video", "m=text")
                               .replace("m=audio", "m=application").encode(), offer.encode("utf-16")]))


def _whip_draws(server: Server) -> dict[str, st.SearchStrategy[Any]]:
    stream, key = server.cast.public_stream, server.cast.public_key
    auths = st.sampled_from([f"Bearer {key}", f"bearer {key}", "Bearer wrong", "Bearer ", "Basic Zm9vOmJhcg==", "",
                             "Bearer " + "k" * 8000, f"Bearer {key}x", f"Bearer {key[:-1]}", "Bearer \xe9\xff"])
    types = st.sampled_from(["application/sdp", "application/SDP; charset=utf-8", "text/plain", "", "application/json",
                             "multipart/form-data; boundary=x", "application/sdp; charset=utf-16"])
    targets = st.sampled_from([stream, str(uuid.uuid4()), "not-a-uuid", stream.upper(), "{" + stream + "}",
                               stream.replace("-", ""), "%00", "..", "x" * 300])
    return {"body": whip_bodies(server.offer), "auth": auths, "content_type": types, "target": targets}


@FUZZ
@given(data=st.data())
async def test_whip_refuses_garbage_with_reasons(data: st.DataObject, server: Server) -> None:
    draws = _whip_draws(server)
    body = data.draw(draws["body"], "body")
    if data.draw(st.booleans(), "right key, type and stream"):  # half the bodies reach the SDP parser
        auth, content_type, target = f"Bearer {server.cast.public_key}", "application/sdp", server.cast.public_stream
    else:
        auth, content_type = data.draw(draws["auth"], "auth"), data.draw(draws["content_type"], "content_type")
        target = data.draw(draws["target"], "target")
    response = await server.http.post(f"/whip/{target}", content=body,
                                      headers={"content-type": content_type, "authorization": auth.encode("latin-1")})
    note(f"{response.status_code} {response.text[:300]}")
    if response.status_code == 201:  # the damage left a usable offer: a real session; end it
        gone = await server.http.delete(response.headers["location"],
                                        headers={"authorization": f"Bearer {server.cast.public_key}"})
        assert gone.status_code == 200, gone.text
        return
    assert_refused_with_reason(response)


async def test_whip_huge_body_and_unknown_sessions(server: Server) -> None:
    stream, key = server.cast.public_stream, server.cast.public_key
    # Found by a full-size run: without its m=video line the offer's BUNDLE group names a section
    # aiortc made no transport for, and closing that peer connection raised (a 500).
    headless = "\r\n".join(line for line in server.offer.split("\r\n") if not line.startswith("m=video"))
    refused = await server.http.post(f"/whip/{stream}", content=headless,
                                     headers={"content-type": "application/sdp", "authorization": f"Bearer {key}"})
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "bad-sdp", refused.text
    big = await server.http.post(f"/whip/{stream}", content=b"v=0\r\n" + b"a=x\r\n" * 2_000_000,
                                 headers={"content-type": "application/sdp", "authorization": f"Bearer {key}"})
    assert big.status_code == 413 and big.json()["error"]["code"] == "sdp-too-large"
    for method in ("DELETE", "PATCH"):
        for path in (f"/whip/{stream}/nope", f"/whip/{uuid.uuid4()}/{'s' * 200}", "/whip/x/y"):
            response = await server.http.request(method, path, headers={"authorization": f"Bearer {key}"},
                                                 content=b"a=candidate:junk")
            assert response.status_code == 404 and response.json()["error"]["code"] == "session-not-found"
    await server.still_healthy()


# -- REST ---------------------------------------------------------------------------------------

REST_ROUTES = [
    ("POST", "/api/streams/create"), ("GET", "/api/streams/live"), ("GET", "/api/streams/{id}"),
    ("POST", "/api/streams/{id}/start"), ("POST", "/api/streams/{id}/end"), ("GET", "/api/streams/{id}/hls"),
    ("GET", "/api/streams/{id}/viewers"), ("GET", "/api/streams/{id}/chat"), ("POST", "/api/streams/{id}/chat"),
    ("DELETE", "/api/streams/{id}/chat/{msg}"), ("POST", "/api/streams/{id}/chat/{msg}/pin"),
    ("POST", "/api/streams/{id}/reactions"), ("GET", "/api/streams/{id}/analytics.csv"),
]
REST_BODIES = [
    b"", b"{", b"[1,", b"\xff\xfe", b"null", b"[]", b'"x"', b"1e999", b"NaN", b'{"content": "' + b"x" * 100_000 + b'"}',
    b"[" * 50_000 + b"]" * 50_000, b'{"a":' * 20_000 + b"1" + b"}" * 20_000,
    b'{"title": 1, "channelId": [], "content": {}, "emoji": 5, "positionX": "left", "positionY": 1e308, "reason": 7}',
    b'{"title": "t", "channelId": "not-a-uuid", "scheduledAt": "yesterday", "maxResolution": "8k", "tags": "x"}',
    b'{"emoji": "\\ud800", "positionX": -1, "positionY": 1e400, "content": "\\u0000"}',
]
JUNK = st.sampled_from(["", " ", "-1", "0", "1e309", "9" * 30, "null", "NaN", "x" * 2000, "\u0000", "é", "'", "%",
                        "2024-13-45", "{}", "[]"]) | st.text(max_size=20)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**80), 2**80) | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["title", "channelId", "content", "emoji", "positionX", "positionY", "reason", "tags",
                         "scheduledAt", "maxResolution", "isRecorded", "metadata"]) | st.text(max_size=8),
        inner, max_size=5),
    max_leaves=10,
)


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value, allow_nan=True).encode()


def _rest_draws(server: Server) -> dict[str, st.SearchStrategy[Any]]:
    cast = server.cast
    callers = st.sampled_from([
        {}, {"authorization": f"Bearer {cast.token(cast.bob)}"}, {"authorization": f"Bearer {cast.token(cast.alice)}"},
        {"authorization": "Bearer not.a.jwt"}, {"authorization": "Bearer"}, {"x-hasura-admin-secret": "wrong"},
        {"authorization": f"Bearer {cast.token(cast.bob)}", "x-hasura-role": "admin"},
        {"x-hasura-admin-secret": ADMIN_SECRET},
    ])
    ids = st.sampled_from([cast.public_stream, cast.private_stream, str(uuid.uuid4())]) | JUNK
    bodies = json_values.map(_json_bytes) | st.binary(max_size=200) | st.sampled_from(REST_BODIES)
    return {"route": st.sampled_from(REST_ROUTES), "stream": ids, "msg": ids, "body": bodies, "headers": callers,
            "params": st.dictionaries(st.sampled_from(["limit", "before", "channelId"]), JUNK, max_size=3)}


@FUZZ
@given(data=st.data())
async def test_rest_refuses_malformed_json_and_wrong_types(data: st.DataObject, server: Server) -> None:
    d = {name: data.draw(strategy, name) for name, strategy in _rest_draws(server).items()}
    method, template = d["route"]
    path = template.replace("{id}", _segment(d["stream"])).replace("{msg}", _segment(d["msg"]))
    response = await server.http.request(method, path, content=d["body"], params=d["params"],
                                         headers=d["headers"] | {"content-type": "application/json"})
    note(f"{method} {path} -> {response.status_code} {response.text[:300]}")
    assert_no_server_error(response)


async def test_rest_curated_bodies_on_every_route(server: Server) -> None:
    cast = server.cast
    for method, template in REST_ROUTES:
        path = template.replace("{id}", cast.public_stream).replace("{msg}", str(uuid.uuid4()))
        for body in REST_BODIES:
            for headers in ({"authorization": f"Bearer {cast.token(cast.alice)}"}, {}):
                response = await server.http.request(method, path, content=body, headers=headers)
                assert_no_server_error(response)
    await server.still_healthy()


def _segment(value: str) -> str:
    return quote(value, safe="")


# -- HLS ----------------------------------------------------------------------------------------

HLS_NUMBERS = st.sampled_from(["-1", "-0", "1e3", "", "abc", "9999999999", "99999999999999999999", "0x1", " 1",
                               "1.5", "%00", "１", "+1", "1 ", "NaN"]) | st.integers(-(2**64), -1).map(str)


SOME = str(uuid.uuid4())


def _hls_paths(some: str) -> st.SearchStrategy[str]:
    return st.sampled_from([
        f"/hls/{some}/master.m3u8", f"/hls/{some}/720p/index.m3u8", f"/hls/{some}/9999999p/index.m3u8",
        f"/hls/{some}/720p/seg-1.m4s", f"/hls/{some}/720p/init.mp4", "/hls/../../etc/passwd",
        "/hls/%2e%2e/%2e%2e/master.m3u8", f"/hls/{some}/..%2F..%2Fx/index.m3u8", f"/hls/{some}/720p/..%2Fmaster.m3u8",
        "/hls/not-a-uuid/720p/index.m3u8", f"/hls/{some}/thumbnail.jpg", f"/hls/{some}/dvr.m3u8",
        f"/hls/{some}/720p/dvr.m3u8", f"/recordings/{some}/../../../etc/passwd", f"/recordings/{some}/master.m3u8",
        f"/hls/{{{some}}}/master.m3u8", "/hls/" + "a" * 5000 + "/master.m3u8", f"/hls/{some}/720p/seg1.m4s",
    ])


@FUZZ
@given(path=_hls_paths(SOME), method=st.sampled_from(["GET", "HEAD"]),
       params=st.dictionaries(st.sampled_from(["_HLS_msn", "_HLS_part", "_HLS_skip"]), HLS_NUMBERS, max_size=3))
async def test_hls_refuses_odd_paths_and_parameters(path: str, method: str, params: dict[str, str],
                                                    server: Server) -> None:
    response = await server.http.request(method, path, params=params)
    note(f"{method} {path} {params} -> {response.status_code} {response.text[:300]}")
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    if method == "GET":
        assert_refused_with_reason(response)


async def test_hls_bad_blocking_reload_names_the_parameter(server: Server) -> None:
    some = SOME
    # A bad blocking reload of a valid rendition is a 400 that names the parameter.
    for value in ("-1", "abc", "99999999999"):
        response = await server.http.get(f"/hls/{some}/720p/index.m3u8", params={"_HLS_msn": value})
        assert response.status_code == 400 and "_HLS_msn" in response.json()["error"]["message"], response.text
    response = await server.http.get(f"/hls/{some}/720p/index.m3u8", params={"_HLS_part": "1"})
    assert response.status_code == 400 and "_HLS_msn" in response.json()["error"]["message"]
    await server.still_healthy()


# -- GraphQL over HTTP --------------------------------------------------------------------------

QUERY = "query ($id: uuid!) { nchat_streams_by_pk(id: $id) { id } }"


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def _graphql_bodies() -> st.SearchStrategy[bytes]:
    shapes = (
        json_values
        | st.fixed_dictionaries({}, optional={"query": json_values | st.just(QUERY), "variables": json_values,
                                              "operationName": json_values})
        | st.lists(st.fixed_dictionaries({"query": st.just(QUERY) | json_values, "variables": json_values}),
                   max_size=5)
    )
    bodies = (shapes.map(_json_bytes) | st.binary(max_size=300) | st.sampled_from([
        b"", b"null", b"[]", b"[null]", b"{", b"\xff", b"[" * 100_000 + b"]" * 100_000,
        json.dumps({"query": QUERY, "variables": {"id": "x" * 900_000}}).encode(),
        json.dumps({"query": QUERY, "variables": {"id": "x" * 2_000_000}}).encode(),
        b'{"query": "' + QUERY.encode() + b'", "variables": ' + b'{"a":' * 900 + b"1" + b"}" * 900 + b"}",
        json.dumps({"query": "{" * 5000 + "}" * 5000}).encode(),
        json.dumps({"query": "query ($v: JSON) { __typename }", "variables": {"v": _nested(900)}}).encode(),
    ]))
    return bodies


@FUZZ
@given(body=_graphql_bodies(), path=st.sampled_from(["/v1/graphql", "/graphql"]),
       content_type=st.sampled_from(["application/json", "text/plain", "application/graphql", "", "multipart/x"]))
async def test_graphql_http_refuses_malformed_requests(body: bytes, path: str, content_type: str,
                                                       server: Server) -> None:
    response = await server.http.post(path, content=body, headers={"content-type": content_type})
    note(f"{response.status_code} {response.text[:300]}")
    assert response.status_code in (200, 400, 413), (response.status_code, response.text[:300])
    answer = response.json()
    for item in answer if isinstance(answer, list) else [answer]:
        assert isinstance(item, dict) and ("data" in item or "errors" in item), answer
        for err in item.get("errors") or []:
            assert err["extensions"]["code"] not in (None, "unexpected"), err
            assert err["message"], err


# -- RTMP ---------------------------------------------------------------------------------------


async def _send_and_hang_up(port: int, prefix: bytes, payload: bytes) -> bytes:
    """Write `payload` (after an optional `prefix`), half-close, and read what the server says
    until it closes; the server must close once the peer is gone or the bytes make no sense."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(prefix + payload)
        await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
        return await asyncio.wait_for(reader.read(-1), 10)
    except ConnectionError:
        return b""
    finally:
        writer.close()


C1 = (bytes(8) + bytes(range(256)) * 6)[:1536]


@FUZZ
@given(prefix=st.sampled_from([b"", b"\x03", b"\x03" + C1, b"\x06", b"\x03" + C1[:100], b"\x03" + C1 + C1]),
       payload=st.binary(max_size=4000))
async def test_rtmp_port_survives_random_bytes_and_truncated_handshakes(
    prefix: bytes, payload: bytes, server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="nchat_live.media.ingest.rtmp"):
        await _send_and_hang_up(server.rtmp_port, prefix, payload)
    internal = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    caplog.clear()
    assert not internal, internal


async def test_rtmp_garbage_after_handshake_then_healthy(server: Server) -> None:
    port, c1 = server.rtmp_port, C1
    # Handshake then garbage in the chunk stream, without hanging up: the server closes on its own.
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"\x03" + c1)
    await reader.readexactly(1 + 1536 + 1536)
    writer.write(c1 + b"\x02\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff" + bytes(range(256)) * 20)
    await writer.drain()
    assert await asyncio.wait_for(reader.read(-1), 10) is not None
    writer.close()
    await server.still_healthy()


async def test_graphql_http_curated_bodies(server: Server) -> None:
    for body in [b"[" * 100_000 + b"]" * 100_000, b'{"query": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
                 json.dumps({"query": QUERY, "variables": {"id": _nested(900)}}).encode(),
                 json.dumps({"query": "query ($v: JSON) { __typename }", "variables": {"v": _nested(900)}}).encode(),
                 json.dumps([{"query": QUERY, "variables": {"id": "x"}}] * 2000).encode(),
                 json.dumps({"query": "{" * 5000 + "}" * 5000}).encode(), b"\xff\xfe{", b"null", b"[null, 1]"]:
        response = await server.http.post("/v1/graphql", content=body, headers={"content-type": "application/json"})
        assert response.status_code in (200, 400, 413), (response.status_code, response.text[:300])
        answer = response.json()
        for item in answer if isinstance(answer, list) else [answer]:
            for err in item.get("errors") or []:
                assert err["extensions"]["code"] not in (None, "unexpected"), err
    await server.still_healthy()
