"""HLS output on S3-compatible object storage, so a CDN can serve it instead of this process."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import ClientError

# Playlists change every part; media objects never change once written (new names per segment).
_PLAYLIST_CACHE = "no-cache, no-store, must-revalidate"
_MEDIA_CACHE = "public, max-age=31536000, immutable"

CONTENT_TYPES = {
    ".m3u8": "application/vnd.apple.mpegurl",
    ".mp4": "video/mp4",
    ".m4s": "video/iso.segment",
    ".ts": "video/mp2t",
    ".jpg": "image/jpeg",
    ".aac": "audio/aac",
}


class S3Storage:
    """`MediaStorage` on a bucket. boto3 clients are thread-safe, which the pipeline threads need.

    Objects carry their Content-Type and Cache-Control, so a CDN or the bucket's website endpoint
    can serve them as-is; `public_url` is what the API redirects playlist and segment requests to.
    """

    def __init__(
        self,
        bucket: str,
        *,
        prefix: str = "",
        endpoint_url: str | None = None,
        public_url: str | None = None,
        client: Any = None,
        **client_kwargs: Any,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.client = client or boto3.client("s3", endpoint_url=endpoint_url, **client_kwargs)
        base = public_url or (f"{endpoint_url.rstrip('/')}/{bucket}" if endpoint_url else None)
        self.public_url = base.rstrip("/") if base else None
        self._lock = threading.Lock()

    def _key(self, key: str) -> str:
        if key.startswith("/") or ".." in key.split("/"):
            raise ValueError(f"storage key '{key}' leaves the media prefix")
        return self.prefix + key

    def write(self, key: str, data: bytes) -> None:
        suffix = Path(key).suffix
        self.client.put_object(
            Bucket=self.bucket,
            Key=self._key(key),
            Body=data,
            ContentType=CONTENT_TYPES.get(suffix, "application/octet-stream"),
            CacheControl=_PLAYLIST_CACHE if suffix == ".m3u8" else _MEDIA_CACHE,
        )

    def read(self, key: str) -> bytes | None:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise
        body: bytes = response["Body"].read()
        return body

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def delete_prefix(self, prefix: str) -> None:
        full = self._key(prefix.rstrip("/") + "/")
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=full):
            keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
            # DeleteObjects takes at most 1000 keys, which is also the page size.
            if keys:
                self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": keys, "Quiet": True})

    def local_path(self, key: str) -> Path | None:
        return None

    def url(self, key: str) -> str | None:
        """Where a client fetches `key` directly (CDN/bucket), or None when nothing public is configured."""
        return f"{self.public_url}/{self._key(key)}" if self.public_url else None
