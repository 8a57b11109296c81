"""RTMP publishes routed by stream key into the media manager, the same path WHIP takes.

The stream name of `rtmp://host:1935/live/<stream key>` picks the stream. Unknown keys, a second
publisher for a live stream and a publish beyond the worker's capacity are refused at publish;
unknown keys count against the client address (media/throttle.py), whose connections are then
dropped. A key rotated while publishing disconnects the publisher (MediaManager.recheck). FLV
packets are decoded once in a worker thread and the frames handed to the stream's sink (the pipeline,
or the guest program when the stream has guests: worker/guests.py); the
manager owns the lifecycle (live on first media, grace period, reconnect = discontinuity).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from ....auth import Claims
from ....errors import Conflict, NchatError
from .decode import FlvDecoder
from .server import PublishEnded, PublishRefused, PublishRequest, RtmpServer

if TYPE_CHECKING:
    from ...worker.manager import MediaManager
    from ...worker.streams import IngestSession

log = logging.getLogger(__name__)


class RtmpPublisher:
    """One RTMP publish: the manager's `Publisher` and the server's `PublishSink` in one object."""

    kind = "rtmp"

    def __init__(self, manager: MediaManager, request: PublishRequest, stream_id: str) -> None:
        self.manager = manager
        self.request = request
        self.stream_id = stream_id
        self.live: IngestSession | None = None
        self.decoder = FlvDecoder()
        self.meta: dict[str, Any] = {}
        self.bytes_in = 0
        self._window_start = time.monotonic()
        self._window_bytes = 0
        self._kbps = 0.0
        self._ended = False

    # -- PublishSink (called by the RTMP connection) -------------------------------------------

    async def video(self, timestamp: int, payload: bytes) -> None:
        live = self._live()
        self._count(len(payload))
        frames = await asyncio.to_thread(self.decoder.video, timestamp, payload)
        sink = live.sink()
        for frame in frames:
            sink.push_video(frame)
        if frames:
            live.media_arrived()

    async def audio(self, timestamp: int, payload: bytes) -> None:
        live = self._live()
        self._count(len(payload))
        sink = live.sink()
        for frame in await asyncio.to_thread(self.decoder.audio, timestamp, payload):
            sink.push_audio(frame)

    async def metadata(self, values: dict[str, Any]) -> None:
        self.meta = values

    async def close(self, reason: str | None = None) -> None:
        """Both ends call this: the connection when the publish ends, the manager to stop it."""
        if self._ended:
            return
        self._ended = True
        live = self.live
        if live is not None and live.publisher is self:
            sink = live.sink()
            for frame in await asyncio.to_thread(self.decoder.close):
                sink.push_video(frame)
        self.request.disconnect()
        if reason is not None:
            log.warning("stream %s: RTMP publish ended: %s", self.stream_id, reason)
        await self.manager.publisher_disconnected(self.stream_id, self)

    # -- Publisher (read by the manager's metrics loop) -----------------------------------------

    async def stats(self) -> dict[str, Any]:
        return {"upload_bitrate_kbps": round(self._kbps, 1)}

    def _live(self) -> IngestSession:
        live = self.live
        if self._ended or live is None or live.ending is not None or live.publisher is not self:
            raise PublishEnded(f"stream {self.stream_id} is no longer taking media from this publisher")
        return live

    def _count(self, size: int) -> None:
        self.bytes_in += size
        self._window_bytes += size
        now = time.monotonic()
        if now - self._window_start >= 2.0:
            self._kbps = self._window_bytes * 8 / 1000 / (now - self._window_start)
            self._window_start, self._window_bytes = now, 0


class RtmpIngest:
    """The RTMP server of a process, publishing into `manager` (start it with the media manager)."""

    def __init__(
        self,
        manager: MediaManager,
        *,
        host: str | None = None,
        port: int | None = None,
        media_timeout: float | None = None,
        idle_timeout: float | None = None,
        handshake_timeout: float = 10.0,
    ) -> None:
        """Host, timeouts and limits default to the settings (NCHAT_RTMP_*); an unset NCHAT_RTMP_HOST
        follows `serve --host` (the CLI fills it in), else loopback only."""
        self.manager = manager
        settings = manager.settings
        self.server = RtmpServer(
            self.on_publish,
            host=host or settings.rtmp_host or "127.0.0.1",
            port=settings.rtmp_port if port is None else port,
            handshake_timeout=handshake_timeout,
            idle_timeout=settings.rtmp_idle_timeout_seconds if idle_timeout is None else idle_timeout,
            media_timeout=settings.rtmp_media_timeout_seconds if media_timeout is None else media_timeout,
            publish_timeout=settings.rtmp_publish_timeout_seconds,
            max_chunk_size=settings.rtmp_max_chunk_size,
            max_message_size=settings.rtmp_max_message_bytes,
            max_buffered=settings.rtmp_max_buffered_bytes,
            max_total_buffered=settings.rtmp_max_total_buffered_bytes,
            max_chunk_streams=settings.rtmp_max_chunk_streams,
            admit=lambda address: manager.key_throttle.retry_after(address) is None,
        )

    @property
    def port(self) -> int:
        return self.server.bound_port

    async def start(self) -> None:
        await self.server.start()

    async def stop(self) -> None:
        await self.server.stop()

    async def on_publish(self, request: PublishRequest) -> RtmpPublisher:
        throttle = self.manager.key_throttle
        address = request.peer.rsplit(":", 1)[0]
        wait = throttle.retry_after(address)
        if wait is not None:
            raise PublishRefused(f"too many failed stream keys from this address; retry in {wait} s",
                                 code="NetStream.Publish.Failed")
        async with self.manager.database.session(Claims.service()) as session:
            stream_id = await session.fetchval("SELECT id FROM nchat_streams WHERE stream_key = $1", request.key)
        if stream_id is None:
            await throttle.failed(address)
            raise PublishRefused("unknown stream key")
        try:
            info = await self.manager.stream_info(str(stream_id))
            publisher = RtmpPublisher(self.manager, request, info.stream_id)
            publisher.live = await self.manager.publisher_connected(info, publisher)
        except Conflict as exc:
            raise PublishRefused(exc.message) from exc
        except NchatError as exc:
            raise PublishRefused(exc.message, code="NetStream.Publish.Failed") from exc
        log.info("stream %s: RTMP publisher %s", info.stream_id, request.peer)
        return publisher


async def start_rtmp(manager: MediaManager) -> RtmpIngest | None:
    """The process's RTMP server when `settings.rtmp_enabled`; None when off, or when another process
    holds the port (WHIP, HLS and the API keep working without RTMP)."""
    settings = manager.settings
    if not settings.rtmp_enabled:
        return None
    rtmp = RtmpIngest(manager, media_timeout=settings.rtmp_media_timeout_seconds)
    try:
        await rtmp.start()
    except OSError as exc:
        log.error("RTMP ingest not started on port %s: %s", rtmp.server.port, exc)
        return None
    return rtmp
