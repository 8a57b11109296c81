"""Simulcast: each enabled destination of a live stream gets one of its renditions over RTMP(S).

No second encode: the ladder already encodes every rendition to H.264 + AAC in fMP4 segments. For
each finished segment of the chosen rendition, PyAV demuxes init + segment (in a thread) and the
packets become FLV tag bodies as they are (AVCC video with its composition offset, raw AAC), behind
the AVC and AAC sequence headers taken from the init segment. An asyncio RTMP client of our own
(handshake, connect, releaseStream/FCPublish, createStream, publish; TLS for rtmps://) sends
them, so a slow or unreachable destination never holds the GIL or the worker's event loop (FFmpeg's
RTMP client would, in `av.open`).

Each destination runs as one task: connecting -> live; a failure is `error` (its message is kept
and emitted as a `simulcast.status` event) and the push retries after 1, 2, 4 ... 60 s; the stream
ending stops it (`stopped`). Destinations added, changed, disabled or removed while the stream is
live are followed within REFRESH_SECONDS. The rendition is the destination's if the ladder has it, else the
highest below it, else the lowest; chosen once every rendition has finished its first segment.
A segment waiting behind a slow destination is dropped (oldest first, 8 queued at most): the
destination skips ahead rather than falling behind live. The latency added is one segment.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import ssl
import struct
from dataclasses import dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import av

from ...auth import Claims
from ...resolvers import simulcast as destinations
from ..hls.packager import SegmentInfo
from ..ingest.rtmp import amf0
from ..ingest.rtmp.chunks import (
    AUDIO,
    COMMAND_AMF0,
    DATA_AMF0,
    SET_CHUNK_SIZE,
    VIDEO,
    ChunkReader,
    Message,
    encode_message,
)
from ..transcode.ladder import HEIGHTS
from ..transcode.pipeline import PipelineObserver
from ..worker.observers import StreamObserver

if TYPE_CHECKING:
    from ..worker.manager import MediaManager
    from ..worker.streams import IngestSession, StreamInfo

log = logging.getLogger(__name__)

CHUNK_SIZE = 4096
CONNECT_TIMEOUT = 10.0
SEND_TIMEOUT = 10.0
BACKOFF_START = 1.0
BACKOFF_MAX = 60.0
QUEUE_SEGMENTS = 8
# How often a live stream's destinations are read again (added, changed, disabled, removed ones follow).
REFRESH_SECONDS = 5.0
_CSID_COMMAND, _CSID_AUDIO, _CSID_VIDEO, _CSID_DATA = 3, 4, 6, 5


class RtmpPushError(OSError):
    """The destination refused or broke the push."""


@dataclass(frozen=True)
class Target:
    id: str
    name: str
    url: str
    stream_key: str
    rendition: str


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    tls: bool
    app: str
    tc_url: str


def endpoint(url: str) -> Endpoint:
    parts = urlsplit(url)
    tls = parts.scheme.lower() == "rtmps"
    if parts.scheme.lower() not in ("rtmp", "rtmps") or not parts.hostname:
        raise RtmpPushError(f"not an RTMP URL: {parts.scheme}://{parts.hostname}")
    port = parts.port or (443 if tls else 1935)
    app = parts.path.strip("/")
    return Endpoint(parts.hostname, port, tls, app, url.rstrip("/"))


# -- fMP4 segment -> FLV tag bodies ---------------------------------------------------------------

@dataclass
class Tags:
    headers: list[tuple[int, bytes]]
    tags: list[tuple[int, int, bytes]]  # (type id, milliseconds, FLV tag body)
    width: int = 0
    height: int = 0


def flv_tags(init: bytes, segment: bytes) -> Tags:
    """The segment's packets as FLV audio/video tag bodies in time order, with the sequence headers."""
    headers: list[tuple[int, bytes]] = []
    tags: list[tuple[int, int, bytes]] = []
    with av.open(io.BytesIO(init + segment), "r", format="mp4") as container:
        video = container.streams.video[0] if container.streams.video else None
        audio = container.streams.audio[0] if container.streams.audio else None
        width = height = 0
        if video is not None and video.codec_context.extradata:
            headers.append((VIDEO, b"\x17\x00\x00\x00\x00" + bytes(video.codec_context.extradata)))
            width, height = video.codec_context.width, video.codec_context.height
        if audio is not None and audio.codec_context.extradata:
            headers.append((AUDIO, b"\xaf\x00" + bytes(audio.codec_context.extradata)))
        for packet in container.demux():
            if packet.size == 0 or packet.dts is None or packet.time_base is None:
                continue
            base: Fraction = packet.time_base
            ms = round(float(packet.dts * base) * 1000)
            if video is not None and packet.stream.index == video.index:
                offset = round(float(((packet.pts if packet.pts is not None else packet.dts) - packet.dts) * base)
                               * 1000)
                head = bytes([0x17 if packet.is_keyframe else 0x27, 0x01]) + offset.to_bytes(3, "big", signed=True)
                tags.append((VIDEO, ms, head + bytes(packet)))
            elif audio is not None and packet.stream.index == audio.index:
                tags.append((AUDIO, ms, b"\xaf\x01" + bytes(packet)))
    tags.sort(key=lambda t: (t[1], t[0] != VIDEO))
    return Tags(headers, tags, width, height)


