"""Just enough ISO BMFF reading to cut a fragmented MP4 byte stream into an init segment and parts."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

_NON_SYNC = 0x00010000


@dataclass(frozen=True)
class FragmentInfo:
    """What a moof says about one track: where it starts, how long it lasts, whether it starts on a keyframe."""

    base_time: int
    duration: int
    samples: int
    starts_with_sync: bool


def iter_boxes(
    data: bytes | bytearray | memoryview, start: int = 0, end: int | None = None
) -> Iterator[tuple[bytes, int, int]]:
    """(type, payload offset, box end) of each complete box in data[start:end]."""
    end = len(data) if end is None else end
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, pos)
        header = 8
        if size == 1:
            if pos + 16 > end:
                return
            size = struct.unpack_from(">Q", data, pos + 8)[0]
            header = 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            return
        yield kind, pos + header, pos + size
        pos += size


class BoxSplitter:
    """Accumulates muxer output and hands back whole top-level boxes as they complete."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, chunk: bytes) -> list[tuple[bytes, bytes]]:
        self._buffer += chunk
        boxes: list[tuple[bytes, bytes]] = []
        consumed = 0
        for kind, _, box_end in iter_boxes(self._buffer):
            boxes.append((kind, bytes(self._buffer[consumed:box_end])))
            consumed = box_end
        del self._buffer[:consumed]
        return boxes


def parse_moof(moof: bytes, track_id: int) -> FragmentInfo | None:
    """The timing of `track_id` in a moof box (whole box, header included), or None if it has no run there."""
    for kind, body, end in iter_boxes(moof):
        if kind != b"moof":
            continue
        for traf_kind, traf_body, traf_end in iter_boxes(moof, body, end):
            if traf_kind == b"traf":
                info = _parse_traf(moof, traf_body, traf_end, track_id)
                if info is not None:
                    return info
    return None


def _parse_traf(data: bytes, start: int, end: int, track_id: int) -> FragmentInfo | None:
    default_duration = 0
    default_flags = 0
    base_time = 0
    duration = 0
    samples = 0
    first_sync: bool | None = None
    for kind, body, _ in iter_boxes(data, start, end):
        if kind == b"tfhd":
            flags = int.from_bytes(data[body + 1 : body + 4], "big")
            if struct.unpack_from(">I", data, body + 4)[0] != track_id:
                return None
            pos = body + 8
            if flags & 0x01:
                pos += 8
            if flags & 0x02:
                pos += 4
            if flags & 0x08:
                default_duration = struct.unpack_from(">I", data, pos)[0]
                pos += 4
            if flags & 0x10:
                pos += 4
            if flags & 0x20:
                default_flags = struct.unpack_from(">I", data, pos)[0]
        elif kind == b"tfdt":
            version = data[body]
            base_time = struct.unpack_from(">Q" if version == 1 else ">I", data, body + 4)[0]
        elif kind == b"trun":
            flags = int.from_bytes(data[body + 1 : body + 4], "big")
            count = struct.unpack_from(">I", data, body + 4)[0]
            pos = body + 8
            if flags & 0x01:
                pos += 4
            first_flags = None
            if flags & 0x04:
                first_flags = struct.unpack_from(">I", data, pos)[0]
                pos += 4
            for index in range(count):
                sample_duration = default_duration
                sample_flags = default_flags
                if flags & 0x100:
                    sample_duration = struct.unpack_from(">I", data, pos)[0]
                    pos += 4
                if flags & 0x200:
                    pos += 4
                if flags & 0x400:
                    sample_flags = struct.unpack_from(">I", data, pos)[0]
                    pos += 4
                if flags & 0x800:
                    pos += 4
                if index == 0 and first_sync is None:
                    chosen = first_flags if first_flags is not None else sample_flags
                    first_sync = not chosen & _NON_SYNC
                duration += sample_duration
            samples += count
    if samples == 0:
        return None
    return FragmentInfo(base_time, duration, samples, bool(first_sync))


def avc_codec_string(init_segment: bytes) -> str | None:
    """`avc1.PPCCLL` from the avcC box of an init segment (the profile and level the encoder really chose)."""
    index = init_segment.find(b"avcC")
    if index < 0 or index + 8 > len(init_segment):
        return None
    profile, compat, level = init_segment[index + 5 : index + 8]
    return f"avc1.{profile:02x}{compat:02x}{level:02x}"
