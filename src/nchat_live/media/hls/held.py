"""A per-client cap on held HLS requests (blocking playlist reloads, preload-hinted parts).

Each held request already ends within three target durations; this bounds how many one client
address may hold at once, so one client cannot pin thousands of waiters. A real player holds one
or two per rendition; past the cap the request is answered 429 at once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.requests import Request
from starlette.responses import JSONResponse


class HeldRequests:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._held: dict[str, int] = {}

    def held(self, client: str) -> int:
        return self._held.get(client, 0)

    @asynccontextmanager
    async def hold(self, client: str) -> AsyncIterator[bool]:
        """Yields False (and holds nothing) when `client` is at the cap."""
        if self._held.get(client, 0) >= self.limit:
            yield False
            return
        self._held[client] = self._held.get(client, 0) + 1
        try:
            yield True
        finally:
            left = self._held[client] - 1
            if left:
                self._held[client] = left
            else:
                del self._held[client]


def held_requests(request: Request) -> HeldRequests:
    state = request.app.state
    held: HeldRequests | None = getattr(state, "hls_held_requests", None)
    if held is None:
        held = state.hls_held_requests = HeldRequests(state.runtime.settings.hls_max_held_per_client)
    return held


def client_address(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


def too_many(limit: int) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": "rate-limited",
                   "message": f"more than {limit} held playlist or part requests from this client"}},
        status_code=429, headers={"Access-Control-Allow-Origin": "*", "Cache-Control": "no-store", "Retry-After": "1"},
    )
