"""Cold storage (NCHAT_ARCHIVE_URL): where old recordings and exported quality metrics go.

`file:///path` (another folder, e.g. a cheaper disk or a network mount) or
`s3://bucket/prefix?endpoint=...&region=...` (another bucket or prefix, which a lifecycle rule can
move to a colder storage class). Keys: `recordings/<stream_id>/<path>` (a stream's recording folder,
clips included) and `metrics/<partition>.csv.gz`. The recordings route falls back to it for a file
that is no longer on the local disk (`read_archived_recording`), so archived recordings still play.
"""

from __future__ import annotations

import functools
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from ...config import Settings
from ...errors import ConfigError
from .base import MediaStorage
from .local import LocalStorage
from .s3 import S3Storage


def storage_from_url(raw: str) -> MediaStorage:
    parts = urlsplit(raw.strip())
    if parts.scheme == "file" and parts.path:
        return LocalStorage(Path(parts.path))
    if parts.scheme == "s3" and parts.netloc:
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        extra = {"region_name": query["region"]} if "region" in query else {}
        return S3Storage(parts.netloc, prefix=parts.path, endpoint_url=query.get("endpoint"), **extra)
    raise ConfigError(f"NCHAT_ARCHIVE_URL '{raw}' is not file:///folder or s3://bucket/prefix")


@functools.cache
def _open(url: str) -> MediaStorage:
    return storage_from_url(url)


def archive_storage(settings: Settings) -> MediaStorage | None:
    """The configured archive (one per URL and process), or None when archiving is off."""
    return _open(settings.archive_url) if settings.archive_url else None


def recording_key(stream_id: str, path: str) -> str:
    return f"recordings/{stream_id}/{path}"


def metrics_key(partition: str) -> str:
    return f"metrics/{partition}.csv.gz"


def read_archived_recording(settings: Settings, stream_id: str, path: str) -> bytes | None:
    """A recording file from the archive (None when archiving is off or it is not there)."""
    archive = archive_storage(settings)
    return archive.read(recording_key(stream_id, path)) if archive is not None else None
