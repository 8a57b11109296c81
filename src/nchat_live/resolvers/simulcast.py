"""Simulcast destinations: where the broadcaster's stream is also pushed (RTMP/RTMPS: YouTube, Twitch...).

Managers of a stream add, change, enable/disable and remove its destinations. The key is write-only
(migration 0017): it goes in with the destination and is never read back; `key_hint` shows its last
characters. The media worker (media/extras/simulcast.py) reads the enabled targets with their keys
through `simulcast_targets` and reports each one's status here (`set_status`), which emits
`simulcast.status` events (errors included) for the console.

A destination must be a public address: a host that is (or resolves to) a loopback, private,
link-local, multicast, reserved or unspecified address is refused (`destination-not-allowed`) when it
is saved (literal addresses and names that resolve then) and again by the worker on every address it
resolves at connect time (DNS can change), unless NCHAT_SIMULCAST_ALLOW_PRIVATE (`configure`).
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from ..config import Settings
from ..db import Session
from ..errors import NotFound, ValidationFailed
from ._common import Row, clean_text, event_base, load_stream, parse_uuid, require_manager, row, utcnow

STATUSES = ("idle", "connecting", "live", "error", "stopped")
COLUMNS = ("id, stream_id, name, url, key_hint, rendition, enabled, status, last_error, attempts, status_at, "
           "created_by, created_at, updated_at")
_RENDITION = re.compile(r"^[0-9]{3,4}p$")
MAX_ERROR = 500
RESOLVE_TIMEOUT = 3.0
_allow_private = False


class DestinationNotAllowed(ValidationFailed):
    code = "destination-not-allowed"


def configure(settings: Settings) -> None:
    """The process's policy from its settings: whether destinations may be internal addresses."""
    global _allow_private
    _allow_private = settings.simulcast_allow_private


def public_address(address: str) -> bool:
    """Whether an IP address is one a destination may be (globally routable unicast)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not (ip.is_loopback or ip.is_private or ip.is_link_local or ip.is_multicast or ip.is_reserved
                or ip.is_unspecified) and ip.is_global


async def resolve_destination(host: str, port: int, *, allow_private: bool | None = None) -> list[str]:
    """The host's addresses (resolved now); DestinationNotAllowed when any is not public (unless allowed).
    OSError when the name does not resolve."""
    async with asyncio.timeout(RESOLVE_TIMEOUT):
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not (_allow_private if allow_private is None else allow_private):
        refused = [a for a in addresses if not public_address(a)]
        if refused:
            raise DestinationNotAllowed(
                f"destination-not-allowed: {host} is not a public address ({refused[0]}); "
                "internal destinations need NCHAT_SIMULCAST_ALLOW_PRIVATE")
    return addresses


async def _check_destination(url: str) -> str:
    """Refuse, at save time, a URL whose host is or resolves to an internal address (a name that does
    not resolve now is saved: the worker checks again when it connects)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        await resolve_destination(host, parts.port or 1935)
    except DestinationNotAllowed:
        raise
    except (OSError, TimeoutError, UnicodeError):
        pass
    return url


def check_url(url: str) -> str:
    """An rtmp:// or rtmps:// URL with a host and an application path (the key is kept apart)."""
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("rtmp", "rtmps") or not parts.hostname or len(parts.path) < 2:
        raise ValidationFailed("url must be rtmp://host[:port]/app or rtmps://host[:port]/app")
    if parts.query or parts.fragment or any(c.isspace() for c in url) or len(url) > 1000:
        raise ValidationFailed("url must not carry a query, a fragment or spaces (put the key in streamKey)")
    return url


def _check_key(key: str) -> str:
    key = key.strip()
    if not 1 <= len(key) <= 500 or any(c.isspace() for c in key):
        raise ValidationFailed("streamKey must be 1-500 characters without spaces")
    return key


def _check_rendition(rendition: str) -> str:
    if not _RENDITION.match(rendition):
        raise ValidationFailed("rendition must name a rung such as 720p")
    return rendition


