"""Who may fetch a stream's HLS, DVR, thumbnails and recordings, and how caches may keep what they get.

A public stream's media is open to everyone (CDN-friendly: no credentials, one cached check per
stream, `public` cache headers). A private channel's stream needs a credential, and Postgres decides
under its claims with the same cached `nchat.can_read_stream` check the realtime feeds use:

- a stream-scoped media token (GraphQL `mediaToken(streamId)`, a few minutes long) in `?token=` or
  `Authorization: Bearer`; a token for another stream is refused, and its claims are checked again;
- the viewer's login token in `Authorization: Bearer` (never in the query string: URLs reach logs,
  histories and referrers, so a login token there is refused).

Private media is answered `Cache-Control: private` with `Vary: Authorization`, so no shared cache keeps
it. A private stream the caller may not read and a stream that does not exist get the same 404, and a
stream id that is not a canonical uuid gets that 404 before any lookup.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import JSONResponse

from ...auth import Claims, MediaTokens, media_tokens
from ...errors import InvalidJWT, NchatError, Unavailable
from ...ids import is_canonical_uuid

_CORS = {"Access-Control-Allow-Origin": "*"}
# Refusals depend on the credential: never stored, and keyed on it by any cache that looks.
REFUSAL_HEADERS = {"Cache-Control": "no-store", "Vary": "Authorization"}
PRIVATE_PLAYLIST = "private, no-store"
PRIVATE_FILE = "private, max-age=3600"


def is_media_id(value: str) -> bool:
    """Only the canonical (lowercase, hyphenated) form names a stream's media: braces, urn: or bare hex do not."""
    return is_canonical_uuid(value)


def not_found(stream_id: str) -> JSONResponse:
    """The one answer for an unknown stream and a private one the caller may not read."""
    return JSONResponse({"error": {"code": "not-found", "message": "no media for this stream"}},
                        status_code=404, headers=_CORS | REFUSAL_HEADERS)


def _refusal(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status,
                        headers=_CORS | REFUSAL_HEADERS)


@dataclass(frozen=True)
class MediaGrant:
    """The caller may read the stream's media; `public` says whether shared caches may keep it."""

    public: bool

    def cache(self, public: Mapping[str, str], private: str) -> dict[str, str]:
        """`public` headers for a public stream; `Cache-Control: private` + `Vary` otherwise."""
        if self.public:
            return dict(public)
        return {"Cache-Control": private, "Vary": "Authorization"}


def tokens_for(request: Request) -> MediaTokens:
    settings = request.app.state.runtime.settings
    return media_tokens(settings.jwt_secret, settings.media_token_secret, settings.media_token_ttl_seconds)


def _bearer(request: Request) -> str | None:
    authorization = request.headers.get("authorization")
    if authorization is None:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise InvalidJWT("Malformed Authorization header: expected 'Bearer <token>'")
    return token.strip()


def _claims(request: Request, stream_id: str) -> Claims | None:
    """The caller's claims for this stream's media; None when no credential applies to it."""
    query_token = request.query_params.get("token")
    bearer = _bearer(request)
    tokens = tokens_for(request)
    if query_token is not None:
        if not MediaTokens.is_media_token(query_token):
            raise InvalidJWT("?token= takes a media token (mediaToken); send a login token in Authorization")
        return tokens.verify(query_token, stream_id)
    if bearer is None:
        return None
    if MediaTokens.is_media_token(bearer):
        return tokens.verify(bearer, stream_id)
    return request.app.state.runtime.auth.authenticate({"authorization": f"Bearer {bearer}"})


def caller_claims(request: Request, stream_id: str) -> Claims:
    """The claims the caller's media credential gives for `stream_id` (anonymous without one);
    InvalidJWT/NchatError for a bad one. For who a viewer is (WHEP's viewer session); whether it may
    read the stream is `authorize_media`'s answer."""
    return _claims(request, stream_id) or Claims.anonymous()


async def authorize_media(request: Request, stream_id: str) -> MediaGrant | JSONResponse:
    """A grant when the caller may read `stream_id`'s media; otherwise the 401/404/503 to send."""
    if not is_media_id(stream_id):
        return not_found(stream_id)
    runtime = request.app.state.runtime
    access = runtime.access
    try:
        if await access.can_read(Claims.anonymous(), stream_id):
            return MediaGrant(public=True)
        claims = _claims(request, stream_id)
        if claims is not None and await access.can_read(claims, stream_id):
            return MediaGrant(public=False)
    except Unavailable as exc:
        return _refusal(503, exc.code, exc.message)
    except NchatError as exc:
        return _refusal(401, exc.code, exc.message)
    # Not readable, not there and no credential look the same, so a stream id reveals nothing.
    return not_found(stream_id)
