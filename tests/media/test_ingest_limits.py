"""Issue 13, ingest: RTMP buffers, chunk streams, deadlines and bind host; WHIP admission (connect
deadline, capacity, key throttle, SDP size). Real sockets, real aiortc; small and short."""

from __future__ import annotations

import asyncio
import contextlib
import struct
import time
import tracemalloc
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from nchat_live.app import create_app
from nchat_live.auth import Claims
from nchat_live.config import Settings
from nchat_live.db import Database
from nchat_live.media.ingest.rtmp.chunks import SET_CHUNK_SIZE, USER_CONTROL, VIDEO
from nchat_live.media.ingest.rtmp.server import PublishRequest, RtmpServer
from nchat_live.media.worker.manager import MediaManager
from nchat_live.runtime import Runtime
from tests.support import World

from .media_client import SyntheticVideo, WhipClient
from .rtmp_client import RtmpTestClient

SDP = {"Content-Type": "application/sdp"}


class _Sink:
    async def video(self, timestamp: int, payload: bytes) -> None:
        pass

    async def audio(self, timestamp: int, payload: bytes) -> None:
        pass

    async def metadata(self, values: dict[str, Any]) -> None:
        pass

    async def close(self, reason: str | None) -> None:
        pass


async def _accept(request: PublishRequest) -> _Sink:
    return _Sink()


@contextlib.asynccontextmanager
async def rtmp_server(**options: Any) -> AsyncIterator[RtmpServer]:
    async with RtmpServer(_accept, host="127.0.0.1", port=0, **options) as server:
        yield server


def chunk(csid: int, length: int, body: bytes, type_id: int = VIDEO, stream_id: int = 1) -> bytes:
    """One type-0 chunk opening a message of `length` bytes with `body` as its first chunk."""
    return (bytes([csid]) + (0).to_bytes(3, "big") + length.to_bytes(3, "big") + bytes([type_id])
            + struct.pack("<I", stream_id) + body)


async def write(client: RtmpTestClient, data: bytes) -> bool:
    """False once the server has dropped the connection."""
    try:
        client.writer.write(data)
        await client.writer.drain()
    except ConnectionError:
        return False
    return True


# -- RTMP -----------------------------------------------------------------------------------------


async def test_rtmp_refuses_a_huge_chunk_size() -> None:
    async with rtmp_server() as server:
        client = await RtmpTestClient.connect(server.bound_port)
        await client.send(SET_CHUNK_SIZE, struct.pack(">I", 8 * 1024 * 1024), csid=2)
        assert await client.closed_by_server(3.0)
        await client.close()


async def test_rtmp_partial_messages_are_bounded_in_bytes_and_streams() -> None:
    """The issue's attack (large chunks, 40 partial messages open) is dropped at the buffer cap."""
    tracemalloc.start()
    try:
        async with rtmp_server(max_buffered=4 * 1024 * 1024, max_chunk_size=1024 * 1024) as server:
            client = await RtmpTestClient.connect(server.bound_port)
            await client.send(SET_CHUNK_SIZE, struct.pack(">I", 1024 * 1024), csid=2)
            body = bytes(1024 * 1024)
            sent = 0
            for csid in range(3, 43):
                if not await write(client, chunk(csid, 8 * 1024 * 1024, body)):
                    break
                sent += 1
            assert await client.closed_by_server(5.0)
            await client.close()
            _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 24 * 1024 * 1024, f"peak {peak / 2**20:.1f} MiB traced while {sent} MiB were offered"

    async with rtmp_server(max_chunk_streams=8) as server:
        client = await RtmpTestClient.connect(server.bound_port)
        for csid in range(3, 20):
            if not await write(client, chunk(csid, 1000, b"x" * 10)):
                break
        assert await client.closed_by_server(3.0)
        await client.close()


async def test_rtmp_buffers_are_capped_over_all_connections() -> None:
    """Past the server-wide cap, the connection holding the most before publishing is dropped; a
    publishing one keeps its data and the unauthenticated asker is refused instead."""
    mib = 1024 * 1024
    body = bytes(mib)

    async def holding(server: RtmpServer, mebibytes: int, *, publish: bool = False) -> RtmpTestClient:
        client = await RtmpTestClient.connect(server.bound_port)
        if publish:
            assert (await client.start_publish("any-key"))[3]["code"] == "NetStream.Publish.Start"
        await client.send(SET_CHUNK_SIZE, struct.pack(">I", mib), csid=2)
        before = server.budget.used
        for csid in range(10, 10 + mebibytes):
            assert await write(client, chunk(csid, 2 * mib, body))
        assert await until(lambda: server.budget.used >= before + mebibytes * mib, 5.0)
        return client

    async with rtmp_server(max_buffered=4 * mib, max_total_buffered=5 * mib, max_chunk_size=mib) as server:
        # Two unauthenticated connections: the larger holder is dropped to make room for the other.
        big = await holding(server, 3)
        small = await holding(server, 2)
        assert server.budget.used == 5 * mib
        assert await write(small, chunk(20, 2 * mib, body))
        assert await big.closed_by_server(3.0)
        assert await until(lambda: server.budget.used == 3 * mib, 3.0)
        assert not await small.closed_by_server(0.5)
        await small.close()
        await big.close()
        assert await until(lambda: server.budget.used == 0, 3.0), "a closed connection gives its bytes back"

        # A publisher holds data; an unauthenticated connection past the cap is the one refused.
        publisher = await holding(server, 4, publish=True)
        asker = await holding(server, 1)
        assert await write(asker, chunk(20, 2 * mib, body))
        assert await asker.closed_by_server(3.0)
        assert not await publisher.closed_by_server(0.5)
        assert server.budget.used == 4 * mib
        await asker.close()
        await publisher.close()
        assert await until(lambda: server.budget.used == 0, 3.0)


