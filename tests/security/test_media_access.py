"""Issue 12, cases 1 (server side), 8 and 10, and issue 13's held-request bound: private media.

A viewer's credential for private media is a short-lived token scoped to one stream (the login token
never goes into a URL); private media is never cacheable by a shared cache; a private stream the
caller may not read answers exactly like an unknown one; a malformed stream id is a 404; tokens never
reach a log; one client cannot hold more than a few blocking requests. Each test fails on the code
before the fix.
"""

from __future__ import annotations

import asyncio
import io
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import jwt
import pytest

from nchat_live.app import create_app
from nchat_live.auth import MEDIA_TOKEN_TYPE, Claims, MediaTokens, media_tokens
from nchat_live.config import Settings
from nchat_live.observability import RedactTokens, configure_logging
from tests.support import World

UNKNOWN = "6f1c2f4e-1111-4a2b-9c3d-00000000dead"
PLAYLIST = (b"#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n"
            b"#EXTINF:2.0,\nseg0.m4s\n")


def _files(stream: str) -> dict[str, bytes]:
    return {
        f"{stream}/master.m3u8": b"#EXTM3U\n",
        f"{stream}/720p/index.m3u8": PLAYLIST,
        f"{stream}/720p/init.mp4": b"init",
        f"{stream}/720p/seg0.m4s": b"segment",
        f"{stream}/720p/seg1.0.m4s": b"part",
        f"{stream}/thumbnail.jpg": b"\xff\xd8jpeg",
        f"{stream}/dvr.m3u8": b"#EXTM3U\n",
        f"{stream}/720p/dvr.m3u8": PLAYLIST,
    }


def _media_paths(stream: str) -> list[str]:
    return [
        f"/hls/{stream}/master.m3u8", f"/hls/{stream}/720p/index.m3u8", f"/hls/{stream}/720p/init.mp4",
        f"/hls/{stream}/720p/seg0.m4s", f"/hls/{stream}/720p/seg1.0.m4s", f"/hls/{stream}/thumbnail.jpg",
        f"/hls/{stream}/dvr.m3u8", f"/hls/{stream}/720p/dvr.m3u8", f"/recordings/{stream}/master.m3u8",
        f"/recordings/{stream}/720p/seg0.m4s",
    ]


def _app_settings(settings: Settings, tmp_path: Path, **extra: object) -> Settings:
    return settings.model_copy(update={"media_dir": tmp_path / "live", "recording_dir": tmp_path / "recordings",
                                       **extra})


@pytest.fixture
async def client(settings: Settings, tmp_path: Path, world: World) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(_app_settings(settings, tmp_path, hls_max_held_per_client=2))
    async with app.router.lifespan_context(app):
        storage = app.state.runtime.media.storage
        for stream in (world.public_stream, world.private_stream):
            for key, data in _files(stream).items():
                storage.write(key, data)
            folder = tmp_path / "recordings" / stream
            (folder / "720p").mkdir(parents=True)
            (folder / "master.m3u8").write_text("#EXTM3U\n")
            (folder / "720p" / "seg0.m4s").write_bytes(b"segment")
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            yield c


async def _media_token(client: httpx.AsyncClient, login: str, stream: str) -> dict[str, object]:
    response = await client.post("/v1/graphql", headers={"Authorization": f"Bearer {login}"}, json={
        "query": "mutation M($id: ID!) { mediaToken(streamId: $id) { token streamId expiresAt } }",
        "variables": {"id": stream},
    })
    return response.json()


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# ---- media tokens ------------------------------------------------------------------------------


async def test_media_token_reads_its_stream_only(client: httpx.AsyncClient, world: World) -> None:
    minted = await _media_token(client, world.token(world.alice), world.private_stream)
    assert "errors" not in minted, minted
    token = str(minted["data"]["mediaToken"]["token"])  # type: ignore[index]
    assert jwt.get_unverified_header(token)["typ"] == MEDIA_TOKEN_TYPE
    for path in _media_paths(world.private_stream):
        assert (await client.get(path, params={"token": token})).status_code == 200, path
        assert (await client.get(path, headers=_bearer(token))).status_code == 200, path
    # A token for the public stream does not open the private one: it looks like nothing is there.
    public = await _media_token(client, world.token(world.alice), world.public_stream)
    other = str(public["data"]["mediaToken"]["token"])  # type: ignore[index]
    refused = await client.get(f"/hls/{world.private_stream}/master.m3u8", params={"token": other})
    assert refused.status_code == 404 and refused.json()["error"]["code"] == "not-found"


