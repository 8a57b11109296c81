"""Serving /hls/{stream_id}/...: playlists (with LL-HLS blocking reload), init segments, segments, parts.

A stream encoded by this process answers from the packager's memory, and blocking reloads wait on
its per-rendition event (no polling, however many viewers wait). Other streams are served from storage:
an API process (no MediaManager) or a worker that does not ingest the stream reads the shared storage,
and a blocking reload there polls storage every 200 ms until the playlist holds the asked-for part
(three target durations at most, then the current playlist). When the storage has a public URL (S3
behind a CDN), requests for streams not encoded here are redirected to it instead.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from ..storage.base import MediaStorage
from ..storage.select import open_storage, public_url
from .access import PRIVATE_FILE, PRIVATE_PLAYLIST, MediaGrant, authorize_media
from .held import client_address, held_requests, too_many
from .packager import PackagingConfig, PlaylistRequestError, RenditionPackager, StreamPackager

if TYPE_CHECKING:
    from ..worker.manager import MediaManager

PLAYLIST_TYPE = "application/vnd.apple.mpegurl"
CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, HEAD, OPTIONS",
    "Access-Control-Allow-Headers": "Range, Content-Type, Authorization",
    "Access-Control-Expose-Headers": "Content-Length, Content-Range",
}
NO_CACHE = {"Cache-Control": "no-cache"}
PUBLIC_PLAYLIST = NO_CACHE
IMMUTABLE = {"Cache-Control": "public, max-age=31536000, immutable"}
_RENDITION = re.compile(r"^\d{3,4}p$")
_MEDIA_FILE = re.compile(r"^(?:init\d*\.mp4|seg(\d+)(?:\.(\d+))?\.m4s)$")


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=CORS | NO_CACHE)


def _dropped(stream_id: str, name: str) -> JSONResponse:
    return _error(404, "not-found", f"rendition '{name}' was dropped from the ladder of stream '{stream_id}'")


def _manager(request: Request) -> MediaManager | None:
    return request.app.state.runtime.media


def _storage(request: Request) -> MediaStorage:
    """The worker's storage, or (an API process) the shared storage the settings name."""
    manager = _manager(request)
    if manager is not None:
        return manager.storage
    state = request.app.state
    storage: MediaStorage | None = getattr(state, "hls_storage", None)
    if storage is None:
        storage = state.hls_storage = open_storage(state.runtime.settings)
    return storage


def _elsewhere(request: Request, key: str) -> Response | None:
    """A redirect to the storage's public copy of `key`, when it has one."""
    url = public_url(_storage(request), key)
    return RedirectResponse(url, status_code=307, headers=CORS | NO_CACHE) if url else None


def _holds(playlist: bytes, msn: int, part: int | None) -> bool:
    """Whether a stored media playlist already lists segment `msn` (or its part `part`)."""
    text = playlist.decode(errors="replace")
    if "#EXT-X-ENDLIST" in text or f'"seg{msn + 1}.0.m4s"' in text.split("#EXT-X-PRELOAD-HINT")[0]:
        return True
    if part is None:
        return f"\nseg{msn}.m4s\n" in text
    return f'URI="seg{msn}.{part}.m4s"' in text


async def _poll_storage(storage: MediaStorage, key: str, ready: Callable[[bytes], bool],
                        seconds: float, *, gone_is_final: bool = False) -> bytes | None:
    """Read `key` until `ready` says yes or `seconds` pass; the last read either way.

    `gone_is_final`: a missing `key` ends the wait at once (a playlist a player reloads existed when it
    loaded it; missing now, its rendition was trimmed from the ladder or the stream's files were removed).
    """
    deadline = time.monotonic() + seconds
    while True:
        data = await asyncio.to_thread(storage.read, key)
        if data is None and gone_is_final:
            return None
        if (data is not None and ready(data)) or time.monotonic() >= deadline:
            return data
        await asyncio.sleep(0.2)


def _playlist(text: str | bytes, grant: MediaGrant) -> Response:
    return Response(text, media_type=PLAYLIST_TYPE, headers=CORS | grant.cache(PUBLIC_PLAYLIST, PRIVATE_PLAYLIST))


