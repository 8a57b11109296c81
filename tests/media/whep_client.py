"""A WHEP viewer for tests and benches: aiortc receiving the relayed video, as a browser offers it."""

from __future__ import annotations

import httpx
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription


class WhepViewer:
    """Plays `/whep/{stream_id}`; `start` returns the HTTP response of the POST, `video` the received track."""

    def __init__(self, http: httpx.AsyncClient, stream_id: str, headers: dict[str, str] | None = None,
                 query: str = "") -> None:
        self.http, self.stream_id, self.headers, self.query = http, stream_id, headers or {}, query
        self.pc = RTCPeerConnection()
        # A browser's offer: audio and video, both recvonly.
        self.pc.addTransceiver("video", direction="recvonly")
        self.pc.addTransceiver("audio", direction="recvonly")
        self.video: MediaStreamTrack | None = None
        self.location: str | None = None

        @self.pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if track.kind == "video":
                self.video = track

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
