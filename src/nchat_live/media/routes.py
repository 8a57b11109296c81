"""Every HTTP route of the media subsystem, for app.py."""

from __future__ import annotations

from starlette.routing import Route

from .egress.whep import whep_routes
from .extras.chapters import chapter_routes
from .hls.replay_routes import replay_routes
from .hls.routes import hls_routes
from .ingest.whip import whip_routes


def media_routes() -> list[Route]:
    return [*chapter_routes(), *replay_routes(), *hls_routes(), *whip_routes(), *whep_routes()]
