"""Choosing the live HLS storage from `NCHAT_STORAGE_URL`.

Unset: `media_dir` on the local disk. `file:///shared/folder`: another local (or network-mounted)
folder. `s3://bucket/prefix?endpoint=http://minio:9000&public=https://cdn.example/bucket&region=eu-west-1`:
S3-compatible object storage; HLS requests are then redirected to `public` (or to endpoint/bucket).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from ...config import Settings
from ...errors import ConfigError
from .base import MediaStorage
from .local import LocalStorage
from .s3 import S3Storage


def open_storage(settings: Settings) -> MediaStorage:
    raw = (settings.storage_url or "").strip()
    if not raw:
        return LocalStorage(settings.media_dir)
    parts = urlsplit(raw)
    if parts.scheme == "file":
        return LocalStorage(Path(parts.path))
    if parts.scheme == "s3":
        if not parts.netloc:
            raise ConfigError(f"NCHAT_STORAGE_URL '{raw}' names no bucket (s3://bucket/prefix)")
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        extra = {"region_name": query["region"]} if "region" in query else {}
        return S3Storage(
            parts.netloc, prefix=parts.path, endpoint_url=query.get("endpoint"), public_url=query.get("public"),
            **extra,
        )
    raise ConfigError(f"NCHAT_STORAGE_URL '{raw}' is not file:// or s3://")


def public_url(storage: MediaStorage, key: str) -> str | None:
    """Where clients fetch `key` straight from the storage (a CDN or bucket), if it says so."""
    url = getattr(storage, "url", None)
    return url(key) if callable(url) else None
