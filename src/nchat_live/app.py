"""The ASGI application: routes of every subsystem on one Starlette app."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from .body_limits import BodyLimitMiddleware, limit_for_path
from .config import Settings
from .graphql.http import GraphQLPosts, graphql_routes
from .media.routes import media_routes
from .observability import RequestIdMiddleware, metrics, readyz
from .rest import rest_routes
from .runtime import Runtime
from .subscriptions.transport.routes import websocket_routes
from .subscriptions.transport.wire import CaptureServerSend
from .web import web_routes


class NchatApp(Starlette):
    """Starlette, with `front` (given the rest of the app) answering first: what it answers skips the
    middleware stack and the router, ServerErrorMiddleware included, so `front` answers its own errors."""

    def __init__(self, *, front: Callable[[ASGIApp], ASGIApp] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._entry: ASGIApp = super().__call__ if front is None else front(super().__call__)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["app"] = self
        await self._entry(scope, receive, send)


async def healthz(request: Request) -> JSONResponse:
    runtime: Runtime = request.app.state.runtime
    ok = runtime.db is not None and await runtime.db.ping()
    return JSONResponse({"status": "ok" if ok else "unavailable", "database": ok}, status_code=200 if ok else 503)


def create_app(settings: Settings | None = None, *, runtime: Runtime | None = None, role: str = "all") -> Starlette:
    """The app for a process `role`: "all" (serve), "api" (GraphQL, REST, console) or "media" (WHIP, HLS)."""
    runtime = runtime or Runtime(settings)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        owned = not runtime.started
        if owned:
            await runtime.start(role=role)
        try:
            yield
        finally:
            if owned:
                await runtime.stop()

    routes: list[BaseRoute] = [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics),
    ]
    if role in ("all", "api"):
        # GraphQL over HTTP (POST /v1/graphql, /graphql; GET GraphiQL). HTTP-only Routes: the
        # websocket routes of the same paths below still match websocket scopes.
        routes += [*graphql_routes(), *websocket_routes(), *rest_routes()]
    # An API process keeps the media routes: it serves HLS from shared storage and sends WHIP
    # publishers on to a media worker.
    routes += media_routes()
    if role in ("all", "api"):
        # The console's pages last: any API route of the same path wins.
        routes += web_routes()
    # Body limits before any route reads a byte (body_limits.py).
    # The websocket transport writes to the server's protocol directly where it can (wire.py).
    limit_for = limit_for_path(runtime.settings)
    middleware = [Middleware(CaptureServerSend), Middleware(RequestIdMiddleware),
                  Middleware(BodyLimitMiddleware, limit_for=limit_for)]
    # GraphQL POSTs within the body limit are answered before the rest of the stack (graphql/http.py).
    front = partial(GraphQLPosts, runtime=runtime, limit_for=limit_for) if role in ("all", "api") else None
    app = NchatApp(routes=routes, lifespan=lifespan, middleware=middleware, front=front)
    app.state.runtime = runtime
    return app
