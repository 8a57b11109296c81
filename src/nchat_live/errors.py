"""The one exception hierarchy. Each boundary (GraphQL, HTTP, WHIP, RTMP) translates it."""

from __future__ import annotations

from typing import Any


class NchatError(Exception):
    """A failure the caller can act on: carries a stable machine code and a readable message."""

    code = "unexpected"
    http_status = 400

    def __init__(self, message: str, *, code: str | None = None, extensions: dict[str, Any] | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.extensions = extensions or {}


class ValidationFailed(NchatError):
    code = "validation-failed"


class PermissionDenied(NchatError):
    code = "permission-error"
    http_status = 403


class AccessDenied(NchatError):
    code = "access-denied"
    http_status = 403


class InvalidJWT(NchatError):
    code = "invalid-jwt"
    http_status = 401


class NotFound(NchatError):
    code = "not-found"
    http_status = 404


class ConstraintViolation(NchatError):
    code = "constraint-violation"
    http_status = 409


class DataException(NchatError):
    code = "data-exception"


class Conflict(NchatError):
    code = "conflict"
    http_status = 409


class RateLimited(NchatError):
    code = "rate-limited"
    http_status = 429


class Unavailable(NchatError):
    code = "unavailable"
    http_status = 503


class ConfigError(Exception):
    """Bad configuration found at start-up: printed as one line, the process exits non-zero."""
