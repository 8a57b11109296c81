"""AMF0 and the chunk stream reader/writer, on bytes built by hand as publishers send them."""

from __future__ import annotations

import asyncio
import struct

import pytest

from nchat_live.media.ingest.rtmp import amf0
from nchat_live.media.ingest.rtmp.chunks import (
    AUDIO,
    COMMAND_AMF0,
    VIDEO,
    ChunkReader,
    Message,
    ProtocolError,
    encode_message,
)
from nchat_live.media.ingest.rtmp.flv import UnsupportedMedia, parse_audio, parse_video


def _reader(data: bytes) -> ChunkReader:
    stream = asyncio.StreamReader()
    stream.feed_data(data)
    stream.feed_eof()
    return ChunkReader(stream)


def test_amf0_round_trips_command_values() -> None:
    values = ["connect", 1.0, {"app": "live", "flashVer": "FMLE/3.0", "nested": {"ok": True}}, None, [1.0, "x"]]
    assert amf0.decode_all(amf0.encode(*values)) == values


def test_amf0_reads_ecma_arrays_of_on_metadata() -> None:
    body = b"".join(struct.pack(">H", len(k)) + k + amf0.encode(v) for k, v in ((b"width", 640), (b"stereo", True)))
    data = amf0.encode("onMetaData") + b"\x08" + struct.pack(">I", 2) + body + b"\x00\x00\x09"
    assert amf0.decode_all(data) == ["onMetaData", {"width": 640.0, "stereo": True}]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x02\x00\x10ab", "truncated AMF0 value"),
        (b"\x11", "unsupported AMF0 type marker 0x11"),
        (b"\x03\x00\x01a" * 40, "nesting deeper"),
    ],
)
def test_amf0_rejects_bad_input_with_a_reason(data: bytes, message: str) -> None:
    with pytest.raises(amf0.AmfError, match=message):
        amf0.decode_all(data)


async def test_writer_output_reads_back_across_chunk_sizes() -> None:
    payload = bytes(range(256)) * 20
    for size in (1, 128, 4096):
        reader = _reader(encode_message(6, Message(VIDEO, 1, 1234, payload), size))
        reader.set_chunk_size(size)
        message = await reader.read_message()
        assert (message.type_id, message.stream_id, message.timestamp, message.payload) == (VIDEO, 1, 1234, payload)


async def test_header_types_1_2_3_carry_deltas() -> None:
    # fmt0 at t=1000, fmt1 (+20, new length), fmt2 (+20), fmt3 (same delta again): 1000, 1020, 1040, 1060.
    data = bytes([0x04]) + (1000).to_bytes(3, "big") + (2).to_bytes(3, "big") + bytes([AUDIO]) + struct.pack("<I", 1)
    data += b"aa"
    data += bytes([0x44]) + (20).to_bytes(3, "big") + (3).to_bytes(3, "big") + bytes([AUDIO]) + b"bbb"
    data += bytes([0x84]) + (20).to_bytes(3, "big") + b"ccc"
    data += bytes([0xC4]) + b"ddd"
    reader = _reader(data)
    got = [await reader.read_message() for _ in range(4)]
    assert [(m.timestamp, m.payload) for m in got] == [(1000, b"aa"), (1020, b"bbb"), (1040, b"ccc"), (1060, b"ddd")]
    assert all(m.stream_id == 1 for m in got)


async def test_extended_timestamps_and_interleaved_chunk_streams() -> None:
    big = 0x01234567
    # Two messages of 200 bytes on chunk streams 4 and 5, chunks interleaved; stream 4 uses an
    # extended timestamp, repeated on its continuation chunk.
    head4 = bytes([0x04]) + b"\xff\xff\xff" + (200).to_bytes(3, "big") + bytes([VIDEO]) + struct.pack("<I", 1)
    head5 = bytes([0x05]) + (7).to_bytes(3, "big") + (200).to_bytes(3, "big") + bytes([AUDIO]) + struct.pack("<I", 1)
    ext = struct.pack(">I", big)
    data = head4 + ext + b"v" * 128 + head5 + b"a" * 128 + bytes([0xC4]) + ext + b"v" * 72 + bytes([0xC5]) + b"a" * 72
    reader = _reader(data)
    first, second = await reader.read_message(), await reader.read_message()
    assert (first.type_id, first.timestamp, first.payload) == (VIDEO, big, b"v" * 200)
    assert (second.type_id, second.timestamp, second.payload) == (AUDIO, 7, b"a" * 200)


async def test_writer_uses_extended_timestamps() -> None:
    wire = encode_message(3, Message(COMMAND_AMF0, 0, 0x12345678, b"x" * 300), 128)
    assert wire[1:4] == b"\xff\xff\xff"
    reader = _reader(wire)
    assert (await reader.read_message()).timestamp == 0x12345678


async def test_chunk_stream_must_start_with_a_full_header() -> None:
    with pytest.raises(ProtocolError, match="starts with a type-3 header"):
        await _reader(bytes([0xC4]) + b"junk").read_message()


async def test_oversized_messages_are_refused() -> None:
    head = bytes([0x04]) + bytes(3) + (0xFFFFFF).to_bytes(3, "big") + bytes([VIDEO]) + bytes(4)
    with pytest.raises(ProtocolError, match="exceeds the limit"):
        await _reader(head).read_message()


async def test_chunk_size_is_bounded() -> None:
    reader = _reader(b"")
    with pytest.raises(ProtocolError, match="chunk size 0"):
        reader.set_chunk_size(0)


def test_flv_tags_name_the_codec_they_refuse() -> None:
    with pytest.raises(UnsupportedMedia, match=r"codec 2 \(Sorenson H.263\)"):
        parse_video(b"\x12\x00")
    with pytest.raises(UnsupportedMedia, match=r"audio format 2 \(MP3\)"):
        parse_audio(b"\x2f\x00")
    with pytest.raises(UnsupportedMedia, match="enhanced-RTMP video 'hvc1'"):
        parse_video(b"\x90hvc1")
    tag = parse_video(b"\x17\x01\x00\x00\x21nal")
    assert tag is not None and tag.keyframe and tag.composition_time == 0x21 and tag.data == b"nal"
