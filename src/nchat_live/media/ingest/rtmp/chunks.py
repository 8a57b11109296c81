"""RTMP chunk streams: messages split into chunks on the wire, and joined back.

The reader follows FFmpeg's reading of the spec's ambiguities, since FFmpeg and OBS are what
publish to us: a type-3 header that starts a new message adds the previous timestamp field
again (for a type-0 predecessor that field is the absolute time), and type-3 chunks repeat the
extended timestamp when their stream's last header had one.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

# Message type ids (RTMP 1.0 §5.4, §7.1).
SET_CHUNK_SIZE, ABORT, ACK, USER_CONTROL, WINDOW_ACK_SIZE, SET_PEER_BANDWIDTH = 1, 2, 3, 4, 5, 6
AUDIO, VIDEO = 8, 9
DATA_AMF3, COMMAND_AMF3, DATA_AMF0, COMMAND_AMF0 = 15, 17, 18, 20

DEFAULT_CHUNK_SIZE = 128
# Larger than any sane video frame of a live stream; bounds what a peer can make us buffer.
MAX_MESSAGE_SIZE = 8 * 1024 * 1024
MAX_CHUNK_SIZE = 16 * 1024 * 1024
# What one connection may hold in partial messages (one whole message of the largest size: an OBS
# keyframe is under 2 MiB even at high bitrates), what all connections of a process may hold
# together, and how many chunk streams one may open (OBS and FFmpeg use fewer than ten); the
# server passes its settings (NCHAT_RTMP_MAX_*).
MAX_BUFFERED = MAX_MESSAGE_SIZE
MAX_TOTAL_BUFFERED = 4 * MAX_MESSAGE_SIZE
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


class BufferBudget:
    """Bytes held in unfinished messages over all connections of a server, capped at `limit`.

    A connection whose next chunk would pass the cap makes room by dropping the connection that
    holds the most among those that have not published yet (unauthenticated data goes first);
    when that is the asking connection itself, or only publishing connections hold data, the
    asking connection is refused (its reader raises ProtocolError and the connection closes).
    """

    def __init__(self, limit: int = MAX_TOTAL_BUFFERED) -> None:
        self.limit = limit
        self.used = 0
        self._readers: set[ChunkReader] = set()
        self.evicted = 0

    def take(self, reader: ChunkReader, size: int) -> bool:
        """Count `size` more bytes for `reader`; False when they cannot fit (the caller refuses)."""
        while self.used + size > self.limit:
            victims = [r for r in self._readers if not r.published and r.buffered > 0]
            if not reader.published:
                victims.append(reader)
            victim = max(victims, key=lambda r: r.buffered, default=None)
            if victim is None or victim is reader:
                return False
            victim.evict()
            self.evicted += 1
        self.used += size
        if size:
            self._readers.add(reader)
        return True

    def give(self, reader: ChunkReader, size: int) -> None:
        self.used -= size
        if reader.buffered <= 0:
            self._readers.discard(reader)


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
        budget: BufferBudget | None = None,
        on_evict: Callable[[], None] | None = None,
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
        # The server-wide budget this reader's partial bytes count against, and whether the
        # connection has published (it is then the last to be dropped for room; see BufferBudget).
        self.budget = budget
        self.published = False
        self.evicted = False
        self._on_evict = on_evict

    def evict(self) -> None:
        """Dropped to make room for another connection: free the partial messages, close."""
        self.evicted = True
        self.release()
        if self._on_evict is not None:
            self._on_evict()

    def release(self) -> None:
        """Give every buffered byte back (the connection is closing or was evicted)."""
        for stream in self._streams.values():
            stream.partial = bytearray()
        self._give(self.buffered)

    def _give(self, size: int) -> None:
        self.buffered -= size
        if self.budget is not None and size:
            self.budget.give(self, size)

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
            size = len(stream.partial)
            stream.partial = bytearray()
            self._give(size)

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
            if len(stream.partial) + want < stream.length:
                # An unfinished message: its bytes count against the connection's cap and the
                # server's budget. A chunk that completes its message is handed on at once.
                if self.buffered + want > self.max_buffered:
                    raise ProtocolError(f"more than {self.max_buffered} bytes of unfinished messages on one connection")
                data = await self._read(want)
                if self.evicted:
                    raise ProtocolError("dropped to free the server's buffers for unfinished RTMP messages")
                if self.budget is not None and not self.budget.take(self, want):
                    raise ProtocolError(f"the server holds {self.budget.limit} bytes of unfinished RTMP messages, "
                                        "its limit over all connections")
                stream.partial += data
                self.buffered += want
                return None
            data = await self._read(want)
            if self.evicted:
                raise ProtocolError("dropped to free the server's buffers for unfinished RTMP messages")
            stream.partial += data
        elif len(stream.partial) < stream.length:
            return None
        payload = bytes(stream.partial)
        held = len(stream.partial) - want
        # A new buffer: clear() would keep the old one's capacity (up to a whole message) per stream.
        stream.partial = bytearray()
        self._give(held)
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
