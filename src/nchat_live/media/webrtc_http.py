"""The HTTP side WHIP (ingest/whip.py) and WHEP (egress/whep.py) share: CORS headers, the JSON error body,
a size-limited body read, the client address, NCHAT_ICE_SERVERS and its Link headers, the SDP
Content-Type check."""

from __future__ import annotations

import json

from aiortc import RTCIceServer
from aiortc import sdp as aiortc_sdp
from starlette.requests import Request
from starlette.responses import JSONResponse

CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "POST, DELETE, PATCH, OPTIONS",
    "Access-Control-Allow-Headers": "Authorization, Content-Type, If-Match",
    "Access-Control-Expose-Headers": "Location, Link, ETag, Accept-Patch, Accept-Post",
}


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status,
                        headers=CORS_HEADERS | (headers or {}))


class BodyTooLarge(Exception):
    pass


async def read_limited(request: Request, limit: int) -> bytes:
    """The request body, or BodyTooLarge as soon as it (or its Content-Length) passes `limit`."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(f"the body is {declared} bytes; at most {limit}")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise BodyTooLarge(f"the body is over {limit} bytes; at most {limit}")
    return bytes(body)


def client_address(request: Request) -> str:
    return request.client.host if request.client is not None else "-"


def sdp_content_type_problem(request: Request) -> str | None:
    """Why the request's Content-Type is not application/sdp, or None when it is."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/sdp":
        return f"Content-Type '{content_type or 'missing'}' is not accepted; send application/sdp"
    return None


def parse_ice_servers(raw: str) -> list[RTCIceServer]:
    """NCHAT_ICE_SERVERS: comma-separated URLs (`stun:host:3478,turn:host`) or a JSON list of
    `{"urls": ..., "username": ..., "credential": ...}` objects (the browser's RTCIceServer shape)."""
    raw = raw.strip()
    if not raw:
        return []
    if raw.startswith("["):
        return [RTCIceServer(urls=s["urls"], username=s.get("username"), credential=s.get("credential"))
                for s in json.loads(raw)]
    return [RTCIceServer(urls=url.strip()) for url in raw.split(",") if url.strip()]


def ice_link_headers(servers: list[RTCIceServer]) -> list[str]:
    links = []
    for server in servers:
        urls = [server.urls] if isinstance(server.urls, str) else server.urls
        for url in urls:
            link = f'<{url}>; rel="ice-server"'
            if server.username:
                link += f'; username="{server.username}"; credential="{server.credential}"; credential-type="password"'
            links.append(link)
    return links


def with_ice_links(headers: dict[str, str], servers: list[RTCIceServer]) -> dict[str, str]:
    """`headers` with a Link header naming `servers` (when there are any)."""
    links = ice_link_headers(servers)
    if links:
        headers["Link"] = ", ".join(links)
    return headers


def parse_offer(text: str) -> aiortc_sdp.SessionDescription:
    """The parsed SDP offer, or ValueError naming why it is not one."""
    if not text.lstrip().startswith("v=0"):
        raise ValueError("an SDP offer starts with 'v=0'")
    try:
        return aiortc_sdp.SessionDescription.parse(text)
    except Exception as exc:
        raise ValueError(f"the SDP offer cannot be parsed: {exc or type(exc).__name__}") from exc
