"""HTTP endpoints: POST /v1/graphql (Hasura's path) and /graphql; GraphiQL on GET.

Errors keep Hasura's shape and its HTTP 200 (authentication failures included), except a body
over the size limit (413), a body that is not JSON (400) and a batch over NCHAT_MAX_BATCH_SIZE (400),
which never reach GraphQL.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from ..errors import NchatError
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
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        return JSONResponse(error(f"request body is not valid JSON: {exc}", code="parse-failed"), status_code=400)
    except RecursionError:  # the decoder gives up on deeply nested arrays/objects
        return JSONResponse(error("request body is nested too deeply", code="parse-failed"), status_code=400)
    try:
        claims = runtime.auth.authenticate(request.headers)
    except NchatError as exc:
        return JSONResponse(error(exc.message, exc.code))
    if isinstance(payload, list):  # a batch, as Apollo's batch link sends (one at a time)
        cap = runtime.settings.max_batch_size
        if len(payload) > cap:
            refused = error(f"a batch of {len(payload)} operations; the limit is {cap}")
            refused["errors"][0]["extensions"]["limit"] = "batch"
            return JSONResponse(refused, status_code=400)
        parts = [await _one(runtime, claims, request, item) for item in payload]
        return _json(b"[" + b",".join(parts) + b"]")
    return _json(await _one(runtime, claims, request, payload))


def _json(body: bytes) -> Response:
    return Response(body, media_type="application/json")


async def _one(runtime: Runtime, claims: Any, request: Request, payload: Any) -> bytes:
    """One operation's response as JSON bytes (a table-API query's come from Postgres as text)."""
    if not isinstance(payload, dict):
        return dumps(error("the request body must be a JSON object {query, variables, operationName}"))
    ctx = Context(runtime, claims, request)
    return await execute_json(ctx, payload.get("query"), payload.get("variables"), payload.get("operationName"))


def graphql_routes() -> list[Route]:
    """HTTP routes only: a WebSocketRoute of the same path (subscriptions) can sit beside them."""
    return [
        Route("/v1/graphql", graphql_endpoint, methods=["GET", "POST"]),
        Route("/graphql", graphql_endpoint, methods=["GET", "POST"]),
    ]