# -- an RTMP publishing client ---------------------------------------------------------------------

async def _connect(addresses: list[str], where: Endpoint, context: ssl.SSLContext | None,
                   ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """The first of the resolved addresses that accepts (TLS names the host, not the address)."""
    failure: OSError = RtmpPushError(f"{where.host} has no address")
    for address in addresses:
        try:
            return await asyncio.open_connection(
                address, where.port, ssl=context, server_hostname=where.host if where.tls else None)
        except OSError as exc:
            failure = exc
    raise failure


class RtmpPublisher:
    """One publish session to one destination (asyncio; TLS for rtmps)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.raw = reader
        self.writer = writer
        self.reader = ChunkReader(reader)
        self.txn = 0
        self.stream_id = 0
        self._drain_task: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, url: str, key: str, *, allow_private: bool = False) -> RtmpPublisher:
        where = endpoint(url)
        context = ssl.create_default_context() if where.tls else None
        async with asyncio.timeout(CONNECT_TIMEOUT):
            # Every address the name has now must be public (DNS can change after the save-time check),
            # and the connection goes to one of those addresses, not to a second lookup's.
            try:
                addresses = await destinations.resolve_destination(where.host, where.port,
                                                                   allow_private=allow_private)
            except destinations.DestinationNotAllowed as exc:
                raise RtmpPushError(exc.message) from exc
            reader, writer = await _connect(addresses, where, context)
            client = cls(reader, writer)
            try:
                await client._handshake()
                await client._publish(where, key)
            except BaseException:
                await client.close()
                raise
        client._drain_task = asyncio.get_running_loop().create_task(client._drain())
        return client

    async def _handshake(self) -> None:
        c1 = struct.pack(">II", 0, 0) + os.urandom(1528)
        self.writer.write(b"\x03" + c1)
        await self.writer.drain()
        s0 = await self.raw.readexactly(1)
        s1 = await self.raw.readexactly(1536)
        await self.raw.readexactly(1536)
        if s0 != b"\x03":
            raise RtmpPushError(f"RTMP version {s0[0]} is not 3")
        self.writer.write(s1)
        self.writer.write(encode_message(2, Message(SET_CHUNK_SIZE, 0, 0, struct.pack(">I", CHUNK_SIZE)), 128))
        await self.writer.drain()

    async def _call(self, name: str, *args: Any, stream_id: int = 0) -> int:
        self.txn += 1
        self.writer.write(encode_message(
            _CSID_COMMAND, Message(COMMAND_AMF0, stream_id, 0, amf0.encode(name, self.txn, *args)), CHUNK_SIZE))
        await self.writer.drain()
        return self.txn

    async def _reply(self, txn: int | None = None, *, status: bool = False) -> list[Any]:
        """The `_result`/`_error` of call `txn`, or the next onStatus; protocol messages handled on the way."""
        while True:
            message = await self.reader.read_message()
            if message.type_id == SET_CHUNK_SIZE:
                self.reader.set_chunk_size(struct.unpack(">I", message.payload[:4])[0] & 0x7FFFFFFF)
                continue
            if message.type_id != COMMAND_AMF0:
                continue
            values = amf0.decode_all(message.payload)
            if not values:
                continue
            if status and values[0] == "onStatus":
                return values
            if txn is not None and values[0] in ("_result", "_error") and len(values) > 1 and values[1] == txn:
                if values[0] == "_error":
                    raise RtmpPushError(f"refused: {_description(values)}")
                return values

    async def _publish(self, where: Endpoint, key: str) -> None:
        txn = await self._call("connect", {"app": where.app, "type": "nonprivate", "flashVer": "FMLE/3.0 (nchat-live)",
                                           "tcUrl": where.tc_url})
        await self._reply(txn)
        await self._call("releaseStream", None, key)
        await self._call("FCPublish", None, key)
        reply = await self._reply(await self._call("createStream", None))
        self.stream_id = int(reply[3]) if len(reply) > 3 and isinstance(reply[3], int | float) else 1
        await self._call("publish", None, key, "live", stream_id=self.stream_id)
        answer = await self._reply(status=True)
        info = answer[3] if len(answer) > 3 and isinstance(answer[3], dict) else {}
        if info.get("code") != "NetStream.Publish.Start":
            raise RtmpPushError(f"publish refused: {info.get('code')} {info.get('description') or ''}".strip())

    async def _drain(self) -> None:
        # What the server sends after publish (acknowledgements, pings, status) is read and dropped.
        with contextlib.suppress(Exception):
            while True:
                message = await self.reader.read_message()
                if message.type_id == SET_CHUNK_SIZE:
                    self.reader.set_chunk_size(struct.unpack(">I", message.payload[:4])[0] & 0x7FFFFFFF)

    @property
    def closed(self) -> bool:
        return self._drain_task is not None and self._drain_task.done()

    async def metadata(self, width: int, height: int) -> None:
        body = amf0.encode("@setDataFrame", "onMetaData", {"width": width, "height": height, "videocodecid": 7,
                                                            "audiocodecid": 10, "encoder": "nchat-live simulcast"})
        await self.send(DATA_AMF0, 0, body)

    async def send(self, type_id: int, timestamp: int, payload: bytes) -> None:
        if self.closed:
            raise RtmpPushError("the destination closed the connection")
        csid = _CSID_VIDEO if type_id == VIDEO else _CSID_AUDIO if type_id == AUDIO else _CSID_DATA
        self.writer.write(encode_message(csid, Message(type_id, self.stream_id, timestamp, payload), CHUNK_SIZE))
        async with asyncio.timeout(SEND_TIMEOUT):
            await self.writer.drain()

    async def close(self) -> None:
        if self._drain_task is not None:
            self._drain_task.cancel()
        with contextlib.suppress(Exception):
            if self.stream_id:
                await self._call("FCUnpublish", None, "")
                await self._call("deleteStream", None, self.stream_id)
        self.writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.writer.wait_closed(), 2)


def _description(values: list[Any]) -> str:
    for value in values[2:]:
        if isinstance(value, dict) and (value.get("description") or value.get("code")):
            return str(value.get("description") or value.get("code"))
    return "no reason given"


# -- per destination ---------------------------------------------------------------------------------

@dataclass
class Segment:
    init: bytes
    data: bytes
    discontinuity: bool


@dataclass
class Push:
    """One destination's push: its task and the segments waiting for it."""

    owner: Simulcast
    stream_id: str
    target: Target
    queue: asyncio.Queue[Segment] = field(default_factory=lambda: asyncio.Queue(QUEUE_SEGMENTS))
    rendition: str | None = None
    task: asyncio.Task[None] | None = None
    dropped: int = 0
    sent_tags: int = 0

    def offer(self, segment: Segment) -> None:
        if self.queue.full():
            self.queue.get_nowait()
            self.dropped += 1
        self.queue.put_nowait(segment)

    async def run(self) -> None:
        attempts = 0
        backoff = BACKOFF_START
        try:
            while True:
                await self.owner.report(self.target.id, "connecting", attempts=attempts)
                while not self.queue.empty():  # what waited during the outage is stale: resume at live
                    self.queue.get_nowait()
                # Connect when there is something to send (a destination may drop a silent publisher).
                first = await self.queue.get()
                client: RtmpPublisher | None = None
                try:
                    client = await RtmpPublisher.open(self.target.url, self.target.stream_key,
                                                  allow_private=self.owner.allow_private)
                    await self._send(client, first)
                except (OSError, EOFError, ValueError, TimeoutError, asyncio.IncompleteReadError,
                        av.error.FFmpegError) as exc:
                    attempts += 1
                    reason = str(exc) or type(exc).__name__
                    log.info("simulcast %s of stream %s: %s (retry in %.0f s)", self.target.name, self.stream_id,
                             reason, backoff)
                    await self.owner.report(self.target.id, "error", error=reason, attempts=attempts)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, BACKOFF_MAX)
                    continue
                finally:
                    if client is not None:
                        await client.close()
        finally:
            await asyncio.shield(self.owner.report(self.target.id, "stopped"))

    async def _send(self, client: RtmpPublisher, first: Segment) -> None:
        """Segments until the connection fails; timestamps start at 0 and never go back."""
        base: int | None = None
        last = 0
        init: bytes | None = None
        live = False
        pending: Segment | None = first
        while True:
            current = pending if pending is not None else await self.queue.get()
            pending = None
            tags = await asyncio.to_thread(flv_tags, current.init, current.data)
            if not tags.tags:
                continue
            start = tags.tags[0][1]
            if base is None:
                base = start
            elif start - base < last - 1000 or current.discontinuity:
                base = start - last - 33  # the source's clock restarted: continue from here
            if init != current.init:
                init = current.init
                if not live:
                    await client.metadata(tags.width, tags.height)
                for type_id, body in tags.headers:
                    await client.send(type_id, max(0, last), body)
            for type_id, ms, body in tags.tags:
                at = max(0, ms - base)
                await client.send(type_id, at, body)
                last = max(last, at)
                self.sent_tags += 1
            if not live:
                live = True
                await self.owner.report(self.target.id, "live", error=None, attempts=0)


