"""RTMP ingest: the protocol server, and the glue that routes a publish into the media pipeline."""

from .flv import UnsupportedMedia
from .server import PublishEnded, PublishRefused, PublishRequest, PublishSink, RtmpServer

__all__ = ["PublishEnded", "PublishRefused", "PublishRequest", "PublishSink", "RtmpServer", "UnsupportedMedia"]
