"""WHEP playback (the IETF WHEP draft, WHIP's mirror): POST an SDP offer, get the answer; DELETE ends.

    POST   /whep/{stream_id}               application/sdp offer -> 201, Location, ETag, Link (ICE servers), answer
    DELETE /whep/{stream_id}/{session_id}  ends the session (200)
    PATCH  /whep/{stream_id}/{session_id}  405: aiortc gathers every candidate before answering (as WHIP)

Who may watch is HLS's rule (hls/access.py): a public stream is open, a private one needs a media token
(`?token=` or Bearer) or a login token (Bearer) that may read it; an unknown stream, a private one the
caller may not read and a stream not ingested here all answer the same 404. A WHEP session is a viewer
session (join, heartbeat, leave, as `watchStream`), left on DELETE, on disconnect and when the stream ends.

Media is relayed, not transcoded per viewer (relay.py: one shared H.264 encode of the decoded source,
one shared Opus encode of its audio, or of the program's mix with guests). An offer with a receiving
audio section that lists Opus gets the audio track; a video-only offer (or one without Opus) gets video
alone, its audio section answered inactive.

Limits: the offer is read up to NCHAT_WHIP_MAX_SDP_BYTES (413), NCHAT_WHEP_MAX_SESSIONS_PER_CLIENT sessions
per client address (429), NCHAT_WHEP_MAX_VIEWERS per process (503 + Retry-After), and a session whose peer
has not connected NCHAT_WHEP_CONNECT_TIMEOUT_SECONDS after its 201 is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from typing import TYPE_CHECKING, Any

from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ...auth import Claims
from ...errors import NchatError
from ...observability import VIEWERS
from ...resolvers.viewers import join_stream, leave_stream
from ...subscriptions.presence import keep_alive
from ..hls.access import authorize_media, caller_claims, not_found
from ..webrtc_http import (
    CORS_HEADERS,
    BodyTooLarge,
    client_address,
    error_response,
    parse_ice_servers,
    parse_offer,
    read_limited,
    sdp_content_type_problem,
    with_ice_links,
)
from ..worker.observers import StreamObserver
from ..worker.streams import IngestSession
from .relay import EncodedAudioTrack, EncodedVideoTrack, Relays

if TYPE_CHECKING:
    from ...db import Database
    from ..worker.manager import MediaManager

log = logging.getLogger(__name__)


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return error_response(status, code, message, {"Cache-Control": "no-store"} | (headers or {}))


def validate_offer(text: str) -> None:
    """Raise ValueError naming what is wrong with a WHEP offer (it must ask to receive video)."""
    parsed = parse_offer(text)
    video = [m for m in parsed.media if m.kind == "video"]
    if not video:
        raise ValueError("the SDP offer has no video section; a WHEP viewer receives video")
    for media in video:
        if media.direction not in (None, "recvonly", "sendrecv"):
            raise ValueError(f"the video section is '{media.direction}'; a WHEP viewer receives (recvonly)")
    if not any(codec.mimeType.lower() == "video/h264" for m in video for codec in m.rtp.codecs):
        raise ValueError("the SDP offer has no H.264 in its video section; the relay sends H.264")


def offers_audio(text: str) -> bool:
    """Whether a (validated) offer asks to receive Opus audio."""
    return any(m.kind == "audio" and m.direction in (None, "recvonly", "sendrecv")
               and any(codec.mimeType.lower() == "audio/opus" for codec in m.rtp.codecs)
               for m in parse_offer(text).media)


class ViewerPresence:
    """A WHEP session's viewer session: joined at start, a heartbeat, left once at the end."""

    def __init__(self, database: Database, claims: Claims, stream_id: str) -> None:
        self.database = database
        self.claims = claims
        self.stream_id = stream_id
        self.token: str | None = None
        self._beat: asyncio.Task[None] | None = None

    async def join(self, user_agent: str | None, ip: str | None) -> None:
        async with self.database.session(self.claims) as session:
            viewer = await join_stream(session, self.stream_id, user_agent=user_agent, ip=ip)
        self.token = viewer["session_id"]
        VIEWERS.inc()
        self._beat = asyncio.create_task(self._heartbeat())

    async def _heartbeat(self) -> None:
        assert self.token is not None
        await keep_alive(self.database, self.claims, self.token, self.stream_id)

    async def leave(self) -> None:
        token, self.token = self.token, None
        if token is None:
            return
        if self._beat is not None:
            self._beat.cancel()
        VIEWERS.dec()
        try:
            async with self.database.session(self.claims) as session:
                await leave_stream(session, token)
        except Exception as exc:
            log.info("WHEP viewer leave for stream %s: %s", self.stream_id, exc)


