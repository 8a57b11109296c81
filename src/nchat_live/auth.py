"""Identity: Hasura-style JWT claims, the admin secret, and the request role they select."""

from __future__ import annotations

import hmac
import json
import secrets
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, ClassVar, Self, TypeVar

import jwt

from .errors import AccessDenied, ConfigError, InvalidJWT

ROLES = ("anonymous", "user", "moderator", "admin")
DEFAULT_NAMESPACE = "https://hasura.io/jwt/claims"
_T = TypeVar("_T", bound="_ScopedTokens")


@dataclass(frozen=True)
class Claims:
    """Who is calling, as Postgres will see it through `hasura.user`."""

    role: str
    user_id: str | None = None
    allowed_roles: tuple[str, ...] = ()
    session_variables: Mapping[str, str] = field(default_factory=dict)
    expires_at: float | None = None

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise AccessDenied(f"role '{self.role}' is not one of {', '.join(ROLES)}")

    @classmethod
    def anonymous(cls) -> Claims:
        return cls(role="anonymous")

    @classmethod
    def admin(cls, user_id: str | None = None) -> Claims:
        return cls(role="admin", user_id=user_id, allowed_roles=("admin",))

    @classmethod
    def service(cls) -> Claims:
        """The server's own work (media workers, schedulers): admin rights, no user."""
        return cls(role="admin", allowed_roles=("admin",), session_variables={"x-nchat-service": "true"})

    @classmethod
    def user(cls, user_id: str, role: str = "user") -> Claims:
        return cls(role=role, user_id=user_id, allowed_roles=(role,))

    def as_setting(self) -> str:
        """The JSON put in the transaction-local `hasura.user` setting."""
        return self._setting

    @cached_property
    def _setting(self) -> str:
        # Once per Claims: a verified token's Claims are cached and reused by its every request.
        values: dict[str, str] = {k.lower(): v for k, v in self.session_variables.items()}
        values["x-hasura-role"] = self.role
        if self.user_id is not None:
            values["x-hasura-user-id"] = self.user_id
        return json.dumps(values)

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def visibility_key(self) -> tuple[str, str | None]:
        """Two callers with the same key see the same rows (used to share live-query runs)."""
        return (self.role, self.user_id)


