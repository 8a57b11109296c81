"""HTTP for recordings (/recordings/<stream_id>/...), thumbnails and DVR playlists under /hls/<stream_id>/."""

from __future__ import annotations

import asyncio
import re

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from ..storage.archive import read_archived_recording
from .access import PRIVATE_FILE, PRIVATE_PLAYLIST, MediaGrant, authorize_media
from .playlists import dvr_master as dvr_master_of
from .routes import CORS, IMMUTABLE, NO_CACHE, PLAYLIST_TYPE

_RECORDING_PATH = re.compile(
    r"^(?:clips/[0-9a-f-]{36}/)?(?:master\.m3u8|\d{3,4}p/(?:index\.m3u8|init\.mp4|seg\d+\.m4s))$|^thumbnail\.jpg$"
)
_RENDITION = re.compile(r"^\d{3,4}p$")
_TYPES = {".m3u8": PLAYLIST_TYPE, ".mp4": "video/mp4", ".m4s": "video/iso.segment", ".jpg": "image/jpeg"}


def _not_found(message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": "not-found", "message": message}}, status_code=404, headers=CORS | NO_CACHE)


def _type(path: str) -> str:
    return next((t for ext, t in _TYPES.items() if path.endswith(ext)), "application/octet-stream")


async def recording_file(request: Request) -> Response:
    stream_id = request.path_params["stream_id"]
    path = request.path_params["path"]
    settings = request.app.state.runtime.settings
    if not _RECORDING_PATH.match(path):
        return _not_found(f"no recording file '{path}' for stream '{stream_id}'")
    grant = await authorize_media(request, stream_id)
    if not isinstance(grant, MediaGrant):
        return grant
    # Playlists of a finished recording never change, but a deleted one must not linger in caches.
    if path.endswith(".m3u8"):
        cache = grant.cache({"Cache-Control": "public, max-age=60"}, PRIVATE_PLAYLIST)
    else:
        cache = grant.cache(IMMUTABLE, PRIVATE_FILE)
    file = settings.recording_dir / stream_id / path
    if not await asyncio.to_thread(file.is_file):
        # An archived recording (media/extras/archive.py) is served from cold storage.
        data = await asyncio.to_thread(read_archived_recording, settings, stream_id, path)
        if data is None:
            return _not_found(f"no recording file '{path}' for stream '{stream_id}'")
        return Response(data, media_type=_type(path), headers=CORS | cache)
    return FileResponse(file, media_type=_type(path), headers=CORS | cache)


async def _from_live_storage(request: Request, key: str, headers: dict[str, str]) -> Response:
    manager = request.app.state.runtime.media
    if manager is None:
        return _not_found(f"no file '{key}'")
    data = await asyncio.to_thread(manager.storage.read, key)
    if data is None:
        return _not_found(f"no file '{key}'")
    return Response(data, media_type=_type(key), headers=CORS | headers)


async def thumbnail(request: Request) -> Response:
    stream_id = request.path_params["stream_id"]
    grant = await authorize_media(request, stream_id)
    if not isinstance(grant, MediaGrant):
        return grant
    # A new thumbnail replaces it every few seconds.
    cache = grant.cache({"Cache-Control": "public, max-age=5"}, "private, max-age=5")
    return await _from_live_storage(request, f"{stream_id}/thumbnail.jpg", cache)


async def dvr_master(request: Request) -> Response:
    stream_id = request.path_params["stream_id"]
    grant = await authorize_media(request, stream_id)
    if not isinstance(grant, MediaGrant):
        return grant
    cache = grant.cache(NO_CACHE, PRIVATE_PLAYLIST)
    manager = request.app.state.runtime.media
    packager = manager.packager(stream_id) if manager is not None else None
    if packager is not None and packager.master_written and await asyncio.to_thread(
            manager.storage.read, f"{stream_id}/dvr.m3u8") is not None:
        # Encoded here: from the packager's ladder, which a trimmed rung leaves at once.
        return Response(dvr_master_of(packager.render_master().encode()), media_type=PLAYLIST_TYPE,
                        headers=CORS | cache)
    return await _from_live_storage(request, f"{stream_id}/dvr.m3u8", cache)


async def dvr_playlist(request: Request) -> Response:
    stream_id = request.path_params["stream_id"]
    name = request.path_params["rendition"]
    if not _RENDITION.match(name):
        return _not_found(f"no DVR playlist '{name}' for stream '{stream_id}'")
    grant = await authorize_media(request, stream_id)
    if not isinstance(grant, MediaGrant):
        return grant
    return await _from_live_storage(request, f"{stream_id}/{name}/dvr.m3u8", grant.cache(NO_CACHE, PRIVATE_PLAYLIST))


def replay_routes() -> list[Route]:
    """Put these before the HLS routes: `/hls/{id}/{rendition}/{filename}` would take dvr.m3u8."""
    return [
        Route("/hls/{stream_id}/thumbnail.jpg", thumbnail, methods=["GET", "HEAD"]),
        Route("/hls/{stream_id}/dvr.m3u8", dvr_master, methods=["GET", "HEAD"]),
        Route("/hls/{stream_id}/{rendition}/dvr.m3u8", dvr_playlist, methods=["GET", "HEAD"]),
        Route("/recordings/{stream_id}/{path:path}", recording_file, methods=["GET", "HEAD"]),
    ]
