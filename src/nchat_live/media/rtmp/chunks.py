"""RTMP chunk streams: messages split into chunks on the wire, and joined back.

The reader follows FFmpeg's reading of the spec's ambiguities, since FFmpeg and OBS are what
publish to us: a type-3 header that starts a new message adds the previous timestamp field
again (for a type-0 predecessor that field is the absolute time), and type-3 chunks repeat the
extended timestamp when their stream's last header had one.
"""

from __future__ import annotations

import asyncio
import struct
from dataclasses import dataclass, field

# Message type ids (RTMP 1.0 §5.4, §7.1).
SET_CHUNK_SIZE, ABORT, ACK, USER_CONTROL, WINDOW_ACK_SIZE, SET_PEER_BANDWIDTH = 1, 2, 3, 4, 5, 6
AUDIO, VIDEO = 8, 9
DATA_AMF3, COMMAND_AMF3, DATA_AMF0, COMMAND_AMF0 = 15, 17, 18, 20

DEFAULT_CHUNK_SIZE = 128
# Larger than any sane video frame of a live stream; bounds what a peer can make us buffer.
MAX_MESSAGE_SIZE = 8 * 1024 * 1024
MAX_CHUNK_SIZE = 16 * 1024 * 1024
# What one connection may hold in partial messages, and how many chunk streams it may open
# (OBS and FFmpeg use fewer than ten); the server passes its settings (NCHAT_RTMP_MAX_*).
MAX_BUFFERED = 4 * MAX_MESSAGE_SIZE
MAX_CHUNK_STREAMS = 64
_EXTENDED = 0xFFFFFF


class ProtocolError(ValueError):
    """The peer broke the chunk stream protocol; the connection cannot continue."""


@dataclass(slots=True)
class Message:
    type_id: int
    stream_id: int
    timestamp: int
    payload: bytes


@dataclass(slots=True)
class _ChunkStream:
    timestamp: int = 0
    delta: int = 0
    length: int = 0
    type_id: int = 0
    stream_id: int = 0
    extended: bool = False
    started: bool = False
    partial: bytearray = field(default_factory=bytearray)


class ChunkReader:
    """Reads whole messages from an asyncio stream, across interleaved chunk streams."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        *,
        max_chunk_size: int = MAX_CHUNK_SIZE,
        max_message_size: int = MAX_MESSAGE_SIZE,
        max_buffered: int = MAX_BUFFERED,
        max_chunk_streams: int = MAX_CHUNK_STREAMS,
    ) -> None:
        self._reader = reader
        self._streams: dict[int, _ChunkStream] = {}
        self.chunk_size = DEFAULT_CHUNK_SIZE
        self.bytes_read = 0
        self.max_chunk_size = max_chunk_size
        self.max_message_size = max_message_size
        self.max_buffered = max_buffered
        self.max_chunk_streams = max_chunk_streams
        # Bytes held in partial (unfinished) messages over all chunk streams.
        self.buffered = 0

    async def _read(self, size: int) -> bytes:
        data = await self._reader.readexactly(size)
        self.bytes_read += size
        return data

    def set_chunk_size(self, size: int) -> None:
        size &= 0x7FFFFFFF
        if not 1 <= size <= self.max_chunk_size:
            raise ProtocolError(f"chunk size {size} out of range 1..{self.max_chunk_size}")
        self.chunk_size = size

    def abort(self, csid: int) -> None:
        stream = self._streams.get(csid)
        if stream is not None:
            self.buffered -= len(stream.partial)
            stream.partial = bytearray()

    async def read_message(self) -> Message:
        """The next complete message. Raises ProtocolError, or IncompleteReadError at EOF."""
        while True:
            message = await self._read_chunk()
            if message is not None:
                return message

    async def _read_chunk(self) -> Message | None:
        first = (await self._read(1))[0]
        fmt, csid = first >> 6, first & 0x3F
        if csid == 0:
            csid = 64 + (await self._read(1))[0]
        elif csid == 1:
            extra = await self._read(2)
            csid = 64 + extra[0] + 256 * extra[1]
        stream = self._streams.get(csid)
        if stream is None:
            if fmt != 0:
                raise ProtocolError(f"chunk stream {csid} starts with a type-{fmt} header, not type 0")
            if len(self._streams) >= self.max_chunk_streams:
                raise ProtocolError(f"more than {self.max_chunk_streams} chunk streams on one connection")
            stream = self._streams[csid] = _ChunkStream()
        continuing = len(stream.partial) > 0
        if fmt == 0:
            head = await self._read(11)
            ts = int.from_bytes(head[0:3], "big")
            stream.length = int.from_bytes(head[3:6], "big")
            stream.type_id = head[6]
            stream.stream_id = struct.unpack_from("<I", head, 7)[0]
        elif fmt == 1:
            head = await self._read(7)
            ts = int.from_bytes(head[0:3], "big")
            stream.length = int.from_bytes(head[3:6], "big")
            stream.type_id = head[6]
        elif fmt == 2:
            ts = int.from_bytes(await self._read(3), "big")
        else:
            ts = -1
        if fmt != 3:
            if continuing:
                raise ProtocolError(f"type-{fmt} header on chunk stream {csid} in the middle of a message")
            stream.extended = ts == _EXTENDED
            if stream.extended:
                ts = struct.unpack(">I", await self._read(4))[0]
            if fmt == 0:
                stream.timestamp = ts
            else:
                stream.timestamp = (stream.timestamp + ts) & 0xFFFFFFFF
            stream.delta = ts
        else:
            if stream.extended:
                ext = struct.unpack(">I", await self._read(4))[0]
                if not continuing:
                    stream.delta = ext
            if not continuing:
                stream.timestamp = (stream.timestamp + stream.delta) & 0xFFFFFFFF
        if stream.length > self.max_message_size:
            raise ProtocolError(f"message of {stream.length} bytes exceeds the limit of {self.max_message_size}")
        want = min(self.chunk_size, stream.length - len(stream.partial))
        if want > 0:
            if self.buffered + want > self.max_buffered and len(stream.partial) + want < stream.length:
                raise ProtocolError(f"more than {self.max_buffered} bytes of unfinished messages on one connection")
            stream.partial += await self._read(want)
            self.buffered += want
        if len(stream.partial) < stream.length:
            return None
        payload = bytes(stream.partial)
        self.buffered -= len(stream.partial)
        # A new buffer: clear() would keep the old one's capacity (up to a whole message) per stream.
        stream.partial = bytearray()
        return Message(stream.type_id, stream.stream_id, stream.timestamp, payload)


def encode_message(csid: int, message: Message, chunk_size: int) -> bytes:
    """One message as chunks: a type-0 header, then type-3 continuation headers."""
    assert 2 <= csid <= 63, "only one-byte chunk stream ids are used when sending"
    ts = message.timestamp & 0xFFFFFFFF
    extended = ts >= _EXTENDED
    header = bytes([csid]) + (_EXTENDED if extended else ts).to_bytes(3, "big")
    header += len(message.payload).to_bytes(3, "big") + bytes([message.type_id])
    header += struct.pack("<I", message.stream_id)
    ext = struct.pack(">I", ts) if extended else b""
    out = [header, ext]
    payload = message.payload
    for offset in range(0, max(len(payload), 1), chunk_size):
        if offset:
            out += [bytes([0xC0 | csid]), ext]
        out.append(payload[offset:offset + chunk_size])
    return b"".join(out)
