"""Simulcast: write-only keys, and a live stream pushed over RTMP to a loopback listener (this
server's own RTMP ingest, on another stream: that stream goes live and packages what arrives)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import av
import httpx
import pytest

from nchat_live.app import create_app
from nchat_live.auth import Claims
from nchat_live.config import Settings
from nchat_live.db import Database
from nchat_live.errors import NchatError
from nchat_live.media.extras.simulcast import Push, Segment, Target, choose_rendition, endpoint
from nchat_live.resolvers import simulcast
from nchat_live.runtime import Runtime
from tests.support import World

from .rtmp_client import run_publisher
from .test_recording import eventually


def test_endpoint_and_rendition_choice() -> None:
    e = endpoint("rtmps://live.example.com/app/sub")
    assert (e.host, e.port, e.tls, e.app) == ("live.example.com", 443, True, "app/sub")
    assert endpoint("rtmp://127.0.0.1:1936/live/").app == "live" and endpoint("rtmp://h/live").port == 1935
    assert choose_rendition("720p", ["360p", "720p", "480p"]) == "720p"
    assert choose_rendition("720p", ["240p", "480p"]) == "480p"
    assert choose_rendition("240p", ["480p", "360p"]) == "360p"
    assert choose_rendition("720p", []) is None


async def test_keys_are_write_only(db: Database, world: World) -> None:
    async with db.session(Claims.user(world.alice)) as s:
        added = await simulcast.add_destination(s, world.public_stream, name="YouTube",
                                                url="rtmp://a.rtmp.youtube.com/live2", stream_key="abcd-efgh-1234-wxyz")
    assert added["key_hint"] == "…wxyz" and "stream_key" not in added and added["status"] == "idle"
    for claims in (Claims.user(world.alice), Claims.service()):
        with pytest.raises(NchatError) as info:
            async with db.session(claims) as s:
                await s.fetch("SELECT stream_key FROM nchat_stream_simulcast_destinations")
        assert info.value.code == "permission-error"
    with pytest.raises(NchatError) as info:
        async with db.session(Claims.user(world.alice)) as s:
            await simulcast.simulcast_targets(s, world.public_stream)
    assert info.value.code == "permission-error"
    async with db.session(Claims.service()) as s:
        targets = await simulcast.simulcast_targets(s, world.public_stream)
    assert [t["stream_key"] for t in targets] == ["abcd-efgh-1234-wxyz"]
    # Not the managers' business: bob (a member) sees nothing and cannot add.
    for action in ("list", "add"):
        with pytest.raises(NchatError) as info:
            async with db.session(Claims.user(world.bob)) as s:
                if action == "list":
                    await simulcast.list_destinations(s, world.public_stream)
                else:
                    await simulcast.add_destination(s, world.public_stream, name="x", url="rtmp://h/app",
                                                    stream_key="k")
        assert info.value.code == "permission-error"
    with pytest.raises(NchatError) as info:
        async with db.session(Claims.user(world.alice)) as s:
            await simulcast.add_destination(s, world.public_stream, name="x", url="http://h/app", stream_key="k")
    assert info.value.code == "validation-failed"
    async with db.session(Claims.user(world.alice)) as s:
        changed = await simulcast.update_destination(s, added["id"], stream_key="new-key-0000-9999", enabled=False)
        assert changed["key_hint"] == "…9999" and changed["enabled"] is False
        assert await simulcast.remove_destination(s, added["id"])


async def test_internal_destinations_are_refused(settings: Settings, db: Database, world: World) -> None:
    simulcast.configure(settings.model_copy(update={"simulcast_allow_private": False}))
    assert simulcast.public_address("8.8.8.8") and not simulcast.public_address("::ffff:10.0.0.1")
    for url in ("rtmp://127.0.0.1:1935/live", "rtmp://10.1.2.3/live", "rtmp://[::1]/live", "rtmp://169.254.169.254/x",
                "rtmp://0.0.0.0/live", "rtmp://224.0.0.1/live", "rtmps://localhost/live"):
        with pytest.raises(NchatError) as info:
            async with db.session(Claims.user(world.alice)) as s:
                await simulcast.add_destination(s, world.public_stream, name="x", url=url, stream_key="k")
        assert info.value.code == "destination-not-allowed", url
    async with db.session(Claims.user(world.alice)) as s:
        added = await simulcast.add_destination(s, world.public_stream, name="x", url="rtmp://8.8.8.8/live",
                                                stream_key="k")
    with pytest.raises(NchatError) as info:
        async with db.session(Claims.user(world.alice)) as s:
            await simulcast.update_destination(s, added["id"], url="rtmp://192.168.1.1/live")
    assert info.value.code == "destination-not-allowed"

    # At connect time (a name that resolved elsewhere when it was saved): refused, status `error` with the reason.
    class Owner:
        allow_private = False
        reports: list[tuple[str, str | None]] = []

        async def report(self, destination_id: str, status: str, *, error: str | None = None,
                         attempts: int | None = None) -> None:
            self.reports.append((status, error))

    owner = Owner()
    push = Push(owner, world.public_stream, Target("d", "lan", "rtmp://127.0.0.1:9/live", "k", "360p"))
    task = asyncio.create_task(push.run())

    async def connecting() -> bool:
        return bool(owner.reports)

    await eventually(connecting, 5)
    push.offer(Segment(b"", b"", False))  # it connects when there is something to send

    async def refused() -> bool:
        return any(status == "error" for status, _ in owner.reports)

    await eventually(refused, 5)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    error = next(e for status, e in owner.reports if status == "error")
    assert error is not None and "destination-not-allowed" in error and "127.0.0.1" in error


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def stack(settings: Settings, tmp_path: Path) -> AsyncIterator[Runtime]:
    runtime = Runtime(settings.model_copy(update={
        "media_dir": tmp_path / "live", "recording_dir": tmp_path / "recordings", "rtmp_port": 0,
        "publisher_grace_seconds": 1.0, "media_cleanup_delay_seconds": 30.0, "rtmp_media_timeout_seconds": 3.0,
        "recording_enabled": False, "simulcast_allow_private": True,  # it pushes to loopback
    }))
    await runtime.start()
    yield runtime
    await runtime.stop()
    simulcast.configure(settings)  # back to the default: internal destinations refused


async def _rows(db: Database, stream_id: str) -> dict[str, dict[str, Any]]:
    async with db.session(Claims.service()) as s:
        rows = await s.fetch("SELECT name, status, last_error, attempts FROM nchat_stream_simulcast_destinations "
                             "WHERE stream_id = $1", stream_id)
    return {r["name"]: dict(r) for r in rows}


async def test_a_live_stream_reaches_a_loopback_rtmp_destination(stack: Runtime, db: Database, world: World) -> None:
    assert stack.rtmp is not None and stack.simulcast is not None
    port = stack.rtmp.port
    events: list[tuple[str, dict[str, Any]]] = []
    server_db = stack.database  # the worker's own pool: its statuses publish there
    forward = server_db.publisher

    async def capture(topic: str, payload: dict[str, Any]) -> None:
        events.append((topic, payload))
        if forward is not None:
            await forward(topic, payload)

    server_db.publisher = capture
    try:
        stack.simulcast.refresh_seconds = 0.5
        async with db.session(Claims.user(world.alice)) as s:
            # The public stream goes out to a dead port, and (added once it is live) to the private
            # stream's ingest, with that stream's key.
            await simulcast.add_destination(s, world.public_stream, name="nowhere",
                                            url=f"rtmp://127.0.0.1:{_closed_port()}/live", stream_key="k" * 12)
        publisher = asyncio.create_task(run_publisher(port, world.public_key, "--seconds", "10", "--size",
                                                      "320x240", "--realtime"))

        async def source_live() -> bool:
            async with db.session(Claims.service()) as s:
                return await s.fetchval("SELECT status FROM nchat_streams WHERE id = $1", world.public_stream) == "live"

        await eventually(source_live, 15)
        async with db.session(Claims.user(world.alice)) as s:
            await simulcast.add_destination(s, world.public_stream, name="loopback",
                                            url=f"rtmp://127.0.0.1:{port}/live", stream_key=world.private_key,
                                            rendition="360p")

        async def target_live() -> bool:
            async with db.session(Claims.service()) as s:
                return await s.fetchval("SELECT status FROM nchat_stream_simulcast_destinations d "
                                        "WHERE d.name = 'loopback' AND d.stream_id = $1", world.public_stream) == "live"

        await eventually(target_live, 30)
        # The receiving stream goes live from what the simulcast sends (once its ingest has the first media, a
        # moment after the destination reads "live"), and packages it.
        async def receiver_live() -> bool:
            async with db.session(Claims.service()) as s:
                status = await s.fetchval("SELECT status FROM nchat_streams WHERE id = $1", world.private_stream)
            return status == "live"

        await eventually(receiver_live, 15)

        async def nowhere_failed() -> dict[str, Any] | None:
            row = (await _rows(db, world.public_stream))["nowhere"]
            return row if row["attempts"] >= 1 and row["last_error"] else None

        # The dead destination fails, says why, and keeps retrying (backoff 1, 2, 4 s...).
        failed = await eventually(nowhere_failed, 20)
        assert failed["status"] in ("error", "connecting") and "connect" in failed["last_error"].lower()
        code, err = await publisher
        assert code == 0, err
        received = stack.settings.media_dir / world.private_stream

        def decoded_frames() -> int:
            playlists = sorted(received.glob("*/index.m3u8"))
            if not playlists:
                return 0
            with av.open(str(playlists[0])) as container:
                return sum(1 for _ in container.decode(video=0))

        frames = await eventually(lambda: asyncio.to_thread(decoded_frames), 20)
        assert frames >= 30  # at least a second of the pushed video came out of the other ingest

        async def stopped() -> bool:
            return all(r["status"] == "stopped" for r in (await _rows(db, world.public_stream)).values())

        await eventually(stopped, 20)
    finally:
        server_db.publisher = forward
    statuses = [(p["name"], p["status"]) for t, p in events if t == "simulcast.status"]
    assert ("loopback", "connecting") in statuses and ("loopback", "live") in statuses
    errors = [p for t, p in events if t == "simulcast.status" and p["status"] == "error"]
    assert errors and errors[0]["name"] == "nowhere" and errors[0]["error"]


async def test_the_table_api_never_returns_keys(settings: Settings, db: Database, world: World) -> None:
    app = create_app(settings.model_copy(update={"media_enabled": False}))
    headers = {"authorization": f"Bearer {world.token(world.alice)}"}
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app), base_url="http://test") as http:
        added = await http.post("/v1/graphql", headers=headers, json={"query": """mutation($id: ID!) {
            addSimulcastDestination(streamId: $id, name: "Twitch", url: "rtmps://live.twitch.tv/app",
            streamKey: "live_123456789_abcdef") { id keyHint status } }""", "variables": {"id": world.public_stream}})
        assert added.json()["data"]["addSimulcastDestination"]["keyHint"] == "…cdef"
        for query in ("{ nchat_stream_simulcast_destinations { stream_key } }",
                      f'{{ simulcastDestinations(streamId: "{world.public_stream}") {{ streamKey }} }}'):
            answer = (await http.post("/v1/graphql", headers=headers, json={"query": query})).json()
            assert "errors" in answer and "live_123456789" not in str(answer), answer
        listed = (await http.post("/v1/graphql", headers=headers, json={
            "query": "{ nchat_stream_simulcast_destinations { name key_hint url } }"})).json()
        assert {"name": "Twitch", "key_hint": "…cdef", "url": "rtmps://live.twitch.tv/app"} in \
            listed["data"]["nchat_stream_simulcast_destinations"]
