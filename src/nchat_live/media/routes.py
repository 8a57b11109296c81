"""Every HTTP route of the media subsystem, for app.py."""

from __future__ import annotations

from starlette.routing import Route

from .hls import hls_routes
from .whip import whip_routes


def media_routes() -> list[Route]:
    return [*hls_routes(), *whip_routes()]
