"""H.264/AAC from FLV tags to decoded PyAV frames. Blocking: call it from a worker thread."""

from __future__ import annotations

import logging
from fractions import Fraction
from typing import Any

import av
import av.error

from .flv import (
    AAC_RAW,
    AAC_SEQUENCE_HEADER,
    END_OF_SEQUENCE,
    NALU,
    SEQUENCE_HEADER,
    UnsupportedMedia,
    check_avc_config,
    parse_audio,
    parse_video,
)

log = logging.getLogger(__name__)

MILLISECONDS = Fraction(1, 1000)
# A burst of undecodable packets this long is a stream we cannot read, not a glitch.
_MAX_CONSECUTIVE_ERRORS = 25
# Media before its sequence header is dropped, but not forever.
_MAX_HEADERLESS = 150


class FlvDecoder:
    """One publish's decoders. Frames come out with pts in milliseconds (time_base 1/1000)."""

    def __init__(self) -> None:
        self._video: av.VideoCodecContext | None = None
        self._audio: av.AudioCodecContext | None = None
        self._avcc: bytes | None = None
        self._asc: bytes | None = None
        self._errors = 0
        self._headerless = 0
        self.video_packets = 0
        self.audio_packets = 0

    def video(self, timestamp: int, payload: bytes) -> list[av.VideoFrame]:
        tag = parse_video(payload)
        if tag is None:
            return []
        if tag.packet_type == SEQUENCE_HEADER:
            if tag.data == self._avcc:
                return []
            check_avc_config(tag.data)
            flushed = self._flush_video()
            self._video = self._open("h264", tag.data)  # type: ignore[assignment]
            self._avcc = tag.data
            return flushed
        if tag.packet_type == END_OF_SEQUENCE:
            return self._flush_video()
        if tag.packet_type != NALU:
            raise UnsupportedMedia(f"unknown AVC packet type {tag.packet_type}")
        if self._video is None:
            self._headerless_media("H.264")
            return []
        self.video_packets += 1
        packet = av.Packet(tag.data)
        packet.dts = timestamp
        packet.pts = timestamp + tag.composition_time
        packet.time_base = MILLISECONDS
        return self._decode(self._video, packet)  # type: ignore[return-value]

    def audio(self, timestamp: int, payload: bytes) -> list[av.AudioFrame]:
        tag = parse_audio(payload)
        if tag is None:
            return []
        if tag.packet_type == AAC_SEQUENCE_HEADER:
            if tag.data == self._asc:
                return []
            if len(tag.data) < 2:
                raise UnsupportedMedia("the AAC sequence header is shorter than an AudioSpecificConfig")
            self._audio = self._open("aac", tag.data)  # type: ignore[assignment]
            self._asc = tag.data
            return []
        if tag.packet_type != AAC_RAW:
            raise UnsupportedMedia(f"unknown AAC packet type {tag.packet_type}")
        if self._audio is None:
            self._headerless_media("AAC")
            return []
        self.audio_packets += 1
        packet = av.Packet(tag.data)
        packet.pts = packet.dts = timestamp
        packet.time_base = MILLISECONDS
        return self._decode(self._audio, packet)  # type: ignore[return-value]

    def close(self) -> list[av.VideoFrame]:
        """Flush the video decoder (frames held for reordering)."""
        return self._flush_video()

    def _headerless_media(self, codec: str) -> None:
        self._headerless += 1
        if self._headerless > _MAX_HEADERLESS:
            raise UnsupportedMedia(f"{codec} data without a sequence header")

    @staticmethod
    def _open(name: str, extradata: bytes) -> av.CodecContext:
        context = av.CodecContext.create(name, "r")
        context.extradata = extradata
        try:
            context.open()
        except av.error.FFmpegError as exc:
            raise UnsupportedMedia(f"the {name} decoder refused the sequence header: {exc}") from exc
        return context

    def _decode(self, context: Any, packet: Any) -> list[av.frame.Frame]:
        try:
            frames = list(context.decode(packet))
        except av.error.FFmpegError as exc:
            self._errors += 1
            log.debug("decode error %d in a row: %s", self._errors, exc)
            if self._errors >= _MAX_CONSECUTIVE_ERRORS:
                raise UnsupportedMedia(f"{context.name} data cannot be decoded ({exc})") from exc
            return []
        if frames:
            self._errors = 0
        for frame in frames:
            frame.time_base = MILLISECONDS
        return frames

    def _flush_video(self) -> list[av.VideoFrame]:
        if self._video is None:
            return []
        frames = self._decode(self._video, None)
        self._video = None
        self._avcc = None
        return frames  # type: ignore[return-value]
