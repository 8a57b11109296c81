"""HTTP endpoints: POST /v1/graphql (Hasura's path) and /graphql; GraphiQL on GET.

Errors keep Hasura's shape and its HTTP 200 (authentication failures included), except a body
over the size limit (413), a body that is not JSON (400) and a batch over NCHAT_MAX_BATCH_SIZE (400),
which never reach GraphQL.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Callable
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

import orjson
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from ..body_limits import GRAPHQL_PATHS
from ..errors import NchatError
from ..observability import REQUEST_SECONDS, REQUESTS, request_id
from .context import Context
from .execution import dumps, error, execute_json

if TYPE_CHECKING:
    from ..runtime import Runtime

GRAPHIQL = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>nchat-live GraphiQL</title>
  <link rel="stylesheet" href="https://unpkg.com/graphiql@3/graphiql.min.css">
  <style>body { margin: 0; height: 100vh; } #graphiql { height: 100vh; }</style>
</head>
<body>
  <div id="graphiql">Loading GraphiQL...</div>
  <script crossorigin src="https://unpkg.com/react@18/umd/react.production.min.js"></script>
  <script crossorigin src="https://unpkg.com/react-dom@18/umd/react-dom.production.min.js"></script>
  <script crossorigin src="https://unpkg.com/graphiql@3/graphiql.min.js"></script>
  <script>
    const url = window.location.pathname;
    const wsUrl = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + url;
    const fetcher = GraphiQL.createFetcher({ url, subscriptionUrl: wsUrl });
    ReactDOM.createRoot(document.getElementById("graphiql")).render(
      React.createElement(GraphiQL, {
        fetcher,
        defaultHeaders: JSON.stringify({ "Authorization": "Bearer <token>" }, null, 2),
        shouldPersistHeaders: true,
      }),
    );
  </script>
</body>
</html>
"""


class _TooLarge(Exception):
    pass


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _TooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


async def graphql_endpoint(request: Request) -> Response:
    if request.method == "GET":
        return HTMLResponse(GRAPHIQL)
    runtime: Runtime = request.app.state.runtime
    limit = runtime.settings.max_body_bytes
    try:
        body = await _read_body(request, limit)
    except _TooLarge:
        return JSONResponse(error(f"request body is larger than the limit of {limit} bytes",
                                  code="request-too-large"), status_code=413)
    status, answer = await answer_post(runtime, request, body)
    return Response(answer, status_code=status, media_type="application/json")


async def answer_post(runtime: Runtime, request: Request, body: bytes) -> tuple[int, bytes]:
    """A POST's status and JSON bytes, from its whole body (within the limit)."""
    try:
        payload = _loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        return 400, dumps(error(f"request body is not valid JSON: {exc}", code="parse-failed"))
    except RecursionError:  # the decoder gives up on deeply nested arrays/objects
        return 400, dumps(error("request body is nested too deeply", code="parse-failed"))
    try:
        claims = runtime.auth.authenticate(request.headers)
    except NchatError as exc:
        return 200, dumps(error(exc.message, exc.code))
    if isinstance(payload, list):  # a batch, as Apollo's batch link sends (one at a time)
        cap = runtime.settings.max_batch_size
        if len(payload) > cap:
            refused = error(f"a batch of {len(payload)} operations; the limit is {cap}")
            refused["errors"][0]["extensions"]["limit"] = "batch"
            return 400, dumps(refused)
        parts = [await _one(runtime, claims, request, item) for item in payload]
        return 200, b"[" + b",".join(parts) + b"]"
    return 200, await _one(runtime, claims, request, payload)


def _loads(body: bytes) -> Any:
    """The body's JSON: orjson's (a fifth of the standard decoder's time), and the standard decoder's
    for anything orjson refuses (NaN, nesting past 255), which also words the errors as before, and
    for a run of 19 digits or more: orjson reads an integer past 64 bits as a float."""
    if _LONG_DIGITS.search(body) is None:
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            pass
    return json.loads(body)


async def _one(runtime: Runtime, claims: Any, request: Request, payload: Any) -> bytes:
    """One operation's response as JSON bytes (a table-API query's come from Postgres as text)."""
    if not isinstance(payload, dict):
        return dumps(error("the request body must be a JSON object {query, variables, operationName}"))
    ctx = Context(runtime, claims, request)
    return await execute_json(ctx, payload.get("query"), payload.get("variables"), payload.get("operationName"))


# Digits enough for an integer orjson would not keep exact (its limit is 64 bits: 19-20 digits).
_LONG_DIGITS = re.compile(rb"\d{19}")
_JSON_HEADER = (b"content-type", b"application/json")
# What starlette's ServerErrorMiddleware answers for an unexpected error (debug off).
_ERROR_HEADERS = [(b"content-length", b"21"), (b"content-type", b"text/plain; charset=utf-8")]
# uvicorn's httptools protocol, whose response state `_write_whole` sets as its send would.
_HTTPTOOLS = "uvicorn.protocols.http.httptools_impl"
# A header value uvicorn refuses to send (its send raises): such a request id takes its send.
_UNSENDABLE = re.compile(rb"[\x00-\x08\x0A-\x1F\x7F]")


