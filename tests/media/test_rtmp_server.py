"""The RTMP server against real publishers: FFmpeg's RTMP client (through PyAV) and a raw client."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import av
import pytest

from nchat_live.media.ingest.rtmp import PublishRefused, PublishRequest, RtmpServer
from nchat_live.media.ingest.rtmp.chunks import VIDEO
from nchat_live.media.ingest.rtmp.decode import FlvDecoder

from .rtmp_client import RtmpTestClient, run_publisher


class DecodingSink:
    """Decodes what it receives, as the ingest does, and remembers it."""

    def __init__(self, request: PublishRequest) -> None:
        self.request = request
        self.decoder = FlvDecoder()
        self.video_frames: list[av.VideoFrame] = []
        self.audio_frames: list[av.AudioFrame] = []
        self.meta: dict[str, Any] = {}
        self.closed = asyncio.Event()
        self.close_reason: str | None = "not closed"

    async def video(self, timestamp: int, payload: bytes) -> None:
        self.video_frames += await asyncio.to_thread(self.decoder.video, timestamp, payload)

    async def audio(self, timestamp: int, payload: bytes) -> None:
        self.audio_frames += await asyncio.to_thread(self.decoder.audio, timestamp, payload)

    async def metadata(self, values: dict[str, Any]) -> None:
        self.meta = values

    async def close(self, reason: str | None) -> None:
        self.video_frames += self.decoder.close()
        self.close_reason = reason
        self.closed.set()


class Ingest:
    def __init__(self) -> None:
        self.sinks: dict[str, DecodingSink] = {}

    async def on_publish(self, request: PublishRequest) -> DecodingSink:
        if not request.key.startswith("good"):
            raise PublishRefused(f"unknown stream key '{request.key[:4]}…'")
        sink = self.sinks[request.key] = DecodingSink(request)
        return sink


@pytest.fixture
async def ingest() -> AsyncIterator[tuple[Ingest, RtmpServer]]:
    target = Ingest()
    server = RtmpServer(
        target.on_publish, host="127.0.0.1", port=0, handshake_timeout=1.0, idle_timeout=2.0, media_timeout=1.0
    )
    async with server:
        yield target, server


async def test_ffmpeg_publisher_delivers_decodable_h264_and_aac(ingest: tuple[Ingest, RtmpServer]) -> None:
    target, server = ingest
    code, err = await run_publisher(server.bound_port, "good-one", "--seconds", "2", "--size", "320x180")
    assert code == 0, err
    sink = target.sinks["good-one"]
    await asyncio.wait_for(sink.closed.wait(), 5)
    assert sink.close_reason is None  # FCUnpublish/deleteStream: a clean end
    assert sink.request.app == "live" and sink.request.tc_url == f"rtmp://127.0.0.1:{server.bound_port}/live"
    assert sink.meta["width"] == 320 and sink.meta["videocodecid"] == 7
    assert len(sink.video_frames) == 60
    assert {(f.width, f.height) for f in sink.video_frames} == {(320, 180)}
    pts = [f.pts for f in sink.video_frames]
    assert pts == sorted(pts) and 1900 <= pts[-1] - pts[0] <= 2000  # milliseconds
    audio_ms = sum(f.samples for f in sink.audio_frames) / 44.1
    assert 1900 <= audio_ms <= 2200


async def test_two_publishers_at_once(ingest: tuple[Ingest, RtmpServer]) -> None:
    target, server = ingest
    results = await asyncio.gather(
        run_publisher(server.bound_port, "good-a", "--seconds", "1.5", "--realtime"),
        run_publisher(server.bound_port, "good-b", "--seconds", "1.5", "--realtime"),
    )
    assert [code for code, _ in results] == [0, 0]
    for key in ("good-a", "good-b"):
        await asyncio.wait_for(target.sinks[key].closed.wait(), 5)
        assert len(target.sinks[key].video_frames) == 45


async def test_unknown_key_gets_bad_name_and_is_closed(ingest: tuple[Ingest, RtmpServer]) -> None:
    target, server = ingest
    client = await RtmpTestClient.connect(server.bound_port)
    reply = await client.start_publish("nope-123456")
    assert reply[0] == "onStatus"
    assert reply[3]["level"] == "error" and reply[3]["code"] == "NetStream.Publish.BadName"
    assert "unknown stream key" in reply[3]["description"]
    assert await client.closed_by_server()
    await client.close()
    assert target.sinks == {}
    # FFmpeg's client sees the refusal as a failed publish.
    code, err = await run_publisher(server.bound_port, "nope-654321", "--seconds", "0.5")
    assert code != 0 and "publish failed" in err


async def test_connect_to_another_application_is_rejected(ingest: tuple[Ingest, RtmpServer]) -> None:
    _, server = ingest
    client = await RtmpTestClient.connect(server.bound_port)
    await client.call("connect", {"app": "vod"})
    reply = await client.command_reply()
    assert reply[0] == "_error" and reply[3]["code"] == "NetConnection.Connect.Rejected"
    assert await client.closed_by_server()
    await client.close()


async def test_garbage_bytes_close_only_that_connection(
    ingest: tuple[Ingest, RtmpServer], caplog: pytest.LogCaptureFixture
) -> None:
    target, server = ingest
    caplog.set_level(logging.WARNING, "nchat_live.media.ingest.rtmp")
    healthy = await RtmpTestClient.connect(server.bound_port)
    assert (await healthy.start_publish("good-healthy"))[3]["code"] == "NetStream.Publish.Start"
    reader, writer = await asyncio.open_connection("127.0.0.1", server.bound_port)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + bytes(2000))
    await writer.drain()
    assert await asyncio.wait_for(reader.read(), 5) == b""  # closed without an answer
    writer.close()
    assert "RTMP version byte 0x47" in caplog.text
    # Garbage after a good handshake: a chunk stream that starts with a continuation header.
    bad = await RtmpTestClient.connect(server.bound_port)
    bad.writer.write(b"\xc4" + bytes(300))
    assert await bad.closed_by_server()
    await bad.close()
    assert "starts with a type-3 header" in caplog.text
    # The healthy publisher is still served.
    await healthy.send(VIDEO, b"\x17\x02\x00\x00\x00", stream_id=1, csid=6)
    await healthy.call("deleteStream", 1.0)
    assert await healthy.closed_by_server()
    await healthy.close()
    await asyncio.wait_for(target.sinks["good-healthy"].closed.wait(), 5)
    assert target.sinks["good-healthy"].close_reason is None


async def test_half_handshake_times_out(ingest: tuple[Ingest, RtmpServer], caplog: pytest.LogCaptureFixture) -> None:
    _, server = ingest
    caplog.set_level(logging.WARNING, "nchat_live.media.ingest.rtmp")
    reader, writer = await asyncio.open_connection("127.0.0.1", server.bound_port)
    writer.write(b"\x03" + bytes(700))  # C0 and half of C1
    await writer.drain()
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()
    assert "handshake not completed within 1 s" in caplog.text
    assert server.connections == 0


async def test_publisher_that_sends_no_media_is_closed(
    ingest: tuple[Ingest, RtmpServer], caplog: pytest.LogCaptureFixture
) -> None:
    target, server = ingest
    caplog.set_level(logging.WARNING, "nchat_live.media.ingest.rtmp")
    client = await RtmpTestClient.connect(server.bound_port)
    assert (await client.start_publish("good-silent"))[3]["code"] == "NetStream.Publish.Start"
    assert await client.closed_by_server(within=5)
    await client.close()
    sink = target.sinks["good-silent"]
    await asyncio.wait_for(sink.closed.wait(), 5)
    assert sink.close_reason == "no media within 1 s"
    assert "no media within 1 s" in caplog.text


async def test_codec_the_decoder_cannot_read_closes_the_publish(
    ingest: tuple[Ingest, RtmpServer], caplog: pytest.LogCaptureFixture
) -> None:
    target, server = ingest
    caplog.set_level(logging.WARNING, "nchat_live.media.ingest.rtmp")
    await run_publisher(server.bound_port, "good-flv1", "--seconds", "0.5", "--video-codec", "flv")
    sink = target.sinks["good-flv1"]
    await asyncio.wait_for(sink.closed.wait(), 5)
    assert sink.close_reason is not None and "Sorenson H.263" in sink.close_reason
    assert "publish H.264 video" in caplog.text
    # A broken sequence header is refused too.
    client = await RtmpTestClient.connect(server.bound_port)
    await client.start_publish("good-broken")
    await client.send(VIDEO, b"\x17\x00\x00\x00\x00" + b"\x01\x64\x00\x1f\xff\xe1\x00\x04junk", stream_id=1, csid=6)
    assert await client.closed_by_server()
    await client.close()
    await asyncio.wait_for(target.sinks["good-broken"].closed.wait(), 5)
    assert "sequence header" in (target.sinks["good-broken"].close_reason or "")