def _int_param(request: Request, name: str) -> int | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    if not re.fullmatch(r"\d{1,9}", raw):
        raise PlaylistRequestError(f"{name}='{raw}' is not a non-negative integer")
    return int(raw)


async def master(request: Request) -> Response:
    stream_id = request.path_params["stream_id"]
    manager = _manager(request)
    grant = await authorize_media(request, stream_id)
    if not isinstance(grant, MediaGrant):
        return grant
    packager = manager.packager(stream_id) if manager is not None else None
    if packager is not None and packager.master_written:
        return _playlist(packager.render_master(), grant)
    key = f"{stream_id}/master.m3u8"
    # A private stream's media never goes to a public URL: it is served here, after the check.
    if grant.public and (redirect := _elsewhere(request, key)) is not None:
        return redirect
    data = await asyncio.to_thread(_storage(request).read, key)
    if data is None:
        return _error(404, "not-found", f"stream '{stream_id}' has no master playlist yet")
    return _playlist(data, grant)


async def media_playlist(request: Request) -> Response:
    stream_id = request.path_params["stream_id"]
    name = request.path_params["rendition"]
    manager = _manager(request)
    if not _RENDITION.match(name):
        return _error(404, "not-found", f"no rendition '{name}' for stream '{stream_id}'")
    try:
        msn = _int_param(request, "_HLS_msn")
        part = _int_param(request, "_HLS_part")
    except PlaylistRequestError as exc:
        return _error(400, "bad-request", str(exc))
    if part is not None and msn is None:
        return _error(400, "bad-request", "_HLS_part requires _HLS_msn")
    grant = await authorize_media(request, stream_id)
    if not isinstance(grant, MediaGrant):
        return grant
    packager = manager.packager(stream_id) if manager is not None else None
    rendition = packager.rendition(name) if packager is not None else None
    if packager is None or rendition is None:
        key = f"{stream_id}/{name}/index.m3u8"
        if grant.public and (redirect := _elsewhere(request, key)) is not None:
            return redirect
        storage = _storage(request)
        if msn is None:
            data = await asyncio.to_thread(storage.read, key)
        else:
            held = held_requests(request)
            async with held.hold(client_address(request)) as holding:
                if not holding:
                    return too_many(held.limit)
                wait = 3 * PackagingConfig().target_duration
                data = await _poll_storage(storage, key, lambda d: _holds(d, msn, part), wait, gone_is_final=True)
            if data is not None and not _holds(data, msn, part):
                return _error(503, "unavailable",
                              f"segment {msn} part {part} did not appear within 3 target durations")
        if data is None:
            return _error(404, "not-found", f"no rendition '{name}' for stream '{stream_id}'")
        return _playlist(data, grant)
    if rendition.removed:
        # Trimmed from the ladder: gone from the master, and a player still on it gets an error it
        # recovers from by switching variants (an ENDLIST would read as the end of the stream).
        return _dropped(stream_id, name)
    try:
        rendition.check_request(msn, part)
    except PlaylistRequestError as exc:
        return _error(400, "bad-request", str(exc))
    if msn is not None and not rendition.satisfies(msn, part):
        held = held_requests(request)
        async with held.hold(client_address(request)) as holding:
            if not holding:
                return too_many(held.limit)
            if not await packager.wait_for_playlist(name, msn, part):
                return _error(503, "unavailable",
                              f"segment {msn} part {part} did not appear within 3 target durations")
        if rendition.removed:  # trimmed while the request waited: its last playlist ends with ENDLIST
            return _dropped(stream_id, name)
    return _playlist(rendition.render(), grant)