class WhepSession:
    """One WHEP viewer: its peer connection, its relay track and its viewer session."""

    def __init__(self, endpoint: WhepEndpoint, stream_id: str, client: str, pc: RTCPeerConnection,
                 track: EncodedVideoTrack, audio: EncodedAudioTrack | None, presence: ViewerPresence) -> None:
        self.endpoint = endpoint
        self.stream_id = stream_id
        self.client = client
        self.pc = pc
        self.track = track
        self.audio = audio
        self.presence = presence
        self.session_id = secrets.token_urlsafe(16)
        self.connected = False
        self._deadline: asyncio.TimerHandle | None = None
        self._closing: asyncio.Task[None] | None = None

    def start_deadline(self, seconds: float) -> None:
        if seconds > 0:
            self._deadline = asyncio.get_running_loop().call_later(seconds, self._connect_deadline, seconds)

    def _connect_deadline(self, seconds: float) -> None:
        self._deadline = None
        if not self.connected:
            log.info("stream %s: WHEP session %s did not connect within %g s; closing it",
                     self.stream_id, self.session_id[:6], seconds)
            self.close_soon()

    def close_soon(self) -> None:
        if self._closing is None:
            self._closing = asyncio.ensure_future(self.close())

    async def close(self) -> None:
        if not self.endpoint.forget(self):
            return
        if self._deadline is not None:
            self._deadline.cancel()
        self.track.stop()
        if self.audio is not None:
            self.audio.stop()
        with contextlib.suppress(Exception):
            await self.pc.close()
        await self.presence.leave()


class _StreamEnded(StreamObserver):
    """Ends the WHEP sessions of a stream whose ingest stopped on this worker."""

    def __init__(self, endpoint: WhepEndpoint) -> None:
        self.endpoint = endpoint

    def on_ended(self, session: IngestSession, reason: str) -> None:
        self.endpoint.stream_ended(session.stream_id)


