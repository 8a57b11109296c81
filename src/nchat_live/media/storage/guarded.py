"""Storage wrappers of the media worker: one that reports failed writes, one that drops them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .base import MediaStorage


class GuardedStorage:
    """Live storage that reports write failures (disk full, unwritable path) with the stream they hit."""

    def __init__(self, inner: MediaStorage, on_failure: Callable[[str, OSError], None]) -> None:
        self.inner = inner
        self.on_failure = on_failure

    def write(self, key: str, data: bytes) -> None:
        try:
            self.inner.write(key, data)
        except OSError as exc:
            self.on_failure(key.split("/", 1)[0], exc)
            raise

    def read(self, key: str) -> bytes | None:
        return self.inner.read(key)

    def delete(self, key: str) -> None:
        self.inner.delete(key)

    def delete_prefix(self, prefix: str) -> None:
        self.inner.delete_prefix(prefix)

    def local_path(self, key: str) -> Path | None:
        return self.inner.local_path(key)

    def url(self, key: str) -> str | None:
        inner = getattr(self.inner, "url", None)
        return inner(key) if callable(inner) else None


class DiscardStorage:
    """Storage that drops writes: a pipeline closing after its stream moved to another worker."""

    def write(self, key: str, data: bytes) -> None:
        pass

    def read(self, key: str) -> bytes | None:
        return None

    def delete(self, key: str) -> None:
        pass

    def delete_prefix(self, prefix: str) -> None:
        pass

    def local_path(self, key: str) -> Path | None:
        return None
