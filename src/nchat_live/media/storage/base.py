"""Where HLS files live: a small interface so object storage can replace the local disk."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol


class MediaStorage(Protocol):
    """Keys are relative paths such as `<stream_id>/720p/seg3.m4s`.

    `write` is called from pipeline worker threads, so implementations must be thread-safe and
    must make a new object visible atomically (a reader never sees half a playlist).
    """

    def write(self, key: str, data: bytes) -> None: ...

    def read(self, key: str) -> bytes | None: ...

    def delete(self, key: str) -> None: ...

    def delete_prefix(self, prefix: str) -> None: ...

    def local_path(self, key: str) -> Path | None:
        """The file on this machine holding `key`, when there is one (lets servers use sendfile)."""
        ...