class WhepEndpoint:
    """Starlette handlers of /whep/{stream_id} and its session resources."""

    def __init__(self) -> None:
        self.sessions: dict[str, WhepSession] = {}
        self.per_client: dict[str, int] = {}
        self.relays = Relays()
        self._attached_to: MediaManager | None = None

    def _manager(self, request: Request) -> MediaManager | None:
        manager: MediaManager | None = request.app.state.runtime.media
        if manager is not None and self._attached_to is not manager:
            # The first request of a worker attaches the observer that ends sessions with their stream.
            self._attached_to = manager
            manager.attach(_StreamEnded(self))
        return manager

    def forget(self, session: WhepSession) -> bool:
        """Take a session out of the tables; False when it was out already (closed once)."""
        if self.sessions.pop(session.session_id, None) is None:
            return False
        left = self.per_client.get(session.client, 1) - 1
        if left > 0:
            self.per_client[session.client] = left
        else:
            self.per_client.pop(session.client, None)
        return True

    def stream_ended(self, stream_id: str) -> None:
        for session in [s for s in self.sessions.values() if s.stream_id == stream_id]:
            session.close_soon()
        self.relays.end(stream_id)

    async def options(self, request: Request) -> Response:
        headers = CORS_HEADERS | {"Accept-Post": "application/sdp"}
        with_ice_links(headers, parse_ice_servers(request.app.state.runtime.settings.ice_servers))
        return Response(status_code=204, headers=headers)

    async def play(self, request: Request) -> Response:
        stream_id = request.path_params["stream_id"]
        runtime = request.app.state.runtime
        settings = runtime.settings
        grant = await authorize_media(request, stream_id)
        if isinstance(grant, Response):
            return grant
        manager = self._manager(request)
        live = manager.streams.get(stream_id) if manager is not None else None
        if live is None or live.publisher is None or not live.went_live:
            # Not ingested here (or not yet): players fall back to HLS.
            return not_found(stream_id)
        problem = sdp_content_type_problem(request)
        if problem is not None:
            return _error(415, "unsupported-media-type", problem)
        client = client_address(request)
        if self.per_client.get(client, 0) >= settings.whep_max_sessions_per_client:
            return _error(429, "too-many-sessions",
                          f"this address holds {settings.whep_max_sessions_per_client} WHEP sessions already; "
                          "DELETE one first", {"Retry-After": "5"})
        if len(self.sessions) >= settings.whep_max_viewers:
            return _error(503, "whep-full", f"this server plays {settings.whep_max_viewers} WHEP sessions already; "
                          "play HLS or try again later", {"Retry-After": "10"})
        try:
            body = await read_limited(request, settings.whip_max_sdp_bytes)
        except BodyTooLarge as exc:
            return _error(413, "sdp-too-large", f"the SDP offer is too large: {exc}", {"Connection": "close"})
        offer = body.decode("utf-8", errors="replace")
        try:
            validate_offer(offer)
        except ValueError as exc:
            return _error(400, "bad-sdp", str(exc))
        try:
            claims = caller_claims(request, stream_id)
        except NchatError:
            claims = Claims.anonymous()  # a public stream with a bad token: watch anonymously
        return await self._answer(request, live, offer, client, claims)

    async def _answer(self, request: Request, live: IngestSession, offer: str, client: str,
                      claims: Claims) -> Response:
        runtime = request.app.state.runtime
        settings = runtime.settings
        stream_id = live.stream_id
        servers = parse_ice_servers(settings.ice_servers)
        pc = RTCPeerConnection(RTCConfiguration(iceServers=servers or None))
        relay = self.relays.relay(stream_id, live.pipeline)
        track = relay.add_viewer()
        audio = relay.add_audio_viewer() if offers_audio(offer) else None
        # The transceivers exist before the offer is applied, so aiortc matches the offer's sections to
        # them and keeps the relay's codecs only (H.264, Opus).
        transceiver = pc.addTransceiver(track, direction="sendonly")
        transceiver.setCodecPreferences(
            [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType in ("video/H264", "video/rtx")])
        if audio is not None:
            pc.addTransceiver(audio, direction="sendonly").setCodecPreferences(
                [c for c in RTCRtpSender.getCapabilities("audio").codecs if c.mimeType == "audio/opus"])
        presence = ViewerPresence(runtime.database, claims, stream_id)

        def stop_tracks() -> None:
            track.stop()
            if audio is not None:
                audio.stop()

        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
            answer = await pc.createAnswer()
            await pc.setLocalDescription(answer)
        except Exception as exc:
            stop_tracks()
            with contextlib.suppress(Exception):
                await pc.close()
            return _error(400, "bad-sdp", f"the SDP offer was refused: {exc or type(exc).__name__}")
        try:
            await presence.join(request.headers.get("user-agent"), client if client != "-" else None)
        except NchatError as exc:
            stop_tracks()
            await pc.close()
            if exc.code in ("not-found", "stream-not-found"):
                return not_found(stream_id)
            return _error(exc.http_status, exc.code, exc.message)
        session = WhepSession(self, stream_id, client, pc, track, audio, presence)
        self.sessions[session.session_id] = session
        self.per_client[client] = self.per_client.get(client, 0) + 1

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            if pc.connectionState == "connected":
                session.connected = True
            elif pc.connectionState in ("failed", "closed"):
                await session.close()

        session.start_deadline(settings.whep_connect_timeout_seconds)
        headers = with_ice_links(CORS_HEADERS | {"Location": f"/whep/{stream_id}/{session.session_id}",
                                                 "ETag": f'"{session.session_id}"', "Cache-Control": "no-store"},
                                 servers)
        return Response(pc.localDescription.sdp, status_code=201, media_type="application/sdp", headers=headers)

    async def session(self, request: Request) -> Response:
        session = self.sessions.get(request.path_params["session_id"])
        if session is None or session.stream_id != request.path_params["stream_id"]:
            return _error(404, "session-not-found", "no such WHEP session (it may have ended)")
        if request.method == "PATCH":
            # aiortc gathers every candidate before answering, so there is nothing to trickle.
            return _error(405, "trickle-unsupported", "trickle ICE and ICE restarts are not supported",
                          {"Allow": "DELETE, OPTIONS"})
        await session.close()
        return Response(status_code=200, headers=CORS_HEADERS)

    async def session_options(self, request: Request) -> Response:
        return Response(status_code=204, headers=CORS_HEADERS | {"Allow": "DELETE, PATCH, OPTIONS"})

    def stats(self) -> dict[str, Any]:
        return {"sessions": len(self.sessions),
                "relays": {sid: {"viewers": len(r.viewers), "frames_in": r.frames_in,
                                 "frames_encoded": r.frames_encoded, "encode_seconds": round(r.encode_seconds, 3),
                                 "audio_viewers": len(r.audio_viewers), "audio_packets": r.audio_packets,
                                 "audio_encode_seconds": round(r.audio_encode_seconds, 3)}
                           for sid, r in self.relays.relays.items()}}


def whep_routes(endpoint: WhepEndpoint | None = None) -> list[Route]:
    endpoint = endpoint or WhepEndpoint()
    return [
        Route("/whep/{stream_id}", endpoint.play, methods=["POST"]),
        Route("/whep/{stream_id}", endpoint.options, methods=["OPTIONS"]),
        Route("/whep/{stream_id}/{session_id}", endpoint.session, methods=["DELETE", "PATCH"]),
        Route("/whep/{stream_id}/{session_id}", endpoint.session_options, methods=["OPTIONS"]),
    ]