class GraphQLPosts:
    """ASGI middleware in front of the whole app (`app.NchatApp`): answers POST /v1/graphql and /graphql
    whose declared body is within the limit, without starlette's middleware stack, the router and its
    Response; these were a third of a fast-path query's CPU. `answer_post` answers, as on the route;
    the request id, its header and the request metrics are RequestIdMiddleware's, done here the same
    way, and an unexpected error gets ServerErrorMiddleware's 500. On uvicorn's httptools protocol the
    answer goes out in one write (`_write_whole`) instead of two.

    Anything else goes on to the app: GET, other paths, a chunked body and a body over the limit (which
    BodyLimitMiddleware refuses with its 413 and lingering close), so limits and refusals stay one code.
    """

    def __init__(self, app: ASGIApp, runtime: Runtime, limit_for: Callable[[str], int | None]) -> None:
        self.app = app
        self.runtime = runtime
        self.limit_for = limit_for
        self._metrics: dict[tuple[str, int], tuple[Any, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] not in GRAPHQL_PATHS:
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        declared: int | None = None
        incoming = b""
        for name, value in scope["headers"]:
            if name == b"content-length":
                declared = int(value) if value.isdigit() else None
            elif name == b"transfer-encoding":
                declared = None
                break
            elif name == b"x-request-id":
                incoming = value
        limit = self.limit_for(path)
        if declared is None or limit is None or declared > limit:
            await self.app(scope, receive, send)
            return
        rid = incoming.decode("latin-1")[:64] or os.urandom(16).hex()  # as uuid4().hex, without the UUID
        token = request_id.set(rid)
        started = time.perf_counter()
        status = 500
        answered = False
        try:
            chunks: list[bytes] = []
            while True:  # the server delivers no more than the declared length
                message = await receive()
                if message["type"] != "http.request":
                    return  # the client went away: nobody to answer
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    break
            status, answer = await answer_post(self.runtime, Request(scope, receive), b"".join(chunks))
            headers = [(b"content-length", str(len(answer)).encode()), _JSON_HEADER,
                       (b"x-request-id", rid.encode("latin-1"))]
            answered = True
            if not _write_whole(send, status, headers, answer):
                await send({"type": "http.response.start", "status": status, "headers": headers})
                await send({"type": "http.response.body", "body": answer})
        except Exception:
            if not answered:  # (status is still 500)
                await send({"type": "http.response.start", "status": 500, "headers": _ERROR_HEADERS})
                await send({"type": "http.response.body", "body": b"Internal Server Error"})
            raise  # the server logs it
        finally:
            counter, histogram = self._metrics.get((path, status)) or self._children(path, status)
            counter.inc()
            histogram.observe(time.perf_counter() - started)
            request_id.reset(token)

    def _children(self, path: str, status: int) -> tuple[Any, Any]:
        children = self._metrics[(path, status)] = (REQUESTS.labels(path, str(status)), REQUEST_SECONDS.labels(path))
        return children


def _write_whole(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> bool:
    """The response's head and body in ONE write to the transport, when `send` is uvicorn's httptools
    protocol's own (as `subscriptions/transport/wire.py` writes frames); False: send it through `send`.

    Its send writes the head and the body separately, two system calls (and two segments a peer on
    loopback is woken for). Here the head is what it would write (status line, the server's default
    headers, ours), and its response state ends as its send leaves it (complete, keep-alive or close).
    Not when it would write an access log line (INFO), nor with writing paused (it waits for the
    transport to drain) or a header value it would refuse.
    """
    cycle: Any = getattr(send, "__self__", None)
    if (cycle is None or type(cycle).__module__ != _HTTPTOOLS or not _fits(cycle)
            or cycle.response_started
            or (cycle.access_log and cycle.access_logger.isEnabledFor(logging.INFO))
            or cycle.disconnected or cycle.flow.write_paused or _UNSENDABLE.search(headers[-1][1])):
        return False
    head = [_status_line(status)]
    for name, value in (*cycle.default_headers, *headers):
        head += (name, b": ", value, b"\r\n")
    if not cycle.keep_alive:
        head.append(b"connection: close\r\n")
    head += (b"\r\n", body)
    cycle.response_started = True
    cycle.waiting_for_100_continue = False
    cycle.chunked_encoding = False
    cycle.expected_content_length = 0
    cycle.transport.write(b"".join(head))
    cycle.response_complete = True
    cycle.message_event.set()
    if not cycle.keep_alive:
        cycle.transport.close()
    cycle.on_response()
    return True


# What `_write_whole` reads and sets of uvicorn's cycle (uvicorn is not pinned: a release that renames
# one of them takes the plain send instead of failing every POST).
_CYCLE_ATTRIBUTES = ("response_started", "access_log", "access_logger", "disconnected", "flow", "default_headers",
                     "keep_alive", "waiting_for_100_continue", "chunked_encoding", "expected_content_length",
                     "transport", "response_complete", "message_event", "on_response")
_FITS: dict[type, bool] = {}


def _fits(cycle: Any) -> bool:
    """Whether the cycles of this one's class have every attribute (checked on the first one seen)."""
    fits = _FITS.get(type(cycle))
    if fits is None:
        fits = _FITS[type(cycle)] = all(hasattr(cycle, a) for a in _CYCLE_ATTRIBUTES)
    return fits


_STATUS_LINES: dict[int, bytes] = {}


def _status_line(status: int) -> bytes:
    line = _STATUS_LINES.get(status)
    if line is None:
        line = _STATUS_LINES[status] = f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n".encode()
    return line


def graphql_routes() -> list[Route]:
    """HTTP routes only: a WebSocketRoute of the same path (subscriptions) can sit beside them."""
    return [
        Route("/v1/graphql", graphql_endpoint, methods=["GET", "POST"]),
        Route("/graphql", graphql_endpoint, methods=["GET", "POST"]),
    ]