async def list_destinations(session: Session, stream_id: str) -> list[Row]:
    stream = await load_stream(session, stream_id)
    await require_manager(session, stream["id"], "see simulcast destinations")
    records = await session.fetch(
        f"SELECT {COLUMNS} FROM nchat_stream_simulcast_destinations WHERE stream_id = $1 ORDER BY created_at",
        stream["id"])
    return [row(r) for r in records]


async def add_destination(
    session: Session, stream_id: str, *, name: str, url: str, stream_key: str, rendition: str = "720p",
    enabled: bool = True,
) -> Row:
    stream = await load_stream(session, stream_id)
    await require_manager(session, stream["id"], "add simulcast destinations")
    record = await session.fetchrow(
        "INSERT INTO nchat_stream_simulcast_destinations (stream_id, name, url, stream_key, rendition, enabled) "
        f"VALUES ($1, $2, $3, $4, $5, $6) RETURNING {COLUMNS}",
        stream["id"], clean_text(name, field="name", max_length=100), await _check_destination(check_url(url)),
        _check_key(stream_key),
        _check_rendition(rendition), enabled,
    )
    return row(record)


async def update_destination(session: Session, destination_id: str, **changes: Any) -> Row:
    """Change name, url, stream_key (replaced, never shown), rendition or enabled; None leaves a field."""
    checks: dict[str, Callable[[Any], Any]] = {
        "name": lambda v: clean_text(v, field="name", max_length=100), "url": check_url, "stream_key": _check_key,
        "rendition": _check_rendition, "enabled": bool}
    values = {k: checks[k](v) for k, v in changes.items() if v is not None and k in checks}
    if set(changes) - set(checks):
        raise ValidationFailed(f"unknown fields: {', '.join(sorted(set(changes) - set(checks)))}")
    if "url" in values:
        await _check_destination(values["url"])
    did = parse_uuid(destination_id, field="destinationId")
    sets = ", ".join(f"{k} = ${i}" for i, k in enumerate(values, start=2)) or "name = name"
    record = await session.fetchrow(
        f"UPDATE nchat_stream_simulcast_destinations SET {sets} WHERE id = $1 RETURNING {COLUMNS}",
        did, *values.values())
    if record is None:
        raise NotFound("simulcast destination not found", code="simulcast-destination-not-found")
    return row(record)


async def remove_destination(session: Session, destination_id: str) -> bool:
    did = parse_uuid(destination_id, field="destinationId")
    removed = await session.fetchval(
        "DELETE FROM nchat_stream_simulcast_destinations WHERE id = $1 RETURNING id", did)
    if removed is None:
        raise NotFound("simulcast destination not found", code="simulcast-destination-not-found")
    return True


# -- the media worker's side (service session) -----------------------------------------------------

async def simulcast_targets(session: Session, stream_id: str) -> list[Row]:
    """Enabled destinations with their keys (nchat_admin only: the definer function refuses others)."""
    return [row(r) for r in await session.fetch("SELECT * FROM nchat.simulcast_targets($1)", stream_id)]


async def set_status(
    session: Session, destination_id: str, status: str, *, error: str | None = None, attempts: int | None = None,
    now: datetime | None = None,
) -> Row | None:
    """Record a destination's push status and emit `simulcast.status` (the worker's, as the service)."""
    if status not in STATUSES:
        raise ValidationFailed(f"status '{status}' is not one of {', '.join(STATUSES)}")
    record = await session.fetchrow(
        "UPDATE nchat_stream_simulcast_destinations SET status = $2, last_error = $3, "
        "attempts = coalesce($4, attempts), status_at = $5 WHERE id = $1 "
        "RETURNING id, stream_id, name, status, last_error, attempts",
        destination_id, status, error[:MAX_ERROR] if error else None, attempts, now or utcnow(),
    )
    if record is None:
        return None
    data = row(record)
    stream = await load_stream(session, str(data["stream_id"]))
    session.emit("simulcast.status", {**event_base(stream), "destination_id": str(data["id"]), "name": data["name"],
                                      "status": status, "error": data["last_error"], "attempts": data["attempts"]})
    return data
