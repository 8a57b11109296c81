"""AMF0, the value encoding of RTMP commands (connect, publish, onStatus, @setDataFrame)."""

from __future__ import annotations

import struct
from typing import Any

NUMBER, BOOLEAN, STRING, OBJECT, NULL, UNDEFINED = 0x00, 0x01, 0x02, 0x03, 0x05, 0x06
ECMA_ARRAY, OBJECT_END, STRICT_ARRAY, DATE, LONG_STRING = 0x08, 0x09, 0x0A, 0x0B, 0x0C

# Nesting beyond this is not something a publisher sends; refusing it bounds recursion on hostile input.
_MAX_DEPTH = 16


class AmfError(ValueError):
    """The bytes are not AMF0 this decoder understands."""


def encode(*values: Any) -> bytes:
    return b"".join(_encode_one(v) for v in values)


def _encode_one(value: Any) -> bytes:
    if value is None:
        return bytes([NULL])
    if isinstance(value, bool):
        return bytes([BOOLEAN, 1 if value else 0])
    if isinstance(value, int | float):
        return bytes([NUMBER]) + struct.pack(">d", float(value))
    if isinstance(value, str):
        raw = value.encode()
        if len(raw) > 0xFFFF:
            return bytes([LONG_STRING]) + struct.pack(">I", len(raw)) + raw
        return bytes([STRING]) + struct.pack(">H", len(raw)) + raw
    if isinstance(value, dict):
        body = b"".join(_key(k) + _encode_one(v) for k, v in value.items())
        return bytes([OBJECT]) + body + b"\x00\x00" + bytes([OBJECT_END])
    if isinstance(value, list | tuple):
        return bytes([STRICT_ARRAY]) + struct.pack(">I", len(value)) + b"".join(_encode_one(v) for v in value)
    raise TypeError(f"cannot encode {type(value).__name__} as AMF0")


def _key(name: str) -> bytes:
    raw = name.encode()
    return struct.pack(">H", len(raw)) + raw


def decode_all(data: bytes) -> list[Any]:
    """Every value in `data`, in order. Raises AmfError on truncated or unknown input."""
    values: list[Any] = []
    pos = 0
    while pos < len(data):
        value, pos = _decode(data, pos, 0)
        values.append(value)
    return values


def _need(data: bytes, pos: int, size: int) -> None:
    if pos + size > len(data):
        left = len(data) - pos
        raise AmfError(f"truncated AMF0 value at byte {pos}: {size} more bytes needed, {left} left")


def _string(data: bytes, pos: int, size_len: int) -> tuple[str, int]:
    _need(data, pos, size_len)
    size = int.from_bytes(data[pos:pos + size_len], "big")
    pos += size_len
    _need(data, pos, size)
    try:
        return data[pos:pos + size].decode(), pos + size
    except UnicodeDecodeError as exc:
        raise AmfError(f"AMF0 string at byte {pos} is not UTF-8") from exc


def _properties(data: bytes, pos: int, depth: int) -> tuple[dict[str, Any], int]:
    result: dict[str, Any] = {}
    while True:
        _need(data, pos, 3)
        if data[pos:pos + 3] == b"\x00\x00\x09":
            return result, pos + 3
        key, pos = _string(data, pos, 2)
        result[key], pos = _decode(data, pos, depth + 1)


def _decode(data: bytes, pos: int, depth: int) -> tuple[Any, int]:
    if depth > _MAX_DEPTH:
        raise AmfError(f"AMF0 nesting deeper than {_MAX_DEPTH}")
    _need(data, pos, 1)
    marker = data[pos]
    pos += 1
    if marker == NUMBER:
        _need(data, pos, 8)
        return struct.unpack_from(">d", data, pos)[0], pos + 8
    if marker == BOOLEAN:
        _need(data, pos, 1)
        return data[pos] != 0, pos + 1
    if marker == STRING:
        return _string(data, pos, 2)
    if marker == LONG_STRING:
        return _string(data, pos, 4)
    if marker in (NULL, UNDEFINED):
        return None, pos
    if marker == OBJECT:
        return _properties(data, pos, depth)
    if marker == ECMA_ARRAY:
        # The count is advisory (encoders get it wrong); the end marker is what counts.
        _need(data, pos, 4)
        return _properties(data, pos + 4, depth)
    if marker == STRICT_ARRAY:
        _need(data, pos, 4)
        count = int.from_bytes(data[pos:pos + 4], "big")
        pos += 4
        items: list[Any] = []
        for _ in range(count):
            item, pos = _decode(data, pos, depth + 1)
            items.append(item)
        return items, pos
    if marker == DATE:
        _need(data, pos, 10)
        return struct.unpack_from(">d", data, pos)[0], pos + 10
    raise AmfError(f"unsupported AMF0 type marker 0x{marker:02x} at byte {pos - 1}")
