"""The RTMP handshake, server side: C0/C1 in, S0/S1/S2 out, C2 in.

Only the plain handshake: S1 carries a zero version field, which tells Flash-era clients that
no digest is expected. FFmpeg, librtmp (OBS) and GStreamer publish with it.
"""

from __future__ import annotations

import asyncio
import os
import struct
import time

RTMP_VERSION = 3
PACKET_SIZE = 1536


class HandshakeError(ValueError):
    """The peer did not start an RTMP handshake this server speaks."""


async def server_handshake(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    c0 = await reader.readexactly(1)
    if c0[0] != RTMP_VERSION:
        # 6 would be RTMPE (encrypted); anything else is not RTMP at all.
        raise HandshakeError(f"RTMP version byte 0x{c0[0]:02x}; only plain RTMP version 3 is served")
    c1 = await reader.readexactly(PACKET_SIZE)
    epoch = int(time.monotonic() * 1000) & 0xFFFFFFFF
    s1 = struct.pack(">II", epoch, 0) + os.urandom(PACKET_SIZE - 8)
    # S2 echoes C1 (its time and random bytes) as the spec asks, so clients can check it.
    writer.write(bytes([RTMP_VERSION]) + s1 + c1)
    await writer.drain()
    # C2 should echo S1; clients using the digest handshake send something else, so it is read
    # but not compared.
    await reader.readexactly(PACKET_SIZE)