# -- the observer ------------------------------------------------------------------------------------

class _Tap(PipelineObserver):
    """On the pipeline's thread: hands each finished segment (with its init) to the event loop."""

    def __init__(self, owner: Simulcast, stream_id: str) -> None:
        self.owner = owner
        self.stream_id = stream_id
        self.inits: dict[str, bytes] = {}

    def on_segment(self, info: SegmentInfo) -> None:
        if not self.owner.wants(self.stream_id):
            return
        init = self.inits.get(info.init_key)
        if init is None:
            init = self.owner.manager.storage.read(info.init_key)
            if init is None:
                return
            self.inits[info.init_key] = init
        self.owner.from_thread(self.stream_id, info.rendition, info.msn, Segment(init, info.data, info.discontinuity))


def choose_rendition(preferred: str, available: list[str]) -> str | None:
    """The preferred rung if produced, else the highest produced below it, else the lowest produced."""
    if not available:
        return None
    if preferred in available:
        return preferred
    height = HEIGHTS.get(preferred) or _height(preferred)
    by_height = sorted(available, key=_height)
    lower = [r for r in by_height if _height(r) <= height]
    return lower[-1] if lower else by_height[0]


def _height(name: str) -> int:
    digits = name.rstrip("p")
    return int(digits) if digits.isdigit() else 0


