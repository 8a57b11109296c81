"""WHIP ingest (RFC 9725) over aiortc: POST an SDP offer, get the answer; DELETE the session to stop.

aiortc does not trickle its own candidates, so the answer is sent once ICE gathering has finished
(host candidates on loopback or a LAN take milliseconds; STUN/TURN come from NCHAT_ICE_SERVERS).

Guest speakers publish to the same URL with their guest token (`Authorization: Bearer <token>`, JWT
header typ "nchat-guest") instead of the stream key: `admit_guest` checks it, and the guest joins the
stream's program (worker/guests.py) while the host's session is on this worker (another worker's:
307 there; none: 409 `stream-not-live`). A guest's session is ended by DELETE with the same token.

Admission: failed keys (and guest tokens) are throttled per client address (429), the offer is read up to
NCHAT_WHIP_MAX_SDP_BYTES (413 beyond, without reading the rest), a full worker answers 503 with
Retry-After, and a session that has not delivered media NCHAT_WHIP_CONNECT_TIMEOUT_SECONDS after
its 201 is closed, so it cannot hold its stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import secrets
import time
from typing import TYPE_CHECKING, Any

from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ...auth import GuestTokens, guest_tokens
from ...errors import NchatError
from ...ids import is_canonical_uuid
from ...resolvers.guests import admit_guest
from ..compose import HOST
from ..transcode.ladder import sender_kbps, with_bandwidth
from ..webrtc_http import (
    CORS_HEADERS,
    BodyTooLarge,
    client_address,
    parse_ice_servers,
    parse_offer,
    read_limited,
    sdp_content_type_problem,
    with_ice_links,
)
from ..webrtc_http import error_response as _error
from ..worker.placement import lease_holder_url, worker_for_stream

if TYPE_CHECKING:
    from ..worker.manager import MediaManager
    from ..worker.streams import IngestSession

log = logging.getLogger(__name__)

MAX_SDP_BYTES = 64 * 1024  # the default of NCHAT_WHIP_MAX_SDP_BYTES


def validate_offer(text: str) -> None:
    """Raise ValueError naming what is wrong with an SDP offer."""
    if not text.strip():
        raise ValueError("the body is empty; expected an SDP offer")
    parsed = parse_offer(text)
    kinds = [m.kind for m in parsed.media]
    if not any(kind in ("audio", "video") for kind in kinds):
        raise ValueError("the SDP offer has no audio or video media section")
    for media in parsed.media:
        if media.kind in ("audio", "video") and media.direction not in (None, "sendonly", "sendrecv"):
            raise ValueError(f"the {media.kind} section is '{media.direction}'; a WHIP publisher sends media")


class WhipPublisher:
    """One WHIP session: the peer connection and the tasks that move its frames into the stream's sink
    for `source` (HOST, the broadcaster on the stream key, or a guest id with its guest `token`)."""

    kind = "whip"

    def __init__(self, manager: MediaManager, stream_id: str, pc: RTCPeerConnection, source: str = HOST,
                 token: str | None = None) -> None:
        self.manager = manager
        self.stream_id = stream_id
        self.pc = pc
        self.source = source
        self.token = token
        self.session_id = secrets.token_urlsafe(16)
        self.live: IngestSession | None = None
        self.tracks: list[MediaStreamTrack] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False
        self._gone = False
        self._last_stats: tuple[float, int] | None = None
        self.media_seen = False
        # The endpoint's session table: a closed session leaves it, whoever closed it.
        self.sessions: dict[str, WhipPublisher] | None = None
        self._deadline: asyncio.TimerHandle | None = None

    def attach(self, live: IngestSession, connect_timeout: float | None = None) -> None:
        self.live = live
        for track in self.tracks:
            self._tasks.append(asyncio.create_task(self._consume(track)))
        if connect_timeout is not None and connect_timeout > 0:
            loop = asyncio.get_running_loop()
            self._deadline = loop.call_later(connect_timeout, self._connect_deadline, connect_timeout)

    def _connect_deadline(self, seconds: float) -> None:
        self._deadline = None
        if self.media_seen or self._gone:
            return
        log.warning("stream %s: WHIP session %s sent no media within %g s of its answer; closing it",
                    self.stream_id, self.session_id[:6], seconds)
        self._tasks.append(asyncio.ensure_future(self.gone()))

    async def _consume(self, track: MediaStreamTrack) -> None:
        assert self.live is not None
        pipeline = self.live.pipeline
        sink = self.live.sink(self.source)
        push = sink.push_video if track.kind == "video" else sink.push_audio
        host = self.source == HOST
        try:
            while True:
                frame = await track.recv()
                if self.live.pipeline is not pipeline:
                    break
                push(frame)  # type: ignore[arg-type]
                self.media_seen = True
                if host:
                    self.live.media_arrived()
        except MediaStreamError:
            pass
        finally:
            if all(t.done() or t is asyncio.current_task() for t in self._tasks):
                await self.gone()

    async def gone(self) -> None:
        """The publisher stopped sending (DELETE, ICE/DTLS failure, tracks ended)."""
        if self._gone:
            return
        self._gone = True
        if self.source == HOST:
            await self.manager.publisher_disconnected(self.stream_id, self)
        else:
            await self.manager.guest_disconnected(self.stream_id, self)
        await self.close()

    async def stats(self) -> dict[str, Any]:
        report = await self.pc.getStats()
        received = lost = 0
        bytes_received = 0
        jitter: float | None = None
        rtt: float | None = None
        for stat in report.values():
            if stat.type == "inbound-rtp":
                received += stat.packetsReceived or 0
                lost += max(stat.packetsLost or 0, 0)
                bytes_received += stat.bytesReceived or 0
                if stat.kind == "video" and stat.jitter is not None:
                    jitter = float(stat.jitter)
            elif stat.type in ("remote-inbound-rtp", "remote-outbound-rtp"):
                value = getattr(stat, "roundTripTime", None)
                if value is not None:
                    rtt = float(value) * 1000
        now = time.monotonic()
        upload = None
        if self._last_stats is not None:
            then, before = self._last_stats
            upload = round((bytes_received - before) * 8 / 1000 / max(now - then, 1e-3))
        self._last_stats = (now, bytes_received)
        total = received + lost
        return {
            "upload_bitrate_kbps": upload,
            "packet_loss_percent": round(100 * lost / total, 2) if total else 0.0,
            "jitter_ms": round(jitter * 1000 / 90, 2) if jitter is not None else None,
            "rtt_ms": round(rtt, 1) if rtt is not None else None,
        }

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._deadline is not None:
            self._deadline.cancel()
        if self.sessions is not None:
            self.sessions.pop(self.session_id, None)
        current = asyncio.current_task()
        for task in self._tasks:
            if task is not current:
                task.cancel()
        with contextlib.suppress(Exception):
            await self.pc.close()


class WhipEndpoint:
    """Starlette handlers of /whip/{stream_id} and its session resources."""

    def __init__(self) -> None:
        self.sessions: dict[str, WhipPublisher] = {}

    @staticmethod
    def _manager(request: Request) -> MediaManager | None:
        return request.app.state.runtime.media

    async def options(self, request: Request) -> Response:
        headers = CORS_HEADERS | {"Accept-Post": "application/sdp"}
        manager = self._manager(request)
        if manager is not None:
            with_ice_links(headers, parse_ice_servers(manager.settings.ice_servers))
        return Response(status_code=204, headers=headers)

    async def publish(self, request: Request) -> Response:
        manager = self._manager(request)
        if manager is None:
            return await self._redirect(request)
        stream_id = request.path_params["stream_id"]
        address = client_address(request)
        wait = manager.key_throttle.retry_after(address)
        if wait is not None:
            return _error(429, "too-many-key-failures",
                          f"too many failed stream keys from this address; retry in {wait} s",
                          {"Retry-After": str(wait)})
        auth = request.headers.get("authorization", "")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() == "bearer" and GuestTokens.is_token(token.strip()):
            return await self._publish_guest(request, manager, stream_id, token.strip(), address)
        try:
            info = await manager.stream_info(stream_id)
        except NchatError as exc:
            if exc.code == "stream-not-found":
                await manager.key_throttle.failed(address)
            return _error(exc.http_status, exc.code, exc.message)
        if scheme.lower() != "bearer" or not manager.key_matches(info, token.strip()):
            await manager.key_throttle.failed(address)
            return _error(401, "invalid-stream-key", "Authorization must be 'Bearer <stream key>' of this stream",
                          {"WWW-Authenticate": 'Bearer realm="whip"'})
        offer = await self._read_offer(request, manager)
        if isinstance(offer, Response):
            return offer
        live_now = manager.streams.get(info.stream_id)
        if live_now is not None and live_now.publisher is not None:
            return _error(409, "publisher-exists", f"stream '{stream_id}' already has a publisher")
        if not manager.has_room(info.stream_id):
            return self._full(manager)

        publisher = await self._answer(manager, info.stream_id, offer)
        if isinstance(publisher, Response):
            return publisher
        try:
            live = await manager.publisher_connected(info, publisher)
        except NchatError as exc:
            await publisher.pc.close()
            if exc.code == "stream-owned-elsewhere":
                return await self._owned_elsewhere(manager, info.stream_id, exc)
            if exc.code == "media-worker-full":
                return self._full(manager)
            return _error(exc.http_status, exc.code, exc.message)
        return self._created(manager, publisher, live, info.max_resolution)

    async def _publish_guest(self, request: Request, manager: MediaManager, stream_id: str, token: str,
                             address: str) -> Response:
        """A guest speaker's publish: admitted by its guest token, attached to the host's session here."""
        settings = manager.settings
        tokens = guest_tokens(settings.jwt_secret, settings.media_token_secret, settings.guest_token_ttl_seconds)
        try:
            admission = await admit_guest(manager.database, tokens, stream_id, token)
        except NchatError as exc:
            if exc.http_status == 401:
                await manager.key_throttle.failed(address)
                return _error(401, exc.code, exc.message, {"WWW-Authenticate": 'Bearer realm="whip"'})
            return _error(exc.http_status, exc.code, exc.message)
        offer = await self._read_offer(request, manager)
        if isinstance(offer, Response):
            return offer
        stream_id = admission.stream_id
        live_now = manager.streams.get(stream_id)
        if live_now is None or live_now.ending is not None:
            # The host publishes elsewhere (the guest goes there) or not at all yet.
            try:
                url = await lease_holder_url(manager.database, stream_id, manager.lease_ttl)
            except NchatError:
                url = None
            if url is not None and url.rstrip("/") != manager.worker_url:
                return Response(status_code=307, headers=CORS_HEADERS | {"Location": f"{url}/whip/{stream_id}"})
            return _error(409, "stream-not-live",
                          f"stream '{stream_id}' is not being published; join once the broadcaster is live")
        publisher = await self._answer(manager, stream_id, offer, admission.guest_id, token)
        if isinstance(publisher, Response):
            return publisher
        try:
            live = await manager.guest_connected(stream_id, admission.guest_id, publisher)
        except NchatError as exc:
            await publisher.pc.close()
            return _error(exc.http_status, exc.code, exc.message)
        return self._created(manager, publisher, live, live.info.max_resolution)

    @staticmethod
    async def _read_offer(request: Request, manager: MediaManager) -> str | Response:
        """The request's SDP offer, or the refusal (415, 413, 400) to answer."""
        problem = sdp_content_type_problem(request)
        if problem is not None:
            return _error(415, "unsupported-media-type", problem)
        limit = manager.settings.whip_max_sdp_bytes
        try:
            body = await read_limited(request, limit)
        except BodyTooLarge as exc:
            return _error(413, "sdp-too-large", f"the SDP offer is too large: {exc}", {"Connection": "close"})
        offer = body.decode("utf-8", errors="replace")
        try:
            validate_offer(offer)
        except ValueError as exc:
            return _error(400, "bad-sdp", str(exc))
        return offer

    async def _answer(self, manager: MediaManager, stream_id: str, offer: str, source: str = HOST,
                      token: str | None = None) -> WhipPublisher | Response:
        """A peer connection that accepted `offer` (its answer made), wrapped in a publisher; or a 400."""
        servers = parse_ice_servers(manager.settings.ice_servers)
        pc = RTCPeerConnection(RTCConfiguration(iceServers=servers or None))
        publisher = WhipPublisher(manager, stream_id, pc, source, token)

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            publisher.tracks.append(track)

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            if pc.connectionState in ("failed", "closed"):
                self.sessions.pop(publisher.session_id, None)
                await publisher.gone()

        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
            answer = await pc.createAnswer()
            await pc.setLocalDescription(answer)
        except Exception as exc:
            # An offer aiortc half-applied (e.g. a BUNDLE group naming sections without a transport)
            # can make close() fail too; the refusal must still reach the publisher.
            with contextlib.suppress(Exception):
                await pc.close()
            return _error(400, "bad-sdp", f"the SDP offer was refused: {exc or type(exc).__name__}")
        return publisher

    def _created(self, manager: MediaManager, publisher: WhipPublisher, live: IngestSession,
                 max_resolution: str) -> Response:
        """The 201 of an attached publisher: its session resource and the SDP answer."""
        publisher.sessions = self.sessions
        self.sessions[publisher.session_id] = publisher
        publisher.attach(live, manager.settings.whip_connect_timeout_seconds)
        location = f"/whip/{publisher.stream_id}/{publisher.session_id}"
        servers = parse_ice_servers(manager.settings.ice_servers)
        headers = with_ice_links(CORS_HEADERS | {"Location": location, "ETag": f'"{publisher.session_id}"'}, servers)
        # The sender may ramp to the preset's bit rate at once (see ladder.with_bandwidth).
        answer_sdp = with_bandwidth(publisher.pc.localDescription.sdp, sender_kbps(max_resolution))
        return Response(answer_sdp, status_code=201, media_type="application/sdp", headers=headers)

    @staticmethod
    def _full(manager: MediaManager) -> Response:
        """RFC 9725 §4.6: an overloaded server answers 503 with Retry-After."""
        retry = str(max(1, round(manager.settings.publisher_grace_seconds)))
        return _error(503, "media-worker-full",
                      f"this media worker ingests {manager.capacity} streams already; try again later",
                      {"Retry-After": retry})

    async def _redirect(self, request: Request) -> Response:
        """An API process (no media here): send the publisher on to a media worker with 307."""
        runtime = request.app.state.runtime
        stream_id = request.path_params["stream_id"]
        if not is_canonical_uuid(stream_id):
            return _error(404, "stream-not-found", f"stream '{stream_id}' not found")
        ttl = runtime.settings.lease_ttl_seconds
        try:
            url = await worker_for_stream(runtime.database, stream_id, ttl) if runtime.db is not None else None
        except NchatError as exc:
            return _error(503, exc.code, exc.message, {"Retry-After": "2"})
        if url is None:
            return _error(503, "no-media-worker", "no media worker is running; try again shortly",
                          {"Retry-After": str(max(1, round(ttl)))})
        # 307 keeps the method and body: the client posts the same offer to the worker.
        return Response(status_code=307, headers=CORS_HEADERS | {"Location": f"{url}/whip/{stream_id}"})

    async def _owned_elsewhere(self, manager: MediaManager, stream_id: str, exc: NchatError) -> Response:
        """Another worker holds the stream: redirect there, or (a dead holder whose lease has not
        expired yet) ask the publisher to retry once it has."""
        retry = {"Retry-After": str(max(1, round(manager.lease_ttl / 2)))}
        try:
            url = await lease_holder_url(manager.database, stream_id, manager.lease_ttl)
        except NchatError:
            url = None
        if url is not None and url.rstrip("/") != manager.worker_url:
            return Response(status_code=307, headers=CORS_HEADERS | retry | {"Location": f"{url}/whip/{stream_id}"})
        return _error(409, exc.code, exc.message, retry)

    async def session(self, request: Request) -> Response:
        stream_id = request.path_params["stream_id"]
        publisher = self.sessions.get(request.path_params["session_id"])
        if publisher is None or publisher.stream_id != stream_id:
            return _error(404, "session-not-found", "no such WHIP session (it may have ended)")
        manager = self._manager(request)
        assert manager is not None
        token = request.headers.get("authorization", "").partition(" ")[2].strip()
        if publisher.token is not None:
            # A guest's session: the token it published with (it may have expired since; the
            # session's own unguessable id is in the URL too).
            if not hmac.compare_digest(publisher.token.encode(), token.encode()):
                return _error(401, "invalid-guest-token", "Authorization must be 'Bearer <the guest token this "
                              "session was published with>'", {"WWW-Authenticate": 'Bearer realm="whip"'})
        else:
            info = await manager.stream_info(stream_id)
            if not manager.key_matches(info, token):
                return _error(401, "invalid-stream-key", "Authorization must be 'Bearer <stream key>' of this "
                              "stream", {"WWW-Authenticate": 'Bearer realm="whip"'})
        if request.method == "PATCH":
            # aiortc gathers every candidate before answering, so there is nothing to trickle.
            return _error(405, "trickle-unsupported", "trickle ICE and ICE restarts are not supported",
                          {"Allow": "DELETE, OPTIONS"})
        self.sessions.pop(publisher.session_id, None)
        await publisher.gone()
        return Response(status_code=200, headers=CORS_HEADERS)

    async def session_options(self, request: Request) -> Response:
        return Response(status_code=204, headers=CORS_HEADERS | {"Allow": "DELETE, PATCH, OPTIONS"})


def whip_routes() -> list[Route]:
    endpoint = WhipEndpoint()
    return [
        Route("/whip/{stream_id}", endpoint.publish, methods=["POST"]),
        Route("/whip/{stream_id}", endpoint.options, methods=["OPTIONS"]),
        Route("/whip/{stream_id}/{session_id}", endpoint.session, methods=["DELETE", "PATCH"]),
        Route("/whip/{stream_id}/{session_id}", endpoint.session_options, methods=["OPTIONS"]),
    ]
