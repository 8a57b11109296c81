"""Media storage: the local disk and an S3-compatible bucket behave the same way.

The S3 case talks over real HTTP to moto's S3 server (in-process; a real object store cannot run on
this machine), through boto3 exactly as it would talk to AWS, MinIO or R2.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from nchat_live.media.storage.base import MediaStorage
from nchat_live.media.storage.local import LocalStorage
from nchat_live.media.storage.s3 import S3Storage


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def _s3(endpoint: str) -> S3Storage:
    kwargs = {"aws_access_key_id": "test", "aws_secret_access_key": "test", "region_name": "us-east-1"}
    boto3.client("s3", endpoint_url=endpoint, **kwargs).create_bucket(Bucket="hls")
    return S3Storage("hls", prefix="live", endpoint_url=endpoint, **kwargs)


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> MediaStorage:
    if request.param == "local":
        return LocalStorage(tmp_path)
    return _s3(request.getfixturevalue("s3_endpoint"))


def test_write_read_delete(storage: MediaStorage) -> None:
    storage.write("s1/720p/seg1.m4s", b"segment")
    storage.write("s1/720p/index.m3u8", b"#EXTM3U\n")
    assert storage.read("s1/720p/seg1.m4s") == b"segment"
    storage.write("s1/720p/index.m3u8", b"#EXTM3U\n#EXT-X-VERSION:9\n")
    assert storage.read("s1/720p/index.m3u8") == b"#EXTM3U\n#EXT-X-VERSION:9\n"
    storage.delete("s1/720p/seg1.m4s")
    assert storage.read("s1/720p/seg1.m4s") is None


def test_delete_prefix_removes_one_stream_only(storage: MediaStorage) -> None:
    for stream in ("a", "b"):
        for n in range(3):
            storage.write(f"{stream}/360p/seg{n}.m4s", b"x")
    storage.delete_prefix("a")
    assert storage.read("a/360p/seg0.m4s") is None
    assert storage.read("b/360p/seg2.m4s") == b"x"


def test_keys_cannot_escape(storage: MediaStorage) -> None:
    with pytest.raises(ValueError, match="leaves"):
        storage.write("../outside.m3u8", b"x")


def test_s3_objects_carry_content_type_and_cache_headers_for_a_cdn(s3_endpoint: str) -> None:
    storage = _s3(s3_endpoint)
    storage.write("s9/master.m3u8", b"#EXTM3U\n")
    storage.write("s9/720p/part1.m4s", b"part")
    playlist = storage.client.head_object(Bucket="hls", Key="live/s9/master.m3u8")
    part = storage.client.head_object(Bucket="hls", Key="live/s9/720p/part1.m4s")
    assert playlist["ContentType"] == "application/vnd.apple.mpegurl"
    assert "no-cache" in playlist["CacheControl"]
    assert part["ContentType"] == "video/iso.segment"
    assert "immutable" in part["CacheControl"]
    assert storage.url("s9/720p/part1.m4s") == f"{s3_endpoint}/hls/live/s9/720p/part1.m4s"