class Simulcast(StreamObserver):
    """Attached to the media worker: starts each live stream's destinations and feeds them."""

    def __init__(self, manager: MediaManager) -> None:
        self.manager = manager
        self.db = manager.database
        self.refresh_seconds = REFRESH_SECONDS
        self.allow_private = manager.settings.simulcast_allow_private
        self.live: set[str] = set()
        self.pushes: dict[str, list[Push]] = {}
        self.renditions: dict[str, list[str]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loading: set[asyncio.Task[None]] = set()
        self._refresher: asyncio.Task[None] | None = None
        self._sync_lock = asyncio.Lock()

    def pipeline_observer(self, info: StreamInfo) -> PipelineObserver:
        return _Tap(self, info.stream_id)

    def on_started(self, session: IngestSession) -> None:
        self._loop = asyncio.get_running_loop()
        self.live.add(session.stream_id)
        task = self._loop.create_task(self._sync(session.stream_id))
        self._loading.add(task)
        task.add_done_callback(self._loading.discard)
        if self._refresher is None or self._refresher.done():
            self._refresher = self._loop.create_task(self._refresh())

    def on_ended(self, session: IngestSession, reason: str) -> None:
        self.live.discard(session.stream_id)
        for push in self.pushes.pop(session.stream_id, []):
            if push.task is not None:
                push.task.cancel()
        self.renditions.pop(session.stream_id, None)

    async def stop(self) -> None:
        self.live.clear()
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
        for task in list(self._loading):
            task.cancel()
        tasks = [p.task for pushes in self.pushes.values() for p in pushes if p.task is not None]
        self.pushes.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, *self._loading, return_exceptions=True)

    async def _refresh(self) -> None:
        while self.live:
            await asyncio.sleep(self.refresh_seconds)
            for stream_id in list(self.live):
                await self._sync(stream_id)

    async def _sync(self, stream_id: str) -> None:
        """Start the stream's new destinations, restart changed ones, stop disabled or removed ones; the
        others (a publisher reconnecting within its grace included) go on."""
        async with self._sync_lock:
            try:
                async with self.db.session(Claims.service()) as session:
                    rows = await destinations.simulcast_targets(session, stream_id)
            except Exception:
                log.exception("stream %s: simulcast destinations not loaded", stream_id)
                return
            if stream_id not in self.live:
                return
            wanted = {str(r["id"]): Target(str(r["id"]), r["name"], r["url"], r["stream_key"], r["rendition"])
                      for r in rows}
            kept: list[Push] = []
            for push in self.pushes.get(stream_id, []):
                if wanted.get(push.target.id) == push.target:
                    kept.append(push)
                elif push.task is not None:
                    push.task.cancel()
            running = {p.target.id for p in kept}
            for target_id, target in wanted.items():
                if target_id not in running:
                    push = Push(self, stream_id, target)
                    push.task = asyncio.get_running_loop().create_task(push.run())
                    kept.append(push)
            if kept:
                self.pushes[stream_id] = kept
            else:
                self.pushes.pop(stream_id, None)

    def wants(self, stream_id: str) -> bool:
        return stream_id in self.pushes

    def from_thread(self, stream_id: str, rendition: str, msn: int, segment: Segment) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._segment, stream_id, rendition, msn, segment)

    def _segment(self, stream_id: str, rendition: str, msn: int, segment: Segment) -> None:
        seen = self.renditions.setdefault(stream_id, [])
        if rendition not in seen:
            seen.append(rendition)
        for push in self.pushes.get(stream_id, []):
            if push.rendition is None and msn >= 1:
                push.rendition = choose_rendition(push.target.rendition, seen)
            if push.rendition == rendition:
                push.offer(segment)

    async def report(self, destination_id: str, status: str, *, error: str | None = None,
                     attempts: int | None = None) -> None:
        try:
            async with self.db.session(Claims.service()) as session:
                await destinations.set_status(session, destination_id, status, error=error, attempts=attempts)
        except Exception:
            log.exception("simulcast destination %s: status %s not recorded", destination_id, status)
