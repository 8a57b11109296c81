"""A WHEP viewer for tests and benches: aiortc receiving the relayed video and audio, as a browser offers it."""

from __future__ import annotations

from typing import cast

import httpx
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from starlette.types import ASGIApp

from nchat_live.media.egress.whep import WhepEndpoint


def whep_endpoint(app: ASGIApp | httpx.AsyncClient) -> WhepEndpoint:
    """The app's WHEP endpoint (its sessions and relays): the bound handler of the POST route. A client
    on an in-process ASGI transport stands for its app."""
    if isinstance(app, httpx.AsyncClient):
        app = cast(httpx.ASGITransport, app._transport).app
    for route in getattr(app, "routes", []):
        endpoint = getattr(route.endpoint, "__self__", None)
        if getattr(route, "path", "") == "/whep/{stream_id}" and isinstance(endpoint, WhepEndpoint):
            return endpoint
    raise LookupError("the app has no WHEP route")


class WhepViewer:
    """Plays `/whep/{stream_id}`; `start` returns the HTTP response of the POST, `video` and `audio` the
    received tracks. `audio=False` offers video alone."""

    def __init__(self, http: httpx.AsyncClient, stream_id: str, headers: dict[str, str] | None = None,
                 query: str = "", audio: bool = True) -> None:
        self.http, self.stream_id, self.headers, self.query = http, stream_id, headers or {}, query
        self.pc = RTCPeerConnection()
        # A browser's offer: audio and video, both recvonly.
        self.pc.addTransceiver("video", direction="recvonly")
        if audio:
            self.pc.addTransceiver("audio", direction="recvonly")
        self.video: MediaStreamTrack | None = None
        self.audio: MediaStreamTrack | None = None
        self.location: str | None = None

        @self.pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if track.kind == "video":
                self.video = track
            elif track.kind == "audio":
                self.audio = track

    async def offer(self) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return self.pc.localDescription.sdp

    async def start(self) -> httpx.Response:
        sdp = await self.offer()
        response = await self.http.post(
            f"/whep/{self.stream_id}{self.query}", content=sdp,
            headers={"Content-Type": "application/sdp"} | self.headers,
        )
        if response.status_code == 201:
            self.location = response.headers["location"]
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=response.text, type="answer"))
        return response

    async def stop(self) -> httpx.Response | None:
        response = None
        if self.location:
            response = await self.http.delete(self.location, headers=self.headers)
        await self.pc.close()
        return response
