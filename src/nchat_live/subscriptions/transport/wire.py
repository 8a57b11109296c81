"""Websocket frames written straight to the server's transport, several per write.

Profiled at 3,000-5,000 subscribers of one stream, most of the fan-out went into one send system
call per frame per socket and the Python around it: starlette's send wrapper, uvicorn's send
coroutine, its websocket library framing the same text again for every socket. Server frames are
unmasked, so one event's frame is the same bytes for every socket of a group: it is built once
(`text_frame`) and each socket's transport gets those bytes. Frames for a socket are not written
at once but collected until the end of the event loop's current pass (or `delay_s` later) and
written in one call (`WriteBatcher`): events that arrive together, such as a burst of reactions
or a backlog read from the bus, cost one system call per socket instead of one per frame, and a
quiet stream's single event adds no delay.

Only where it is known to be safe (`raw_socket`): uvicorn's `websockets-sansio` and `wsproto`
protocols, whose state is the handshake, the close and a `writable` flag for flow control, and
no negotiated extension (a compressed connection must go through the library). Anything else,
another server or implementation, keeps the ASGI send path.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Protocol

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# Where the server's own send callable is kept in a websocket scope (by `CaptureServerSend`).
SERVER_SEND = "nchat.server_send"

# uvicorn's implementations whose sending state `RawSocket` reads (handshake_complete, close_sent,
# writable, transport); the legacy `websockets` one writes through its own buffered protocol.
_SUPPORTED = frozenset({
    "uvicorn.protocols.websockets.websockets_sansio_impl",
    "uvicorn.protocols.websockets.wsproto_impl",
})


def text_frame(text: str) -> bytes:
    """An unmasked, unfragmented, uncompressed websocket text frame (RFC 6455 section 5.2)."""
    payload = text.encode()
    size = len(payload)
    if size < 126:
        return bytes((0x81, size)) + payload
    if size < 65536:
        return b"\x81\x7e" + size.to_bytes(2, "big") + payload
    return b"\x81\x7f" + size.to_bytes(8, "big") + payload


class CaptureServerSend:
    """ASGI middleware, outermost: keeps the server's send callable in a websocket's scope.

    Starlette wraps `send` on the way in; the transport needs the server's own to find its protocol.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            scope[SERVER_SEND] = send
        await self.app(scope, receive, send)


class _ServerProtocol(Protocol):
    """The part of uvicorn's websocket protocols that `RawSocket` uses."""

    transport: asyncio.WriteTransport
    writable: asyncio.Event
    close_sent: bool
    handshake_complete: bool


class RawSocket:
    """An accepted websocket's transport and flow control; the connection (websocket.py) writes whole frames to it,
    so they interleave with the library's own control frames (pong, close) only at frame boundaries."""

    __slots__ = ("proto", "transport", "writable")

    def __init__(self, proto: _ServerProtocol) -> None:
        self.proto = proto
        self.transport = proto.transport
        self.writable = proto.writable

    @property
    def paused(self) -> bool:
        """The transport's buffer is above its high-water mark: the client is not keeping up."""
        return not self.writable.is_set()


def raw_socket(scope: Scope) -> RawSocket | None:
    """A `RawSocket` for an accepted websocket when its server is one this module knows; else None."""
    proto = getattr(scope.get(SERVER_SEND), "__self__", None)
    if proto is None or type(proto).__module__ not in _SUPPORTED:
        return None
    if not (isinstance(getattr(proto, "writable", None), asyncio.Event) and getattr(proto, "handshake_complete", False)
            and getattr(proto, "close_sent", True) is False and getattr(proto, "transport", None) is not None):
        return None
    offered = any(name.lower() == b"sec-websocket-extensions" for name, _ in scope.get("headers") or ())
    if offered and getattr(getattr(proto, "config", None), "ws_per_message_deflate", True):
        return None  # an extension may have been negotiated: frames go through the library
    return RawSocket(proto)


class Flushable(Protocol):
    def flush(self) -> None: ...


class WriteBatcher:
    """Flushes, once per pass of the event loop (or `delay_s` after the first frame), every socket with frames."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.dirty: list[Flushable] = []
        self.scheduled = False

    def mark(self, sink: Flushable) -> None:
        """`sink` has frames to write (call once per sink until it is flushed)."""
        self.dirty.append(sink)
        if not self.scheduled:
            self.scheduled = True
            loop = asyncio.get_running_loop()
            if self.delay_s > 0:
                loop.call_later(self.delay_s, self.flush_all)
            else:
                loop.call_soon(self.flush_all)

    def flush_all(self) -> None:
        dirty, self.dirty = self.dirty, []
        self.scheduled = False
        for sink in dirty:
            sink.flush()
