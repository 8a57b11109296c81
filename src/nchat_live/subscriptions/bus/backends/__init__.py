"""Bus backends on `broadcaster`'s public `BroadcastBackend` interface: memory, postgres, redis."""

from __future__ import annotations

from urllib.parse import urlsplit

from broadcaster import BroadcastBackend

from ....errors import ConfigError
from .memory import MemoryBackend
from .postgres import PostgresBackend
from .redis import RedisBackend

__all__ = ["MemoryBackend", "PostgresBackend", "RedisBackend", "backend_for"]


def backend_for(url: str, database_url: str | None) -> BroadcastBackend:
    """The backend a `BUS_URL` names; "postgres://" alone means the application's own database."""
    parts = urlsplit(url)
    if parts.scheme in ("postgres", "postgresql"):
        target = url if parts.hostname else database_url
        if not target:
            raise ConfigError(f"BUS_URL '{url}' names no host and there is no DATABASE_URL to fall back on")
        return PostgresBackend(target)
    if parts.scheme in ("redis", "rediss"):
        return RedisBackend(url)
    if parts.scheme == "memory":
        return MemoryBackend(url)
    raise ConfigError(f"BUS_URL '{url}' has an unsupported scheme; expected memory://, postgres:// or redis://")
