"""Postgres errors, mapped the way Hasura maps them: the one translation of database failures.

`Session` and `Database.session` call `translate`; everything above the data layer sees domain
errors (`nchat_live.errors`) only.
"""

from __future__ import annotations

import json
from typing import Any

import asyncpg

from ..errors import ConstraintViolation, DataException, NchatError, PermissionDenied, Unavailable


def find_postgres_error(exc: BaseException) -> asyncpg.PostgresError | None:
    """The asyncpg error in `exc`'s chain of causes, if any."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, asyncpg.PostgresError):
            return current
        current = current.__cause__
    return None


def sqlstate_of(exc: BaseException | None) -> str:
    """The SQLSTATE of the Postgres error in `exc`'s chain of causes ("" when there is none)."""
    pg = find_postgres_error(exc) if exc is not None else None
    return (pg.sqlstate or "") if pg is not None else ""


def _connection_lost(exc: BaseException) -> bool:
    """A lost or unobtainable connection anywhere in the chain (e.g. a rollback on a connection a
    restarted server closed, or a pool of dead connections timing out waiting for a free one)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (OSError, ConnectionError,
                                asyncpg.exceptions.ConnectionDoesNotExistError,
                                # A pooled connection the restart broke mid-protocol ("another
                                # operation is in progress").
                                asyncpg.exceptions.InternalClientError)):
            return True
        # Other interface errors are ours (e.g. a wrong number of query arguments): only the ones
        # about the connection mean the database went away.
        if isinstance(current, asyncpg.InterfaceError) and any(
            word in str(current) for word in ("connection", "closed", "another operation")
        ):
            return True
        current = current.__cause__
    return False


# Shutting down, starting up, connection failures, too many connections: the database is away, not wrong.
UNAVAILABLE_STATES = frozenset({"57P01", "57P02", "57P03", "08000", "08003", "08006", "53300"})


def database_unavailable(exc: BaseException) -> bool:
    """True when `exc` means the database is away (restarting, unreachable, full), not that the
    statement was wrong: a statement that failed so may be sent again once it is back."""
    if isinstance(exc, NchatError) and exc.code == "database-unavailable":  # translated already
        return True
    pg = find_postgres_error(exc)
    if pg is None:
        return _connection_lost(exc)
    return (pg.sqlstate or "") in UNAVAILABLE_STATES


# A rule refusing a write in SQL (migration 0009): RAISE ... USING HINT = 'nchat:<code>', DETAIL the
# error's extensions as JSON, and SQLSTATE 'NC' + the HTTP status (e.g. NC429) when it is not 400.
REFUSAL_HINT = "nchat:"


def _refusal(state: str, code: str, message: str, detail: str | None) -> NchatError:
    extensions: dict[str, Any] = {}
    if detail and detail.startswith("{"):
        try:
            extensions = json.loads(detail)
        except ValueError:
            extensions = {}
    error = NchatError(message, code=code, extensions=extensions)
    if state.startswith("NC") and state[2:].isdigit():
        error.http_status = int(state[2:])
    return error


def translate(exc: BaseException) -> NchatError | None:
    """A domain error for a database failure, or None when it is not one we can explain."""
    pg = find_postgres_error(exc)
    if pg is None:
        if _connection_lost(exc):
            return Unavailable("database unavailable, retry shortly", code="database-unavailable")
        return None
    state = pg.sqlstate or ""
    detail = getattr(pg, "detail", None)
    message = pg.args[0] if pg.args else str(pg)
    hint = getattr(pg, "hint", None) or ""
    if hint.startswith(REFUSAL_HINT):
        return _refusal(state, hint[len(REFUSAL_HINT):], message, detail)
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
    if state == "57014":  # query_canceled: statement_timeout, or a request past its deadline
        reason = "statement timeout" if "timeout" in message else "query canceled"
        timeout = NchatError(f"{reason}: the query ran longer than the time allowed for this request",
                             code="timeout")
        timeout.http_status = 504
        return timeout
    if state in UNAVAILABLE_STATES:
        return Unavailable("database unavailable, retry shortly", code="database-unavailable")
    if state == "40001" or state == "40P01":
        return Unavailable("transaction conflict, retry", code="transaction-conflict")
    return None