async def pinged_until_closed(client: RtmpTestClient, seconds: float) -> float | None:
    """Send a ping every 0.2 s (a message, but no progress); seconds until the server dropped us."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        try:
            await client.send(USER_CONTROL, struct.pack(">HI", 6, 1), csid=2)
        except ConnectionError:
            return time.monotonic() - started
        await asyncio.sleep(0.2)
    return None


async def test_rtmp_must_publish_soon_and_only_media_counts_as_progress() -> None:
    async with rtmp_server(publish_timeout=1.0, media_timeout=1.0, idle_timeout=1.0) as server:
        # Connected, never publishes, keeps the socket busy with pings: closed at the publish deadline.
        client = await RtmpTestClient.connect(server.bound_port)
        await client.call("connect", {"app": "live", "tcUrl": "rtmp://127.0.0.1/live"})
        elapsed = await pinged_until_closed(client, 5.0)
        assert elapsed is not None and elapsed < 3.0
        await client.close()

        # Published, then media once, then only pings: the idle timeout runs from the media.
        client = await RtmpTestClient.connect(server.bound_port)
        reply = await client.start_publish("any-key")
        assert reply[3]["code"] == "NetStream.Publish.Start"
        await client.send(VIDEO, b"\x17\x01" + bytes(20), stream_id=1, csid=6)
        elapsed = await pinged_until_closed(client, 5.0)
        assert elapsed is not None and elapsed < 3.0
        await client.close()


# -- a whole media process ------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def media_stack(settings: Settings, tmp_path: Path, **overrides: Any) -> AsyncIterator[
        tuple[Runtime, httpx.AsyncClient]]:
    runtime = Runtime(settings.model_copy(update={
        "media_dir": tmp_path / "live", "recording_dir": tmp_path / "rec", "rtmp_port": 0,
        "recording_enabled": False, "publisher_grace_seconds": 2.0, "media_metrics_seconds": 1.0,
        **overrides,
    }))
    await runtime.start()
    transport = httpx.ASGITransport(app=create_app(runtime=runtime))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver", timeout=30) as http:
            yield runtime, http
    finally:
        await runtime.stop()


def media_of(runtime: Runtime) -> MediaManager:
    assert runtime.media is not None
    return runtime.media


def rtmp_port(runtime: Runtime) -> int:
    assert runtime.rtmp is not None
    return runtime.rtmp.port


async def new_stream(db: Database, world: World) -> tuple[str, str]:
    async with db.session(Claims.service()) as s:
        row = await s.fetchrow(
            "INSERT INTO nchat_streams (channel_id, broadcaster_id, title) VALUES ($1, $2, 'limits') "
            "RETURNING id, stream_key", world.public_channel, world.alice,
        )
    assert row is not None
    return str(row["id"]), row["stream_key"]


async def until(check: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.1)
    return True


async def offer_only(http: httpx.AsyncClient, stream_id: str, key: str) -> httpx.Response:
    """POST a real offer and vanish: the 201 comes, the connection never does."""
    client = WhipClient(http, stream_id, key, SyntheticVideo(320, 240, 15), audio=False)
    await client.pc.setLocalDescription(await client.pc.createOffer())
    try:
        return await http.post(f"/whip/{stream_id}", content=client.pc.localDescription.sdp,
                               headers={"Authorization": f"Bearer {key}"} | SDP)
    finally:
        await client.pc.close()


async def test_rtmp_binds_the_configured_host(settings: Settings, tmp_path: Path) -> None:
    async with media_stack(settings, tmp_path, rtmp_host="127.0.0.2") as (runtime, _):
        assert runtime.rtmp is not None
        server = runtime.rtmp.server
        assert server._server is not None
        assert {s.getsockname()[0] for s in server._server.sockets} == {"127.0.0.2"}
    async with media_stack(settings, tmp_path) as (runtime, _):
        assert runtime.rtmp is not None
        assert runtime.rtmp.server.host == "127.0.0.1"  # unset and no --host: loopback
    assert Settings(NCHAT_RTMP_HOST="10.1.2.3").rtmp_host == "10.1.2.3"  # type: ignore[call-arg]


async def test_whip_session_that_never_connects_is_closed_and_frees_the_stream(
    settings: Settings, tmp_path: Path, world: World
) -> None:
    async with media_stack(settings, tmp_path, whip_connect_timeout_seconds=1.5) as (runtime, http):
        stream_id, key = await new_stream(runtime.database, world)
        first = await offer_only(http, stream_id, key)
        assert first.status_code == 201
        media = media_of(runtime)
        live = media.streams[stream_id]
        assert live.publisher is not None
        assert await until(lambda: live.publisher is None, 6.0), "the silent session still holds the stream"
        client = WhipClient(http, stream_id, key, SyntheticVideo(320, 240, 15), audio=False)
        try:
            response = await client.start()
            assert response.status_code == 201, response.text  # not 409 publisher-exists
        finally:
            await client.stop()


async def test_a_full_worker_answers_503_and_refuses_rtmp(settings: Settings, tmp_path: Path, world: World) -> None:
    async with media_stack(settings, tmp_path, media_capacity=1) as (runtime, http):
        taken, taken_key = await new_stream(runtime.database, world)
        other, other_key = await new_stream(runtime.database, world)
        assert (await offer_only(http, taken, taken_key)).status_code == 201
        refused = await offer_only(http, other, other_key)
        assert refused.status_code == 503
        assert refused.json()["error"]["code"] == "media-worker-full"
        assert int(refused.headers["retry-after"]) >= 1
        assert other not in media_of(runtime).streams

        client = await RtmpTestClient.connect(rtmp_port(runtime))
        reply = await client.start_publish(other_key)
        assert reply[3]["level"] == "error" and "streams already" in reply[3]["description"]
        assert await client.closed_by_server(3.0)
        await client.close()


async def test_failed_keys_are_throttled_per_address(settings: Settings, tmp_path: Path, world: World) -> None:
    overrides = {"ingest_key_failures": 3, "ingest_key_failure_delay_seconds": 0.05}
    async with media_stack(settings, tmp_path, **overrides) as (runtime, http):
        stream_id, key = await new_stream(runtime.database, world)
        for _ in range(3):
            wrong = await http.post(f"/whip/{stream_id}", content="v=0\r\n",
                                    headers={"Authorization": "Bearer guess"} | SDP)
            assert wrong.status_code == 401
        blocked = await http.post(f"/whip/{stream_id}", content="v=0\r\n",
                                  headers={"Authorization": f"Bearer {key}"} | SDP)
        assert blocked.status_code == 429
        assert blocked.json()["error"]["code"] == "too-many-key-failures"
        assert 1 <= int(blocked.headers["retry-after"]) <= 60
        # The same address over RTMP: dropped before the handshake.
        client = await RtmpTestClient.connect(rtmp_port(runtime), handshake=False)
        assert await client.closed_by_server(3.0)
        await client.close()

    async with media_stack(settings, tmp_path, **overrides) as (runtime, http):
        port = rtmp_port(runtime)
        for _ in range(3):
            client = await RtmpTestClient.connect(port)
            reply = await client.start_publish("guess")
            assert reply[3]["code"] == "NetStream.Publish.BadName"
            await client.close()
        with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
            await RtmpTestClient.connect(port)


async def test_whip_offer_larger_than_the_limit_is_413_before_it_is_read(
    settings: Settings, tmp_path: Path, world: World
) -> None:
    async with media_stack(settings, tmp_path, whip_max_sdp_bytes=4096) as (runtime, http):
        stream_id, key = await new_stream(runtime.database, world)
        auth = {"Authorization": f"Bearer {key}"} | SDP
        big = await http.post(f"/whip/{stream_id}", content=b"v=0\r\n" + bytes(100_000), headers=auth)
        assert big.status_code == 413
        assert big.json()["error"]["code"] == "sdp-too-large"

        sent = 0

        async def endless() -> AsyncIterator[bytes]:
            nonlocal sent
            yield b"v=0\r\n"
            for _ in range(1000):  # 64 MB if it were all read
                sent += 65536
                yield bytes(65536)

        chunked = await http.post(f"/whip/{stream_id}", content=endless(), headers=auth)
        assert chunked.status_code == 413
        assert stream_id not in media_of(runtime).streams


async def test_whip_answers_404_for_non_canonical_stream_ids(
    settings: Settings, tmp_path: Path, world: World
) -> None:
    """Only the canonical lowercase form names a stream (nchat_live.ids), even with its real key."""
    async with media_stack(settings, tmp_path) as (runtime, http):
        stream_id, key = await new_stream(runtime.database, world)
        auth = {"Authorization": f"Bearer {key}"} | SDP
        for variant in (f"{{{stream_id}}}", stream_id.upper(), stream_id.replace("-", ""),
                        f"urn:uuid:{stream_id}"):
            response = await http.post(f"/whip/{variant}", content=b"v=0\r\n", headers=auth)
            assert response.status_code == 404, variant
            assert response.json()["error"]["code"] == "stream-not-found"
        assert stream_id not in media_of(runtime).streams
