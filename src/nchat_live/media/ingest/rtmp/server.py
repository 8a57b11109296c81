"""An asyncio RTMP server that accepts publishers (OBS "Custom" service, FFmpeg) and nothing else.

It speaks the handshake, the chunk stream, the protocol control messages and the AMF0 commands
of a publish (connect, releaseStream, FCPublish, createStream, publish, FCUnpublish,
deleteStream). What happens to a publish is the `on_publish` callback's business: it refuses
with `PublishRefused` or returns a `PublishSink` that receives the FLV audio/video tag bodies.
One task per connection; whatever goes wrong in one closes that connection with a logged reason.

Limits: a connection must publish within `publish_timeout` of its arrival, send its first media
within `media_timeout` of the publish, and then media at least every `idle_timeout` (only audio
and video of the publish count as progress, not control messages); the chunk size it may set,
the bytes it may hold in unfinished messages and its chunk streams are capped, and so are the bytes
all connections hold in unfinished messages together (`max_total_buffered`: past it, the connection
holding the most before a publish is dropped first; see chunks.BufferBudget);
`admit(peer host)` may refuse a connection before the handshake (a throttled address).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from . import amf0
from .chunks import (
    ABORT,
    ACK,
    AUDIO,
    COMMAND_AMF0,
    COMMAND_AMF3,
    DATA_AMF0,
    DATA_AMF3,
    MAX_BUFFERED,
    MAX_CHUNK_STREAMS,
    MAX_MESSAGE_SIZE,
    MAX_TOTAL_BUFFERED,
    SET_CHUNK_SIZE,
    SET_PEER_BANDWIDTH,
    USER_CONTROL,
    VIDEO,
    WINDOW_ACK_SIZE,
    BufferBudget,
    ChunkReader,
    Message,
    ProtocolError,
    encode_message,
)
from .flv import UnsupportedMedia
from .handshake import HandshakeError, server_handshake

log = logging.getLogger(__name__)

# Chunk stream ids we send on: protocol control, connection commands, stream commands.
_CS_CONTROL, _CS_COMMAND, _CS_STREAM = 2, 3, 5
_OUT_CHUNK_SIZE = 4096
_WINDOW = 2_500_000
_STREAM_ID = 1
# User control events.
_STREAM_BEGIN, _PING_REQUEST, _PING_RESPONSE = 0, 6, 7


def _nothing() -> None:
    return None


@dataclass(frozen=True, slots=True)
class PublishRequest:
    app: str
    key: str
    peer: str
    tc_url: str | None = None
    # Drops the connection (the stream was ended elsewhere); the sink's close() follows.
    disconnect: Callable[[], None] = _nothing


class PublishRefused(Exception):
    """Raised by `on_publish` to refuse; the description goes to the client in onStatus."""

    def __init__(self, description: str, code: str = "NetStream.Publish.BadName") -> None:
        super().__init__(description)
        self.description = description
        self.code = code


class PublishEnded(Exception):
    """Raised by a sink when the stream behind it ended (failed, ended elsewhere): closes the connection."""


class PublishSink(Protocol):
    """Where a publish's media goes. Raising from `video`/`audio` closes the connection."""

    async def video(self, timestamp: int, payload: bytes) -> None: ...

    async def audio(self, timestamp: int, payload: bytes) -> None: ...

    async def metadata(self, values: dict[str, Any]) -> None: ...

    async def close(self, reason: str | None) -> None:
        """The publish ended: `reason` is None when the publisher ended it cleanly."""


OnPublish = Callable[[PublishRequest], Awaitable[PublishSink]]


