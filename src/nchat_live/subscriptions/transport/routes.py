"""The websocket routes. HTTP routes on the same paths (the GraphQL engine's) coexist: Starlette
matches `Route` only for HTTP scopes and `WebSocketRoute` only for websocket scopes."""

from __future__ import annotations

from starlette.routing import BaseRoute, WebSocketRoute

from .websocket import graphql_websocket


def websocket_routes() -> list[BaseRoute]:
    return [WebSocketRoute("/v1/graphql", graphql_websocket), WebSocketRoute("/graphql", graphql_websocket)]
