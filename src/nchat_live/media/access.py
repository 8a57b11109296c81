"""Who may fetch a stream's HLS, DVR, thumbnails and recordings.

A public stream's media is open to everyone (CDN-friendly: no credentials, one cached check per
stream). A private channel's stream needs the caller's token — `Authorization: Bearer <JWT>` (hls.js
sends it through `xhrSetup`) or `?token=<JWT>` — and Postgres decides under those claims, with the same
cached `nchat.can_read_stream` check the realtime feeds use.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse

from ..auth import Claims
from ..errors import NchatError, Unavailable

_HEADERS = {"Access-Control-Allow-Origin": "*", "Cache-Control": "no-cache"}


def _refusal(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=_HEADERS)


async def _exists(runtime: object, stream_id: str) -> bool:
    async with runtime.database.session(Claims.service()) as session:  # type: ignore[attr-defined]
        return bool(await session.fetchval("SELECT 1 FROM nchat_streams WHERE id = $1", stream_id))


async def refuse_unless_readable(request: Request, stream_id: str) -> JSONResponse | None:
    """None when the caller may read `stream_id`'s media; otherwise the 401/404/503 to send."""
    runtime = request.app.state.runtime
    realtime = getattr(runtime, "realtime", None)
    if realtime is None:
        return None  # a process without the realtime part (none today) has no way to check
    access = realtime.access
    try:
        if await access.can_read(Claims.anonymous(), stream_id):
            return None
        token = request.query_params.get("token")
        headers = {"authorization": f"Bearer {token}"} if token else dict(request.headers)
        if "authorization" not in {k.lower() for k in headers}:
            if not await _exists(runtime, stream_id):
                return _refusal(404, "not-found", f"no media for stream '{stream_id}'")
            return _refusal(401, "access-denied", "this stream is private: send a token (Authorization or ?token=)")
        claims = runtime.auth.authenticate(headers)
        if await access.can_read(claims, stream_id):
            return None
    except Unavailable as exc:
        return _refusal(503, exc.code, exc.message)
    except NchatError as exc:
        return _refusal(401, exc.code, exc.message)
    # Not readable and not found look the same, so a stream id reveals nothing.
    return _refusal(404, "not-found", f"no media for stream '{stream_id}'")
