"""The guide's REST routes, for clients of the old REST layer: thin adapters over the resolvers.

Same authentication as GraphQL (JWT / admin secret / unauthorized role), same domain functions,
camelCase JSON as the guide's clients expect. Errors are `{"error": {"code", "message"}}` with
the error's 4xx status. Bodies are limited before a route reads them (NCHAT_MAX_REST_BODY_BYTES,
body_limits.py): 413 `request-too-large`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from .db import Session
from .errors import NchatError, ValidationFailed
from .graphql.context import Context
from .resolvers import analytics, chat, reactions, streams
from .resolvers.streams import StreamInput
from .runtime import Runtime

log = logging.getLogger(__name__)

Handler = Callable[[Request], Awaitable[Response]]


def camel(value: Any) -> Any:
    """snake_case keys → camelCase, times as ISO 8601, decimals as numbers, recursively."""
    if isinstance(value, dict):
        return {_camel_key(k): camel(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [camel(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return value


def _camel_key(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def error_response(exc: NchatError) -> JSONResponse:
    body: dict[str, Any] = {"code": exc.code, "message": exc.message}
    if exc.extensions:
        body["extensions"] = exc.extensions
    return JSONResponse({"error": body}, status_code=exc.http_status)


def endpoint(work: Callable[[Request, Session, Runtime], Awaitable[Response | Any]], status: int = 200) -> Handler:
    """Authenticate, run `work` in the caller's session, map errors; a non-Response result is JSON."""

    async def handle(request: Request) -> Response:
        runtime: Runtime = request.app.state.runtime
        try:
            claims = runtime.auth.authenticate(request.headers)
            # As a GraphQL request: the statement timeout and the client's share of the pool (one
            # client with a loop must not hold every connection).
            async with Context(runtime, claims, request).session() as session:
                result = await work(request, session, runtime)
        except NchatError as exc:
            return error_response(exc)
        except ClientDisconnect:  # gone, or cut off by the body limit (body_limits.py), which answered
            return Response(status_code=499)
        except Exception:
            log.exception("REST %s %s failed", request.method, request.url.path)
            return JSONResponse({"error": {"code": "unexpected", "message": "internal error"}}, status_code=500)
        if isinstance(result, Response):
            return result
        return JSONResponse(camel(result), status_code=status)

    return handle


async def _body(request: Request) -> dict[str, Any]:
    try:
        data = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ValidationFailed("the request body is not JSON") from None
    except RecursionError:  # the decoder gives up on deeply nested arrays/objects
        raise ValidationFailed("the request body is nested too deeply") from None
    if not isinstance(data, dict):
        raise ValidationFailed("the request body must be a JSON object")
    return data


def _sid(request: Request) -> str:
    return str(request.path_params["id"])


async def _create(request: Request, s: Session, rt: Runtime) -> Any:
    return await streams.create_stream(s, rt.settings, StreamInput.from_camel(await _body(request)))


async def _start(request: Request, s: Session, rt: Runtime) -> Any:
    return await streams.start_stream(s, _sid(request))


async def _end(request: Request, s: Session, rt: Runtime) -> Any:
    data = await _body(request) if await request.body() else {}
    return await streams.end_stream(s, _sid(request), data.get("reason"))


async def _get(request: Request, s: Session, rt: Runtime) -> Any:
    stream = await streams.get_stream(s, _sid(request))
    return {**stream, "playback_url": streams.stream_urls(rt.settings, stream["id"])["playback_url"]}


async def _live(request: Request, s: Session, rt: Runtime) -> Any:
    return {"streams": await streams.live_streams(s, request.query_params.get("channelId"))}


async def _hls(request: Request, s: Session, rt: Runtime) -> Any:
    return await streams.hls_manifest(s, rt.settings, _sid(request))


async def _viewers(request: Request, s: Session, rt: Runtime) -> Any:
    return {"count": await streams.viewer_count(s, _sid(request))}


async def _chat_history(request: Request, s: Session, rt: Runtime) -> Any:
    raw = request.query_params.get("limit", "50")
    if not raw.isdigit():
        raise ValidationFailed(f"limit '{raw}' is not a number")
    return await chat.chat_history(s, _sid(request), limit=int(raw), before=request.query_params.get("before"))


async def _chat_send(request: Request, s: Session, rt: Runtime) -> Any:
    content = (await _body(request)).get("content")
    if not isinstance(content, str):
        raise ValidationFailed("content is required: {\"content\": \"...\"}")
    return await chat.send_chat_message(s, _sid(request), content)


async def _chat_delete(request: Request, s: Session, rt: Runtime) -> Any:
    return await chat.delete_chat_message(s, str(request.path_params["msg_id"]), stream_id=_sid(request))


async def _chat_pin(request: Request, s: Session, rt: Runtime) -> Any:
    return await chat.pin_chat_message(s, str(request.path_params["msg_id"]), stream_id=_sid(request))


async def _react(request: Request, s: Session, rt: Runtime) -> Any:
    data = await _body(request)
    emoji = data.get("emoji")
    if not isinstance(emoji, str):
        raise ValidationFailed("emoji is required: {\"emoji\": \"🔥\"}", code="invalid-emoji")
    return await reactions.send_reaction(s, _sid(request), emoji, data.get("positionX"), data.get("positionY"))


async def _analytics_csv(request: Request, s: Session, rt: Runtime) -> Response:
    result = await analytics.stream_analytics(s, _sid(request))
    return Response(
        analytics.analytics_csv(result), media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="stream-{result["stream_id"]}-analytics.csv"',
                 "cache-control": "no-store"},
    )


async def _analytics_pdf(request: Request, s: Session, rt: Runtime) -> Response:
    result = await analytics.stream_analytics(s, _sid(request))
    title = await s.fetchval("SELECT title FROM nchat_streams WHERE id = $1", result["stream_id"])
    return Response(
        analytics.analytics_pdf(result, f"{title} - analytics" if title else None), media_type="application/pdf",
        headers={"content-disposition": f'attachment; filename="stream-{result["stream_id"]}-analytics.pdf"',
                 "cache-control": "no-store"},
    )


def rest_routes() -> list[BaseRoute]:
    return [
        Route("/api/streams/create", endpoint(_create, 201), methods=["POST"]),
        # Before /api/streams/{id}: "live" is not a stream id.
        Route("/api/streams/live", endpoint(_live), methods=["GET"]),
        Route("/api/streams/{id}", endpoint(_get), methods=["GET"]),
        Route("/api/streams/{id}/start", endpoint(_start), methods=["POST"]),
        Route("/api/streams/{id}/end", endpoint(_end), methods=["POST"]),
        Route("/api/streams/{id}/hls", endpoint(_hls), methods=["GET"]),
        Route("/api/streams/{id}/viewers", endpoint(_viewers), methods=["GET"]),
        Route("/api/streams/{id}/chat", endpoint(_chat_history), methods=["GET"]),
        Route("/api/streams/{id}/chat", endpoint(_chat_send, 201), methods=["POST"]),
        Route("/api/streams/{id}/chat/{msg_id}", endpoint(_chat_delete), methods=["DELETE"]),
        Route("/api/streams/{id}/chat/{msg_id}/pin", endpoint(_chat_pin), methods=["POST"]),
        Route("/api/streams/{id}/reactions", endpoint(_react, 201), methods=["POST"]),
        Route("/api/streams/{id}/analytics.csv", endpoint(_analytics_csv), methods=["GET"]),
        Route("/api/streams/{id}/analytics.pdf", endpoint(_analytics_pdf), methods=["GET"]),
    ]
