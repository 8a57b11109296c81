"""Request body limits for every HTTP route, applied before the route reads anything.

One ASGI middleware: a declared Content-Length over the path's limit is answered 413 at once, without
reading the body; a chunked body (no Content-Length) is counted as the route reads it, and the
moment it passes the limit the client gets 413 and the route sees a disconnect, so nothing more is
read. A request with a Content-Length within the limit, or with no body at all (GET, HEAD), passes
through untouched: the server never delivers more than the declared length.

Limits per path: the REST routes (/api/...) `NCHAT_MAX_REST_BODY_BYTES`; GraphQL and every other
route `NCHAT_MAX_BODY_BYTES`. WHIP is left to its route, which streams the offer against its own, smaller
limit (`NCHAT_WHIP_MAX_SDP_BYTES`) and answers `sdp-too-large`: one code per route for one refusal.
The 413 closes the connection: the rest of the body is never buffered (a bounded lingering close
drops what is already in flight, so the client can read the answer; see `_reject`).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .config import Settings

CODE = "request-too-large"
GRAPHQL_PATHS = ("/v1/graphql", "/graphql")
# After a 413, what the client is still sending is dropped for this long / this much at most.
LINGER_SECONDS = 1.0
LINGER_BYTES = 4 * 1024 * 1024


# Routes that read their bodies through a bounded reader of their own.
OWN_LIMIT_PREFIXES = ("/whip/",)


def limit_for_path(settings: Settings) -> Callable[[str], int | None]:
    """The body limit (bytes) of a request path; None where the route enforces its own."""
    rest = settings.max_rest_body_bytes
    other = settings.max_body_bytes

    def limit(path: str) -> int | None:
        if path.startswith(OWN_LIMIT_PREFIXES):
            return None
        return rest if path.startswith("/api/") else other

    return limit


def _too_large_body(path: str, limit: int) -> bytes:
    message = f"request body is larger than the limit of {limit} bytes"
    body: dict[str, Any]
    if path in GRAPHQL_PATHS:  # the shape every GraphQL answer has (Hasura's)
        body = {"errors": [{"message": message, "extensions": {"code": CODE, "path": "$", "limitBytes": limit}}]}
    else:  # the REST layer's shape
        body = {"error": {"code": CODE, "message": message, "extensions": {"limitBytes": limit}}}
    return json.dumps(body).encode()


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, limit_for: Callable[[str], int | None]) -> None:
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared: int | None = None
        chunked = False
        for name, value in scope["headers"]:
            if name == b"content-length":
                declared = int(value) if value.isdigit() else None
            elif name == b"transfer-encoding":
                chunked = True
        if declared is None and not chunked:  # no body (GET, HEAD, OPTIONS, a bodiless POST)
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        limit = self.limit_for(path)
        if limit is None:
            await self.app(scope, receive, send)
            return
        if declared is not None and declared > limit:
            await self._reject(send, receive, path, limit)
            return
        if declared is not None:  # the server delivers no more than the declared length
            await self.app(scope, receive, send)
            return

        received = 0
        refused = False
        started = False

        async def limited_receive() -> Message:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    refused = True
                    if not started:
                        await self._reject(send, receive, path, limit)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused:  # the client has its 413; the route's own answer goes nowhere
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        await self.app(scope, limited_receive, guarded_send)

    @staticmethod
    async def _reject(send: Send, receive: Receive, path: str, limit: int) -> None:
        """413 at once; then a bounded lingering close: what the client is still sending is read and
        dropped for at most LINGER_SECONDS / LINGER_BYTES, so a client that writes its whole body before
        reading (most do) gets the answer instead of a connection reset; then the connection closes."""
        body = _too_large_body(path, limit)
        await send({
            "type": "http.response.start", "status": 413,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                        (b"connection", b"close")],
        })
        # All of the answer's bytes go out now; the response ends after the lingering below.
        await send({"type": "http.response.body", "body": body, "more_body": True})
        deadline = time.monotonic() + LINGER_SECONDS
        dropped = 0
        while dropped < LINGER_BYTES:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                message = await asyncio.wait_for(receive(), left)
            except TimeoutError:
                break
            if message["type"] != "http.request":
                break
            dropped += len(message.get("body", b""))
            if not message.get("more_body", False):
                break
        await send({"type": "http.response.body", "body": b""})
