"""A minimal RTMP publisher client for protocol tests: handshake, commands, raw messages."""

from __future__ import annotations

import asyncio
import contextlib
import os
import struct
import sys
from pathlib import Path
from typing import Any

from nchat_live.media.ingest.rtmp import amf0
from nchat_live.media.ingest.rtmp.chunks import COMMAND_AMF0, SET_CHUNK_SIZE, ChunkReader, Message, encode_message

_ROOT = str(Path(__file__).resolve().parents[2])


class RtmpTestClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.raw = reader
        self.writer = writer
        self.reader = ChunkReader(reader)
        self.txn = 0

    @classmethod
    async def connect(cls, port: int, *, handshake: bool = True) -> RtmpTestClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        client = cls(reader, writer)
        if handshake:
            await client.handshake()
        return client

    async def handshake(self) -> None:
        c1 = struct.pack(">II", 0, 0) + os.urandom(1528)
        self.writer.write(b"\x03" + c1)
        s0 = await self.raw.readexactly(1)
        s1 = await self.raw.readexactly(1536)
        s2 = await self.raw.readexactly(1536)
        assert s0 == b"\x03" and s2 == c1
        self.writer.write(s1)
        await self.writer.drain()

    async def send(
        self, type_id: int, payload: bytes, *, stream_id: int = 0, timestamp: int = 0, csid: int = 3
    ) -> None:
        self.writer.write(encode_message(csid, Message(type_id, stream_id, timestamp, payload), 128))
        await self.writer.drain()

    async def call(self, name: str, *args: Any, stream_id: int = 0) -> None:
        self.txn += 1
        await self.send(COMMAND_AMF0, amf0.encode(name, self.txn, *args), stream_id=stream_id)

    async def command_reply(self, within: float = 5.0) -> list[Any]:
        """The next AMF0 command the server sends, skipping protocol control messages."""
        async with asyncio.timeout(within):
            while True:
                message = await self.reader.read_message()
                if message.type_id == SET_CHUNK_SIZE:
                    self.reader.set_chunk_size(struct.unpack(">I", message.payload[:4])[0])
                if message.type_id == COMMAND_AMF0:
                    return amf0.decode_all(message.payload)

    async def start_publish(self, key: str, app: str = "live") -> list[Any]:
        """connect, createStream, publish; returns the onStatus reply to publish."""
        await self.call("connect", {"app": app, "tcUrl": f"rtmp://127.0.0.1/{app}", "type": "nonprivate"})
        reply = await self.command_reply()
        assert reply[0] == "_result", reply
        await self.call("createStream", None)
        reply = await self.command_reply()
        assert reply[0] == "_result", reply
        await self.call("publish", None, key, "live", stream_id=1)
        return await self.command_reply()

    async def closed_by_server(self, within: float = 5.0) -> bool:
        """True once the server closes the socket (EOF) within `within` seconds."""
        try:
            async with asyncio.timeout(within):
                while await self.raw.read(65536):
                    pass
        except TimeoutError:
            return False
        except ConnectionError:
            return True
        return True

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


async def run_publisher(port: int, key: str, *args: str, app: str = "live", within: float = 60.0) -> tuple[int, str]:
    """Runs tests/media/rtmp_publisher.py in its own process; returns (exit code, stderr)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.media.rtmp_publisher", f"rtmp://127.0.0.1:{port}/{app}/{key}", *args,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        cwd=_ROOT,
    )
    try:
        async with asyncio.timeout(within):
            _, err = await process.communicate()
    except BaseException:
        process.kill()
        await process.wait()
        raise
    return int(process.returncode or 0), err.decode(errors="replace")