async def test_media_token_is_minted_only_for_readers(client: httpx.AsyncClient, world: World) -> None:
    for who in (world.carol, world.bob):
        answer = await _media_token(client, world.token(who), world.private_stream)
        assert answer["errors"][0]["extensions"]["code"] == "not-found", answer  # type: ignore[index]
    unknown = await _media_token(client, world.token(world.alice), UNKNOWN)
    assert unknown["errors"][0]["extensions"]["code"] == "not-found"  # type: ignore[index]
    braces = await _media_token(client, world.token(world.alice), "{" + world.private_stream + "}")
    assert braces["errors"][0]["extensions"]["code"] == "not-found"  # type: ignore[index]


async def test_expired_forged_and_login_tokens_in_the_query_are_refused(
    client: httpx.AsyncClient, settings: Settings, world: World,
) -> None:
    master = f"/hls/{world.private_stream}/master.m3u8"
    tokens = media_tokens(settings.jwt_secret, settings.media_token_secret, settings.media_token_ttl_seconds)
    # Same key, already expired.
    expired = MediaTokens(tokens._key, ttl_seconds=-30).mint(world.private_stream, Claims.user(world.alice))
    answer = await client.get(master, params={"token": expired[0]})
    assert answer.status_code == 401 and answer.json()["error"]["code"] == "invalid-jwt"
    # Signed with the login key (or any other key) instead of the media key.
    forged = jwt.encode({"scope": world.private_stream, "role": "user", "sub": world.alice,
                         "exp": int(time.time()) + 60}, "another-key-" * 4, algorithm="HS256",
                        headers={"typ": MEDIA_TOKEN_TYPE})
    assert (await client.get(master, params={"token": forged})).status_code == 401
    # The login token never goes in a URL.
    login = await client.get(master, params={"token": world.token(world.alice)})
    assert login.status_code == 401 and login.json()["error"]["code"] == "invalid-jwt"
    # ...but stays accepted in the Authorization header.
    assert (await client.get(master, headers=_bearer(world.token(world.alice)))).status_code == 200


async def test_media_token_is_not_a_login_token(client: httpx.AsyncClient, world: World) -> None:
    minted = await _media_token(client, world.token(world.alice), world.private_stream)
    token = str(minted["data"]["mediaToken"]["token"])  # type: ignore[index]
    answer = await client.post("/v1/graphql", headers=_bearer(token), json={"query": "{ nchat_streams { id } }"})
    assert answer.json()["errors"][0]["extensions"]["code"] == "invalid-jwt"


async def test_a_member_removed_loses_media_even_with_a_token(
    client: httpx.AsyncClient, world: World, settings: Settings,
) -> None:
    """The token's claims are checked again under RLS on each use."""
    tokens = media_tokens(settings.jwt_secret, settings.media_token_secret, settings.media_token_ttl_seconds)
    token, _ = tokens.mint(world.private_stream, Claims.user(world.carol))
    answer = await client.get(f"/hls/{world.private_stream}/master.m3u8", params={"token": token})
    assert answer.status_code == 404


# ---- cache headers ------------------------------------------------------------------------------


async def test_private_media_is_never_shared_cacheable(client: httpx.AsyncClient, world: World) -> None:
    owner = _bearer(world.token(world.alice))
    for path in _media_paths(world.private_stream):
        answer = await client.get(path, headers=owner)
        assert answer.status_code == 200, path
        cache = answer.headers["cache-control"]
        assert "private" in cache and "public" not in cache and "immutable" not in cache, (path, cache)
        assert "authorization" in answer.headers.get("vary", "").lower(), path
        if path.endswith(".m3u8"):
            assert "no-store" in cache, (path, cache)


async def test_public_media_stays_cdn_friendly(client: httpx.AsyncClient, world: World) -> None:
    for path in _media_paths(world.public_stream):
        answer = await client.get(path)
        assert answer.status_code == 200, path
        cache = answer.headers["cache-control"]
        assert "private" not in cache and "no-store" not in cache, (path, cache)
        if path.endswith((".m4s", ".mp4")):
            assert "public" in cache and "immutable" in cache, (path, cache)


# ---- private and unknown answer alike; malformed ids --------------------------------------------