@dataclass(frozen=True)
class JWTConfig:
    type: str
    key: str | None
    jwk_url: str | None
    namespace: str
    audience: str | None
    issuer: str | None

    @classmethod
    def parse(cls, raw: str) -> JWTConfig:
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"NCHAT_JWT_SECRET is not JSON ({exc.msg}): expected {{\"type\": \"HS256\", \"key\": \"...\"}}"
            ) from exc
        if not isinstance(data, dict) or ("type" not in data and "jwk_url" not in data):
            raise ConfigError("NCHAT_JWT_SECRET needs \"type\" and \"key\", or \"jwk_url\"")
        alg = str(data.get("type", "RS256"))
        if alg not in ("HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "EdDSA"):
            raise ConfigError(f"NCHAT_JWT_SECRET type '{alg}' is not supported")
        if "key" not in data and "jwk_url" not in data:
            raise ConfigError("NCHAT_JWT_SECRET needs \"key\" or \"jwk_url\"")
        return cls(
            type=alg,
            key=data.get("key"),
            jwk_url=data.get("jwk_url"),
            namespace=data.get("claims_namespace", DEFAULT_NAMESPACE),
            audience=data.get("audience"),
            issuer=data.get("issuer"),
        )


class Authenticator:
    """Turns request headers (HTTP or a websocket's connection_init payload) into Claims."""

    def __init__(self, jwt_secret: str, admin_secret: str | None, unauthorized_role: str | None) -> None:
        self.config = JWTConfig.parse(jwt_secret)
        self.admin_secret = admin_secret
        self.unauthorized_role = unauthorized_role
        self._jwks: jwt.PyJWKClient | None = None
        self._verified: OrderedDict[str, _Verified] = OrderedDict()
        if self.config.jwk_url:
            url = self.config.jwk_url
            if url.startswith("file://"):
                self._jwks_file = url.removeprefix("file://")
            else:
                self._jwks = jwt.PyJWKClient(url, cache_keys=True)

    def authenticate(self, headers: Mapping[str, Any]) -> Claims:
        lowered = {str(k).lower(): v for k, v in headers.items() if isinstance(v, str)}
        authorization = lowered.get("authorization")
        wanted_role = lowered.get("x-hasura-role")
        if authorization:
            # With both an admin secret and a JWT, Hasura applies the JWT's role.
            return self._from_jwt(authorization, wanted_role)
        secret = lowered.get("x-hasura-admin-secret")
        if secret is not None:
            if self.admin_secret is None or not hmac.compare_digest(secret, self.admin_secret):
                raise AccessDenied("invalid x-hasura-admin-secret/x-hasura-access-key")
            role = wanted_role or "admin"
            return Claims(
                role=role, user_id=lowered.get("x-hasura-user-id"), allowed_roles=ROLES,
                session_variables={k: v for k, v in lowered.items() if k.startswith("x-hasura-")
                                   and k not in ("x-hasura-admin-secret", "x-hasura-role")},
            )
        if self.unauthorized_role is None:
            raise AccessDenied("Missing 'Authorization' or 'Cookie' header in JWT authentication mode")
        if wanted_role and wanted_role != self.unauthorized_role:
            raise AccessDenied(f"x-hasura-role '{wanted_role}' needs a token")
        return Claims(role=self.unauthorized_role)

    def _signing_key(self, token: str) -> Any:
        if self.config.key is not None:
            return self.config.key
        if self._jwks is not None:
            try:
                return self._jwks.get_signing_key_from_jwt(token).key
            except jwt.PyJWTError as exc:
                raise InvalidJWT(f"Could not verify JWT: {exc}") from exc
        with open(self._jwks_file, encoding="utf-8") as fh:
            keys = jwt.PyJWKSet.from_json(fh.read())
        kid = jwt.get_unverified_header(token).get("kid")
        for key in keys.keys:
            if kid is None or key.key_id == kid:
                return key.key
        raise InvalidJWT(f"Could not verify JWT: no key with kid '{kid}' in the JWKS")

    def _check_algorithm(self, token: str) -> None:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise InvalidJWT(f"Could not verify JWT: {exc}") from exc
        if header.get("alg") != self.config.type:
            raise InvalidJWT(f"Could not verify JWT: algorithm '{header.get('alg')}' is not allowed")

    def _from_jwt(self, authorization: str, wanted_role: str | None) -> Claims:
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise InvalidJWT("Malformed Authorization header: expected 'Bearer <token>'")
        token = token.strip()
        now = time.time()
        cached = self._verified.get(token)
        if cached is not None and now < cached.valid_until:
            self._verified.move_to_end(token)
            return cached.claims(wanted_role)
        verified = self._verify(token, now)
        if len(token) <= _CACHED_TOKEN_CHARS:
            self._verified[token] = verified
            self._verified.move_to_end(token)
            if len(self._verified) > _CACHED_TOKENS:
                self._verified.popitem(last=False)
        return verified.claims(wanted_role)

    def _verify(self, token: str, now: float) -> _Verified:
        """The token's signature, algorithm, audience, issuer, times and claims checked: what it grants."""
        if self.config.key is None:
            # A key set: the algorithm is checked before a key is looked up (or fetched) by the token's kid.
            self._check_algorithm(token)
        try:
            # With one key, decode's own check of the algorithm against the allowed one is the check (PyJWT's
            # parsing of a token costs ~60 us, and the header was parsed twice).
            payload = jwt.decode(
                token,
                self._signing_key(token),
                algorithms=[self.config.type],
                audience=self.config.audience,
                issuer=self.config.issuer,
                options={"verify_aud": self.config.audience is not None, "require": []},
            )
        except jwt.ExpiredSignatureError as exc:
            raise InvalidJWT("Could not verify JWT: JWTExpired") from exc
        except jwt.InvalidAlgorithmError:
            self._check_algorithm(token)  # words the refusal with the token's algorithm
            raise InvalidJWT("Could not verify JWT: the algorithm is not allowed") from None
        except jwt.PyJWTError as exc:
            raise InvalidJWT(f"Could not verify JWT: {exc}") from exc
        raw = payload.get(self.config.namespace)
        if isinstance(raw, str):
            try:
                raw = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise InvalidJWT("claims key: 'https://hasura.io/jwt/claims' is not valid JSON") from exc
        if not isinstance(raw, dict):
            raise InvalidJWT(f"claims key: '{self.config.namespace}' not found")
        claims = {str(k).lower(): v for k, v in raw.items()}
        allowed = claims.get("x-hasura-allowed-roles")
        default = claims.get("x-hasura-default-role")
        if not isinstance(allowed, list) or not all(isinstance(r, str) for r in allowed):
            raise InvalidJWT("JWT claim does not contain x-hasura-allowed-roles")
        if not isinstance(default, str):
            raise InvalidJWT("JWT claim does not contain x-hasura-default-role")
        user_id = claims.get("x-hasura-user-id")
        extra = {k: str(v) for k, v in claims.items()
                 if k.startswith("x-hasura-") and k not in ("x-hasura-allowed-roles", "x-hasura-default-role")}
        exp = payload.get("exp")
        expires_at = float(exp) if isinstance(exp, (int, float)) else None
        # Held at most VERIFIED_TTL_S (a key rotated out of a JWKS stops counting within that) and never
        # past the token's own expiry.
        valid_until = now + VERIFIED_TTL_S if expires_at is None else min(expires_at, now + VERIFIED_TTL_S)
        return _Verified(valid_until, default, tuple(allowed), str(user_id) if user_id is not None else None,
                         extra, expires_at)


# Verified tokens are remembered (per Authenticator, by the token's exact text) for at most this long:
# a request with a known token skips the signature check and the claims parsing (~0.2 ms).
VERIFIED_TTL_S = 60.0
_CACHED_TOKENS = 4096
_CACHED_TOKEN_CHARS = 8192  # a longer token is verified every time, so the cache's memory stays bounded


@dataclass(frozen=True)
class _Verified:
    """What a verified token grants; only a token that passed every check is ever one of these."""

    valid_until: float
    default_role: str
    allowed_roles: tuple[str, ...]
    user_id: str | None
    session_variables: Mapping[str, str]
    expires_at: float | None

    def claims(self, wanted_role: str | None) -> Claims:
        role = wanted_role or self.default_role
        if role not in self.allowed_roles:
            raise AccessDenied(f"Your requested role is not in allowed roles: '{role}'")
        return Claims(role=role, user_id=self.user_id, allowed_roles=self.allowed_roles,
                      session_variables=dict(self.session_variables), expires_at=self.expires_at)


def mint_token(
    jwt_secret: str, user_id: str, role: str = "user", *, ttl_seconds: int = 7 * 24 * 3600,
    allowed_roles: tuple[str, ...] | None = None,
) -> str:
    """A development token for `nchat-live token` and the tests (HS* secrets only)."""
    config = JWTConfig.parse(jwt_secret)
    if config.key is None or not config.type.startswith("HS"):
        raise ConfigError("minting tokens needs an HS256/384/512 NCHAT_JWT_SECRET with a key")
    if role not in ROLES:
        raise ConfigError(f"role '{role}' is not one of {', '.join(ROLES)}")
    roles = list(allowed_roles or (("user", role) if role != "user" else ("user",)))
    now = int(time.time())
    payload = {
        "sub": user_id,
        "iat": now,
        "exp": now + ttl_seconds,
        config.namespace: {
            "x-hasura-user-id": user_id,
            "x-hasura-default-role": role,
            "x-hasura-allowed-roles": roles,
        },
    }
    return jwt.encode(payload, config.key, algorithm=config.type)


MEDIA_TOKEN_TYPE = "nchat-media+jwt"
GUEST_TOKEN_TYPE = "nchat-guest"


class _ScopedTokens:
    """Short-lived HS256 tokens scoped to one stream, signed with a key derived from the server's secret.

    Each kind derives its own key under its own label and names itself in the `typ` header, so a token
    of one kind (or a login token) never verifies as another.
    """

    TYPE: ClassVar[str]
    LABEL: ClassVar[bytes]
    WHAT: ClassVar[str]

    def __init__(self, key: bytes, ttl_seconds: float) -> None:
        self._key = key
        self.ttl_seconds = ttl_seconds

    @classmethod
    def from_secrets(cls, jwt_secret: str, media_secret: str | None, ttl_seconds: float) -> Self:
        if media_secret:
            base = media_secret.encode()
        else:
            config = JWTConfig.parse(jwt_secret)
            # An RS*/JWKS deployment has no shared key: a per-process one (set NCHAT_MEDIA_TOKEN_SECRET to share).
            base = config.key.encode() if config.key is not None else _PROCESS_KEY
        return cls(hmac.new(base, cls.LABEL, "sha256").digest(), ttl_seconds)

    @classmethod
    def is_token(cls, token: str) -> bool:
        """Whether the token says it is of this kind (unverified: a routing hint, never a check)."""
        try:
            return jwt.get_unverified_header(token).get("typ") == cls.TYPE
        except jwt.PyJWTError:
            return False

    def _mint(self, payload: dict[str, Any]) -> tuple[str, float]:
        now = time.time()
        expires = now + self.ttl_seconds
        claims = {**payload, "iat": int(now), "exp": int(expires)}
        return jwt.encode(claims, self._key, algorithm="HS256", headers={"typ": self.TYPE}), float(int(expires))

    def _decode(self, token: str, require: list[str]) -> dict[str, Any]:
        try:
            decoded = jwt.decode_complete(token, self._key, algorithms=["HS256"],
                                          options={"require": ["exp", *require]})
        except jwt.ExpiredSignatureError as exc:
            raise InvalidJWT(f"Could not verify {self.WHAT}: expired") from exc
        except jwt.PyJWTError as exc:
            raise InvalidJWT(f"Could not verify {self.WHAT}") from exc
        if decoded["header"].get("typ") != self.TYPE:
            raise InvalidJWT(f"Could not verify {self.WHAT}: not a {self.WHAT}")
        payload: dict[str, Any] = decoded["payload"]
        return payload


class MediaTokens(_ScopedTokens):
    """Short-lived, stream-scoped tokens for private media (`?token=` or `Authorization: Bearer`).

    Never the login key itself, so a media token is never accepted as a login token; the scope is one
    stream id and the caller's role and user, which the media routes check again under RLS when the
    token is used.
    """

    TYPE = MEDIA_TOKEN_TYPE
    LABEL = b"nchat-live media token v1"
    WHAT = "media token"

    @staticmethod
    def is_media_token(token: str) -> bool:
        return MediaTokens.is_token(token)

    def mint(self, stream_id: str, claims: Claims) -> tuple[str, float]:
        """A token for reading `stream_id`'s media as `claims`, and when it expires (epoch seconds)."""
        payload: dict[str, Any] = {"scope": stream_id, "role": claims.role}
        if claims.user_id is not None:
            payload["sub"] = claims.user_id
        return self._mint(payload)

    def verify(self, token: str, stream_id: str) -> Claims | None:
        """The claims a valid token for `stream_id` carries; None for a valid token of another stream."""
        payload = self._decode(token, ["scope"])
        if payload.get("scope") != stream_id:
            return None
        role, user_id = payload.get("role"), payload.get("sub")
        if role not in ROLES:
            raise InvalidJWT("Could not verify media token: bad claims")
        return Claims(role=str(role), user_id=str(user_id) if user_id is not None else None,
                      allowed_roles=(str(role),))


@dataclass(frozen=True)
class GuestGrant:
    """What a valid guest token says: this user, as this guest row, may publish to the stream."""

    stream_id: str
    user_id: str
    guest_id: str


class GuestTokens(_ScopedTokens):
    """A guest speaker's publish credential (WHIP `Authorization: Bearer`), scoped to one stream.

    Minted by `guestPublishToken` for an accepted guest; the media side checks it with
    resolvers.guests.admit_guest, which also re-reads the guest row (a revoked guest's unexpired token
    is refused there).
    """

    TYPE = GUEST_TOKEN_TYPE
    LABEL = b"nchat-live guest token v1"
    WHAT = "guest token"

    def mint(self, stream_id: str, user_id: str, guest_id: str) -> tuple[str, float]:
        return self._mint({"scope": stream_id, "sub": user_id, "gid": guest_id})

    def verify(self, token: str, stream_id: str) -> GuestGrant:
        """The grant of a valid token for `stream_id`; InvalidJWT for anything else (another stream too)."""
        payload = self._decode(token, ["scope", "sub", "gid"])
        if payload.get("scope") != stream_id:
            raise InvalidJWT("Could not verify guest token: it is for another stream")
        user_id, guest_id = payload.get("sub"), payload.get("gid")
        if not isinstance(user_id, str) or not isinstance(guest_id, str):
            raise InvalidJWT("Could not verify guest token: bad claims")
        return GuestGrant(stream_id=stream_id, user_id=user_id, guest_id=guest_id)


_PROCESS_KEY = secrets.token_bytes(32)
_TOKENS: dict[tuple[type[_ScopedTokens], str, str | None, float], _ScopedTokens] = {}


def _tokens(kind: type[_T], jwt_secret: str, media_secret: str | None, ttl_seconds: float) -> _T:
    key = (kind, jwt_secret, media_secret, ttl_seconds)
    found = _TOKENS.get(key)
    if found is None:
        found = _TOKENS[key] = kind.from_secrets(jwt_secret, media_secret, ttl_seconds)
    assert isinstance(found, kind)
    return found


def media_tokens(jwt_secret: str, media_secret: str | None, ttl_seconds: float) -> MediaTokens:
    """The process's MediaTokens for these settings (derived once)."""
    return _tokens(MediaTokens, jwt_secret, media_secret, ttl_seconds)


def guest_tokens(jwt_secret: str, media_secret: str | None, ttl_seconds: float) -> GuestTokens:
    """The process's GuestTokens for these settings (derived once; the same secret as media tokens)."""
    return _tokens(GuestTokens, jwt_secret, media_secret, ttl_seconds)
