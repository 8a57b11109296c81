"""Authentication: Hasura JWT claims, roles, the admin secret, and every way a token can be bad."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from nchat_live.auth import _CACHED_TOKENS, VERIFIED_TTL_S, Authenticator, Claims, mint_token
from nchat_live.errors import AccessDenied, ConfigError, InvalidJWT
from tests.support import ADMIN_SECRET, JWT_SECRET

KEY = json.loads(JWT_SECRET)["key"]
NS = "https://hasura.io/jwt/claims"


def make(claims: dict[str, object] | str, *, exp: float | None = None, key: str = KEY, alg: str = "HS256") -> str:
    payload: dict[str, object] = {NS: claims, "iat": int(time.time())}
    if exp is not None:
        payload["exp"] = int(exp)
    return jwt.encode(payload, key, algorithm=alg)


GOOD = {"x-hasura-user-id": "u1", "x-hasura-default-role": "user", "x-hasura-allowed-roles": ["user", "moderator"]}


@pytest.fixture
def auth() -> Authenticator:
    return Authenticator(JWT_SECRET, ADMIN_SECRET, "anonymous")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_token_gives_default_role_and_user(auth: Authenticator) -> None:
    claims = auth.authenticate(bearer(make(GOOD)))
    assert (claims.role, claims.user_id) == ("user", "u1")
    assert json.loads(claims.as_setting()) == {"x-hasura-role": "user", "x-hasura-user-id": "u1"}


def test_x_hasura_role_picks_an_allowed_role(auth: Authenticator) -> None:
    assert auth.authenticate({**bearer(make(GOOD)), "X-Hasura-Role": "moderator"}).role == "moderator"


def test_role_not_in_allowed_roles_is_access_denied(auth: Authenticator) -> None:
    with pytest.raises(AccessDenied, match="not in allowed roles: 'admin'"):
        auth.authenticate({**bearer(make(GOOD)), "x-hasura-role": "admin"})


def test_claim_names_are_case_insensitive_and_may_be_a_json_string(auth: Authenticator) -> None:
    upper = {k.upper(): v for k, v in GOOD.items()}
    assert auth.authenticate(bearer(make(json.dumps(upper)))).user_id == "u1"


@pytest.mark.parametrize(
    ("token", "message"),
    [
        ("not-a-jwt", "Could not verify JWT"),
        (make(GOOD, key="another-key-that-is-also-long-enough-for-hs256"), "Signature verification failed"),
        (make(GOOD, exp=time.time() - 10), "JWTExpired"),
        (jwt.encode({NS: GOOD}, None, algorithm="none"), "algorithm 'none' is not allowed"),
        (make({"x-hasura-default-role": "user"}), "x-hasura-allowed-roles"),
        (make({"x-hasura-allowed-roles": ["user"]}), "x-hasura-default-role"),
        (jwt.encode({"sub": "x"}, KEY, algorithm="HS256"), "not found"),
    ],
    ids=["malformed", "wrong-signature", "expired", "alg-none", "no-allowed-roles", "no-default-role", "no-claims"],
)
def test_bad_tokens_are_invalid_jwt(auth: Authenticator, token: str, message: str) -> None:
    with pytest.raises(InvalidJWT, match=message):
        auth.authenticate(bearer(token))


def test_authorization_without_bearer_scheme_is_invalid(auth: Authenticator) -> None:
    with pytest.raises(InvalidJWT, match="Bearer"):
        auth.authenticate({"Authorization": "Basic abc"})


def test_no_token_is_the_unauthorized_role_or_refused(auth: Authenticator) -> None:
    assert auth.authenticate({}).role == "anonymous"
    strict = Authenticator(JWT_SECRET, ADMIN_SECRET, None)
    with pytest.raises(AccessDenied):
        strict.authenticate({})


def test_admin_secret(auth: Authenticator) -> None:
    assert auth.authenticate({"x-hasura-admin-secret": ADMIN_SECRET}).role == "admin"
    as_user = auth.authenticate({"x-hasura-admin-secret": ADMIN_SECRET, "x-hasura-role": "user",
                                 "x-hasura-user-id": "u9"})
    assert (as_user.role, as_user.user_id) == ("user", "u9")
    with pytest.raises(AccessDenied, match="invalid x-hasura-admin-secret"):
        auth.authenticate({"x-hasura-admin-secret": "wrong"})


def test_jwt_role_applies_when_both_admin_secret_and_jwt_are_sent(auth: Authenticator) -> None:
    claims = auth.authenticate({**bearer(make(GOOD)), "x-hasura-admin-secret": ADMIN_SECRET})
    assert claims.role == "user"


def test_rs256_with_a_jwks_file(tmp_path: Path) -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key()))
    jwk.update(kid="k1", alg="RS256", use="sig")
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": [jwk]}))
    auth = Authenticator(json.dumps({"type": "RS256", "jwk_url": f"file://{tmp_path / 'jwks.json'}"}), None, None)
    token = jwt.encode({NS: GOOD}, private, algorithm="RS256", headers={"kid": "k1"})
    assert auth.authenticate(bearer(token)).user_id == "u1"
    forged = jwt.encode({NS: GOOD}, KEY, algorithm="HS256", headers={"kid": "k1"})
    with pytest.raises(InvalidJWT, match="algorithm 'HS256' is not allowed"):
        auth.authenticate(bearer(forged))


def test_expiry_is_kept_for_websockets(auth: Authenticator) -> None:
    exp = time.time() + 60
    assert auth.authenticate(bearer(make(GOOD, exp=exp))).expires_at == int(exp)


@pytest.mark.parametrize("secret", ["not json", '{"key": "x"}', '{"type": "XX256", "key": "x"}'])
def test_bad_jwt_configuration_is_a_config_error(secret: str) -> None:
    with pytest.raises(ConfigError):
        Authenticator(secret, None, "anonymous")


def test_minted_tokens_round_trip(auth: Authenticator) -> None:
    token = mint_token(JWT_SECRET, "u7", "moderator")
    claims = auth.authenticate(bearer(token))
    assert claims == Claims(role="moderator", user_id="u7", allowed_roles=("user", "moderator"),
                            session_variables={"x-hasura-user-id": "u7"}, expires_at=claims.expires_at)


# -- the cache of verified tokens ------------------------------------------------------------------


def test_a_cached_token_still_expires_at_its_exp(auth: Authenticator) -> None:
    token = make(GOOD, exp=time.time() + 2)
    assert auth.authenticate(bearer(token)).user_id == "u1"
    assert auth.authenticate(bearer(token)).user_id == "u1"  # served from the cache
    time.sleep(max(0.0, int(time.time()) + 2 - time.time()) + 1.1)  # past the whole-second exp
    with pytest.raises(InvalidJWT, match="JWTExpired"):
        auth.authenticate(bearer(token))


def test_a_cached_token_is_verified_again_after_the_ttl(auth: Authenticator, monkeypatch: pytest.MonkeyPatch) -> None:
    """Within VERIFIED_TTL_S a known token is not re-verified (a rotated key still counts), after it it is."""
    token = make(GOOD, exp=time.time() + 3600)
    assert auth.authenticate(bearer(token)).role == "user"
    auth.config = dataclasses.replace(auth.config, key="another-key-after-a-rotation-0123456789abcdef")
    assert auth.authenticate(bearer(token)).role == "user"
    later = time.time() + VERIFIED_TTL_S + 1
    monkeypatch.setattr(time, "time", lambda: later)  # the module auth.py reads the clock from
    with pytest.raises(InvalidJWT, match="Signature verification failed"):
        auth.authenticate(bearer(token))


def test_an_invalid_token_is_never_cached_and_roles_are_checked_per_request(auth: Authenticator) -> None:
    token = make(GOOD, exp=time.time() + 3600)
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    for _ in range(2):
        with pytest.raises(InvalidJWT):
            auth.authenticate(bearer(forged))
    assert auth.authenticate(bearer(token)).role == "user"
    assert auth.authenticate({**bearer(token), "x-hasura-role": "moderator"}).role == "moderator"
    with pytest.raises(AccessDenied, match="not in allowed roles"):
        auth.authenticate({**bearer(token), "x-hasura-role": "admin"})
    assert auth.authenticate(bearer(token)).role == "user"


def test_the_cache_is_bounded(auth: Authenticator) -> None:
    tokens = [make({**GOOD, "x-hasura-user-id": f"u{i}"}, exp=time.time() + 3600) for i in range(_CACHED_TOKENS + 5)]
    for token in tokens:
        auth.authenticate(bearer(token))
    assert len(auth._verified) == _CACHED_TOKENS
    assert auth.authenticate(bearer(tokens[0])).user_id == "u0"  # evicted, verified again