class _Closing(Exception):
    def __init__(self, reason: str, *, clean: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.clean = clean


class RtmpServer:
    """Listens on one port for many publishers at once."""

    def __init__(
        self,
        on_publish: OnPublish,
        *,
        host: str = "127.0.0.1",
        port: int = 1935,
        apps: tuple[str, ...] = ("live",),
        handshake_timeout: float = 10.0,
        idle_timeout: float = 30.0,
        media_timeout: float = 10.0,
        publish_timeout: float = 10.0,
        max_chunk_size: int = 1024 * 1024,
        max_message_size: int = MAX_MESSAGE_SIZE,
        max_buffered: int = MAX_BUFFERED,
        max_total_buffered: int = MAX_TOTAL_BUFFERED,
        max_chunk_streams: int = MAX_CHUNK_STREAMS,
        admit: Callable[[str], bool] | None = None,
    ) -> None:
        self.on_publish = on_publish
        self.host = host
        self.port = port
        self.apps = apps
        self.handshake_timeout = handshake_timeout
        self.idle_timeout = idle_timeout
        self.media_timeout = media_timeout
        self.publish_timeout = publish_timeout
        self.max_chunk_size = max_chunk_size
        self.max_message_size = max_message_size
        self.max_buffered = max_buffered
        self.max_chunk_streams = max_chunk_streams
        self.budget = BufferBudget(max_total_buffered)
        self.admit = admit
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def bound_port(self) -> int:
        assert self._server is not None, "server not started"
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def connections(self) -> int:
        return len(self._tasks)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, self.host, self.port)
        log.info("RTMP ingest listening on %s:%d", self.host, self.bound_port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def __aenter__(self) -> RtmpServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            peer = writer.get_extra_info("peername")
            host = peer[0] if isinstance(peer, tuple) else str(peer)
            if self.admit is not None and not self.admit(host):
                log.warning("rtmp %s: refused before the handshake (too many failed stream keys)", host)
                writer.transport.abort()
                return
            await _Connection(self, reader, writer).run()
        finally:
            self._tasks.discard(task)


class _Connection:
    def __init__(
        self, server: RtmpServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.server = server
        self.reader = ChunkReader(
            reader, max_chunk_size=server.max_chunk_size, max_message_size=server.max_message_size,
            max_buffered=server.max_buffered, max_chunk_streams=server.max_chunk_streams,
            budget=server.budget, on_evict=self._evicted,
        )
        self.raw_reader = reader
        self.writer = writer
        peer = writer.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        self.host = peer[0] if isinstance(peer, tuple) else str(peer)
        # The connection closes at this loop time unless progress moves it (module docstring).
        loop = asyncio.get_running_loop()
        self.deadline = loop.time() + server.publish_timeout
        self.deadline_reason = f"no publish with a valid stream key within {server.publish_timeout:g} s"
        self.app: str | None = None
        self.tc_url: str | None = None
        self.sink: PublishSink | None = None
        self.key: str | None = None
        self.media_seen = False
        self.peer_window = 0
        self.acked = 0
        # The spec's initial chunk size until we announce ours.
        self.out_chunk_size = 128

    async def run(self) -> None:
        reason: str | None = "connection closed"
        try:
            try:
                async with asyncio.timeout(self.server.handshake_timeout):
                    await server_handshake(self.raw_reader, self.writer)
            except TimeoutError as exc:
                raise _Closing(f"handshake not completed within {self.server.handshake_timeout:g} s") from exc
            except asyncio.IncompleteReadError as exc:
                raise _Closing(f"handshake stopped after {len(exc.partial)} bytes of a packet") from exc
            while True:
                message = await self._next_message()
                await self._handle(message)
        except _Closing as closing:
            reason = None if closing.clean else closing.reason
            if closing.clean:
                log.info("rtmp %s: %s", self.peer, closing.reason)
            else:
                log.warning("rtmp %s (key %s): closing: %s", self.peer, _mask(self.key), closing.reason)
        except (HandshakeError, ProtocolError, amf0.AmfError, UnsupportedMedia, PublishEnded) as exc:
            reason = str(exc)
            log.warning("rtmp %s (key %s): closing: %s", self.peer, _mask(self.key), reason)
        except (ConnectionError, asyncio.IncompleteReadError):
            reason = "publisher disconnected" if self.sink is not None else "connection closed"
            log.info("rtmp %s (key %s): %s", self.peer, _mask(self.key), reason)
        except asyncio.CancelledError:
            reason = "server shutting down"
            raise
        except Exception as exc:
            reason = f"internal error: {exc.__class__.__name__}"
            log.exception("rtmp %s (key %s): closing after an unexpected error", self.peer, _mask(self.key))
        finally:
            await self._finish(reason)

    def _evicted(self) -> None:
        log.warning("rtmp %s (key %s): dropped: the server's buffers for unfinished messages are full and "
                    "this connection held the most before publishing", self.peer, _mask(self.key))
        self._disconnect()

    def _disconnect(self) -> None:
        if not self.writer.is_closing():
            self.writer.transport.abort()

    async def _finish(self, reason: str | None) -> None:
        self.reader.release()
        sink, self.sink = self.sink, None
        if sink is not None:
            try:
                await sink.close(reason)
            except Exception:
                log.exception("rtmp %s: closing the publish sink failed", self.peer)
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()

    def _extend(self, seconds: float, reason: str) -> None:
        self.deadline = asyncio.get_running_loop().time() + seconds
        self.deadline_reason = reason

    async def _next_message(self) -> Message:
        try:
            async with asyncio.timeout_at(self.deadline):
                message = await self.reader.read_message()
        except TimeoutError as exc:
            raise _Closing(self.deadline_reason) from exc
        if self.peer_window and self.reader.bytes_read - self.acked >= self.peer_window:
            self.acked = self.reader.bytes_read
            await self._send(_CS_CONTROL, ACK, 0, struct.pack(">I", self.acked & 0xFFFFFFFF))
        return message

    async def _send(self, csid: int, type_id: int, stream_id: int, payload: bytes) -> None:
        self.writer.write(encode_message(csid, Message(type_id, stream_id, 0, payload), self.out_chunk_size))
        await self.writer.drain()

    async def _command(self, csid: int, stream_id: int, *values: Any) -> None:
        await self._send(csid, COMMAND_AMF0, stream_id, amf0.encode(*values))

    async def _status(self, level: str, code: str, description: str) -> None:
        info = {"level": level, "code": code, "description": description}
        await self._command(_CS_STREAM, _STREAM_ID, "onStatus", 0, None, info)

    async def _handle(self, message: Message) -> None:
        kind = message.type_id
        if kind in (AUDIO, VIDEO):
            if self.sink is None:
                raise _Closing("media received before a successful publish")
            self.media_seen = True
            if message.payload:
                self._extend(self.server.idle_timeout, f"no media for {self.server.idle_timeout:g} s")
            if kind == VIDEO:
                await self.sink.video(message.timestamp, message.payload)
            else:
                await self.sink.audio(message.timestamp, message.payload)
        elif kind == SET_CHUNK_SIZE:
            if len(message.payload) < 4:
                raise ProtocolError("set chunk size message shorter than 4 bytes")
            self.reader.set_chunk_size(struct.unpack(">I", message.payload[:4])[0])
        elif kind == WINDOW_ACK_SIZE:
            if len(message.payload) >= 4:
                self.peer_window = struct.unpack(">I", message.payload[:4])[0]
        elif kind == ABORT:
            if len(message.payload) >= 4:
                self.reader.abort(struct.unpack(">I", message.payload[:4])[0])
        elif kind == USER_CONTROL:
            if len(message.payload) >= 6 and struct.unpack(">H", message.payload[:2])[0] == _PING_REQUEST:
                pong = struct.pack(">H", _PING_RESPONSE) + message.payload[2:6]
                await self._send(_CS_CONTROL, USER_CONTROL, 0, pong)
        elif kind in (COMMAND_AMF0, COMMAND_AMF3):
            payload = message.payload[1:] if kind == COMMAND_AMF3 else message.payload
            await self._on_command(amf0.decode_all(payload))
        elif kind in (DATA_AMF0, DATA_AMF3):
            payload = message.payload[1:] if kind == DATA_AMF3 else message.payload
            values = amf0.decode_all(payload)
            if values and values[0] == "@setDataFrame":
                values = values[1:]
            if self.sink is not None and values[:1] == ["onMetaData"] and isinstance(values[-1], dict):
                await self.sink.metadata(values[-1])
        # ACK and SET_PEER_BANDWIDTH from a publisher need no answer.
        elif kind not in (ACK, SET_PEER_BANDWIDTH):
            log.debug("rtmp %s: ignoring message type %d", self.peer, kind)

    async def _on_command(self, values: list[Any]) -> None:
        if not values or not isinstance(values[0], str):
            raise ProtocolError("command message without a command name")
        name = values[0]
        txn = values[1] if len(values) > 1 and isinstance(values[1], float) else 0.0
        command_object = values[2] if len(values) > 2 else None
        args = values[3:]
        if name == "connect":
            await self._connect(txn, command_object if isinstance(command_object, dict) else {})
        elif self.app is None:
            raise ProtocolError(f"command '{name}' before connect")
        elif name in ("releaseStream", "FCPublish", "FCUnpublish"):
            if name == "FCUnpublish" and self.sink is not None:
                raise _Closing("publisher ended the stream (FCUnpublish)", clean=True)
            if txn:
                await self._command(_CS_COMMAND, 0, "_result", txn, None)
        elif name == "createStream":
            await self._command(_CS_COMMAND, 0, "_result", txn, None, _STREAM_ID)
        elif name == "publish":
            await self._publish(args)
        elif name in ("deleteStream", "closeStream"):
            raise _Closing(f"publisher ended the stream ({name})", clean=True)
        elif name == "play":
            await self._status("error", "NetStream.Play.Failed", "only publishing is served; watch over HLS")
            raise _Closing("play requested; only publishing is served")
        elif txn:
            # Unknown calls that expect an answer get an _error, so the client does not wait forever.
            await self._command(_CS_COMMAND, 0, "_error", txn, None, {
                "level": "error", "code": "NetConnection.Call.Failed",
                "description": f"unknown call '{name}'",
            })

    async def _connect(self, txn: float, props: dict[str, Any]) -> None:
        if self.app is not None:
            raise ProtocolError("second connect on one connection")
        app = str(props.get("app") or "").split("?", 1)[0].strip("/")
        if app not in self.server.apps:
            await self._command(_CS_COMMAND, 0, "_error", txn, None, {
                "level": "error", "code": "NetConnection.Connect.Rejected",
                "description": f"unknown application '{app}'; publish to {', '.join(self.server.apps)}",
            })
            raise _Closing(f"connect to unknown application '{app}'")
        self.app = app
        tc_url = props.get("tcUrl")
        self.tc_url = tc_url if isinstance(tc_url, str) else None
        await self._send(_CS_CONTROL, WINDOW_ACK_SIZE, 0, struct.pack(">I", _WINDOW))
        await self._send(_CS_CONTROL, SET_PEER_BANDWIDTH, 0, struct.pack(">IB", _WINDOW, 2))
        await self._send(_CS_CONTROL, SET_CHUNK_SIZE, 0, struct.pack(">I", _OUT_CHUNK_SIZE))
        self.out_chunk_size = _OUT_CHUNK_SIZE
        await self._command(
            _CS_COMMAND, 0, "_result", txn,
            {"fmsVer": "FMS/3,0,1,123", "capabilities": 31.0},
            {"level": "status", "code": "NetConnection.Connect.Success",
             "description": "Connection succeeded.", "objectEncoding": 0.0},
        )

    async def _publish(self, args: list[Any]) -> None:
        if self.sink is not None:
            raise ProtocolError("second publish on one connection")
        raw = args[0] if args and isinstance(args[0], str) else ""
        key = raw.split("?", 1)[0].strip()
        assert self.app is not None
        if not key:
            await self._status("error", "NetStream.Publish.BadName", "the stream name must be a stream key")
            raise _Closing("publish without a stream key")
        self.key = key
        request = PublishRequest(
            app=self.app, key=key, peer=self.peer, tc_url=self.tc_url, disconnect=self._disconnect
        )
        try:
            sink = await self.server.on_publish(request)
        except PublishRefused as refused:
            await self._status("error", refused.code, refused.description)
            raise _Closing(f"publish refused: {refused.description}") from refused
        self.sink = sink
        self.reader.published = True
        self._extend(self.server.media_timeout, f"no media within {self.server.media_timeout:g} s")
        await self._send(_CS_CONTROL, USER_CONTROL, 0, struct.pack(">HI", _STREAM_BEGIN, _STREAM_ID))
        await self._status("status", "NetStream.Publish.Start", f"publishing {_mask(key)}")


def _mask(key: str | None) -> str:
    """Stream keys are secrets: logs show enough to tell them apart, not enough to reuse them."""
    if not key:
        return "-"
    return key[:4] + "…" if len(key) > 6 else "…"