async def media_file(request: Request) -> Response:
    stream_id = request.path_params["stream_id"]
    name = request.path_params["rendition"]
    filename = request.path_params["filename"]
    manager = _manager(request)
    match = _MEDIA_FILE.match(filename)
    if not _RENDITION.match(name) or match is None:
        return _error(404, "not-found", f"no file '{filename}'")
    grant = await authorize_media(request, stream_id)
    if not isinstance(grant, MediaGrant):
        return grant
    key = f"{stream_id}/{name}/{filename}"
    packager = manager.packager(stream_id) if manager is not None else None
    if packager is None and grant.public and (redirect := _elsewhere(request, key)) is not None:
        return redirect
    storage = _storage(request)
    media_type = "video/mp4" if filename.endswith(".mp4") else "video/iso.segment"
    headers = CORS | grant.cache(IMMUTABLE, PRIVATE_FILE)
    rendition = packager.rendition(name) if packager is not None else None
    if rendition is not None and rendition.removed:
        return _dropped(stream_id, name)
    if packager is not None and rendition is not None and match.group(2) is not None:
        # A part of a stream encoded here: from memory, and the open part streamed while it is written.
        data = rendition.part_data(filename)
        if data is None:
            held = held_requests(request)
            async with held.hold(client_address(request)) as holding:
                if not holding:
                    return too_many(held.limit)
                msn, index = int(match.group(1)), int(match.group(2))
                await packager.wait_until(
                    name, lambda: rendition.is_open(filename) or rendition.passed(msn, index)
                    or rendition.part_data(filename) is not None,
                    3 * packager.config.target_duration,
                )
            if rendition.is_open(filename):
                return StreamingResponse(_stream_part(packager, name, filename), media_type=media_type,
                                         headers=headers)
            data = rendition.part_data(filename)
        if data is not None:
            return Response(data, media_type=media_type, headers=headers)
    path = storage.local_path(key)
    if path is None and match.group(2) is not None:
        held = held_requests(request)
        async with held.hold(client_address(request)) as holding:
            if not holding:
                return too_many(held.limit)
            path = await _wait_for_part(storage, packager, key, name, filename, int(match.group(1)),
                                        int(match.group(2)))
    if path is not None:
        return FileResponse(path, media_type=media_type, headers=headers)
    data = await asyncio.to_thread(storage.read, key)
    if data is None:
        return _error(404, "not-found", f"no file '{filename}' (it may have left the live window)")
    return Response(data, media_type=media_type, headers=headers)


async def _stream_part(packager: StreamPackager, name: str, uri: str) -> AsyncIterator[bytes]:
    """The bytes of the part being written, each chunk as the muxer hands it over (chunked transfer),
    until the part is whole: a player that asked for the preload-hinted part gets it as it is made."""
    rendition = packager.rendition(name)
    if rendition is None:
        return
    sent = 0
    limit = 3 * packager.config.target_duration
    while True:
        data, whole = rendition.read_part(uri, sent)
        if data:
            sent += len(data)
            yield data
        if whole:
            return
        if not await packager.wait_until(name, partial(_grown, rendition, uri, sent), limit):
            return


def _grown(rendition: RenditionPackager, uri: str, offset: int) -> bool:
    """Whether part `uri` has bytes past `offset`, or is whole."""
    return rendition.read_part(uri, offset) != (b"", False)


async def _wait_for_part(storage: MediaStorage, packager: StreamPackager | None, key: str, name: str,
                         filename: str, msn: int, index: int) -> Path | None:
    """A part announced by EXT-X-PRELOAD-HINT: hold the request (bounded) until it is written."""
    if packager is None:
        # A stream encoded elsewhere: wait for the part to land in storage.
        wait = PackagingConfig().target_duration
        if await _poll_storage(storage, key, lambda _: True, wait) is not None:
            return storage.local_path(key)
        return None
    rendition = packager.rendition(name)
    if rendition is None:
        return None
    await packager.wait_until(
        name, lambda: rendition.has_part(filename) or rendition.passed(msn, index),
        3 * packager.config.target_duration,
    )
    return storage.local_path(key)


async def preflight(request: Request) -> Response:
    return Response(status_code=204, headers=CORS | {"Access-Control-Max-Age": "86400"})


def hls_routes() -> list[Route]:
    return [
        Route("/hls/{stream_id}/master.m3u8", master, methods=["GET", "HEAD"]),
        Route("/hls/{stream_id}/{rendition}/index.m3u8", media_playlist, methods=["GET", "HEAD"]),
        Route("/hls/{stream_id}/{rendition}/{filename}", media_file, methods=["GET", "HEAD"]),
        Route("/hls/{path:path}", preflight, methods=["OPTIONS"]),
    ]