async def test_private_and_unknown_streams_answer_alike(client: httpx.AsyncClient, world: World) -> None:
    public_token = await _media_token(client, world.token(world.carol), world.public_stream)
    credentials: list[dict[str, str]] = [
        {}, _bearer(world.token(world.carol)), _bearer(world.token(world.bob)),
        _bearer(str(public_token["data"]["mediaToken"]["token"])),  # type: ignore[index]
    ]
    for headers in credentials:
        for private, unknown in zip(_media_paths(world.private_stream), _media_paths(UNKNOWN), strict=True):
            a = await client.get(private, headers=headers)
            b = await client.get(unknown, headers=headers)
            assert a.status_code == b.status_code == 404, (private, a.status_code, b.status_code)
            assert a.content == b.content, (private, a.text, b.text)
            assert a.headers.get("cache-control") == b.headers.get("cache-control")


@pytest.mark.parametrize("form", ["{%s}", "%%7B%s%%7D", "urn:uuid:%s", "upper", "bare"])
async def test_non_canonical_stream_ids_are_404(client: httpx.AsyncClient, world: World, form: str) -> None:
    sid = world.public_stream
    if form == "upper":
        odd = sid.upper()
    elif form == "bare":
        odd = sid.replace("-", "")
    else:
        odd = form % sid
    for path in _media_paths(odd):
        answer = await client.get(path, headers=_bearer(world.token(world.alice)))
        assert answer.status_code == 404, (path, answer.status_code, answer.text)
        assert answer.json()["error"]["code"] == "not-found"


# ---- logs -------------------------------------------------------------------------------------


async def test_tokens_never_reach_the_access_log(tmp_path: Path) -> None:
    """uvicorn's real access log, through the process's logging setup: the query token is redacted."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from tests.support import base_url, loopback_socket

    async def ok(request: object) -> PlainTextResponse:
        return PlainTextResponse("ok")

    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    stream = io.StringIO()
    try:
        configure_logging("info", json_logs=True)
        handler = root.handlers[0]
        assert isinstance(handler, logging.StreamHandler)
        handler.setStream(stream)
        sock = loopback_socket()
        app = Starlette(routes=[Route("/hls/{path:path}", ok)])
        server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=True, lifespan="off"))
        task = asyncio.create_task(server.serve(sockets=[sock]))
        for _ in range(250):  # uvicorn offers no event for "started"
            if server.started:
                break
            await asyncio.sleep(0.02)
        secret = "eyJhbGciOiJIUzI1NiJ9.c2VjcmV0LXBheWxvYWQ.c2lnbmF0dXJl"
        async with httpx.AsyncClient(base_url=base_url(sock)) as http:
            assert (await http.get(f"/hls/x/master.m3u8?_HLS_msn=1&token={secret}")).status_code == 200
            await http.get("/hls/x/a.m3u8", params={"access_token": secret})
        server.should_exit = True
        await task
    finally:
        root.handlers[:], level = saved[0], saved[1]
        root.setLevel(level)
    log = stream.getvalue()
    assert "/hls/x/master.m3u8" in log, log  # the access log did run
    assert secret not in log and "c2VjcmV0LXBheWxvYWQ" not in log, log
    assert "token=[redacted]" in log


def test_redaction_filter_covers_bearer_values() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "sent %s", ("Authorization: Bearer abc.def.ghi",), None)
    RedactTokens().filter(record)
    assert "abc.def.ghi" not in record.getMessage()


# ---- held requests ------------------------------------------------------------------------------


async def test_held_requests_are_bounded_per_client(client: httpx.AsyncClient, world: World) -> None:
    """Blocking reloads wait at most 3 target durations (then 503); a client past the cap gets 429 at once."""
    waiting = f"/hls/{world.public_stream}/720p/index.m3u8"
    held = [asyncio.create_task(client.get(waiting, params={"_HLS_msn": 5})) for _ in range(2)]
    await asyncio.sleep(0.5)
    started = time.monotonic()
    over = await client.get(waiting, params={"_HLS_msn": 5, "_HLS_part": 0})
    assert over.status_code == 429 and over.json()["error"]["code"] == "rate-limited"
    part = await client.get(f"/hls/{world.public_stream}/720p/seg9.0.m4s")
    assert part.status_code == 429
    assert time.monotonic() - started < 1.0
    answers = await asyncio.wait_for(asyncio.gather(*held), timeout=10)
    assert [a.status_code for a in answers] == [503, 503]
    # Released: the same client may hold again, and an answerable reload answers at once.
    assert (await client.get(waiting, params={"_HLS_msn": 0})).status_code == 200
