"""Postgres errors, mapped the way Hasura maps them."""

from __future__ import annotations

import asyncpg

from ..errors import ConstraintViolation, DataException, NchatError, PermissionDenied, Unavailable


def find_postgres_error(exc: BaseException) -> asyncpg.PostgresError | None:
    """The asyncpg error under SQLAlchemy's wrapping, if any."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, asyncpg.PostgresError):
            return current
        current = getattr(current, "orig", None) or current.__cause__
    return None


def translate(exc: BaseException) -> NchatError | None:
    """A domain error for a database failure, or None when it is not one we can explain."""
    pg = find_postgres_error(exc)
    if pg is None:
        if isinstance(exc, (OSError, asyncpg.InterfaceError, ConnectionError)):
            return Unavailable("database unavailable, retry shortly", code="database-unavailable")
        return None
    state = pg.sqlstate or ""
    detail = getattr(pg, "detail", None)
    message = pg.args[0] if pg.args else str(pg)
    if state == "23505":
        return ConstraintViolation(f"Uniqueness violation. {message}")
    if state == "23503":
        return ConstraintViolation(f"Foreign key violation. {message}")
    if state == "23502":
        return ConstraintViolation(f"Not-NULL violation. {message}")
    if state == "23514":
        return PermissionDenied(f"Check constraint violation. {message}")
    if state == "42501":
        # insufficient_privilege and "new row violates row-level security policy".
        return PermissionDenied(f"permission denied: {message}" if "row-level" not in message else
                                "check constraint of an insert/update permission has failed")
    if state.startswith("22") or state == "42804":
        return DataException(f"{message}" + (f" ({detail})" if detail else ""))
    if state in ("57P01", "57P02", "57P03", "08000", "08003", "08006", "53300"):
        return Unavailable("database unavailable, retry shortly", code="database-unavailable")
    if state == "40001" or state == "40P01":
        return Unavailable("transaction conflict, retry", code="transaction-conflict")
    return None
