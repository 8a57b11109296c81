"""FLV audio/video tag bodies as RTMP carries them: H.264 (AVC) and AAC only."""

from __future__ import annotations

from dataclasses import dataclass

AVC_CODEC_ID = 7
AAC_SOUND_FORMAT = 10
SEQUENCE_HEADER, NALU, END_OF_SEQUENCE = 0, 1, 2
AAC_SEQUENCE_HEADER, AAC_RAW = 0, 1

_VIDEO_CODECS = {2: "Sorenson H.263", 3: "Screen video", 4: "VP6", 5: "VP6 alpha", 6: "Screen video 2", 7: "H.264"}
_SOUND_FORMATS = {
    0: "linear PCM", 1: "ADPCM", 2: "MP3", 3: "linear PCM LE", 4: "Nellymoser 16k", 5: "Nellymoser 8k",
    6: "Nellymoser", 7: "G.711 A-law", 8: "G.711 mu-law", 10: "AAC", 11: "Speex", 14: "MP3 8k",
}


class UnsupportedMedia(ValueError):
    """Media this server cannot decode; the publish is closed with this message."""


@dataclass(frozen=True, slots=True)
class VideoTag:
    keyframe: bool
    packet_type: int
    composition_time: int
    data: bytes


@dataclass(frozen=True, slots=True)
class AudioTag:
    packet_type: int
    data: bytes


def parse_video(payload: bytes) -> VideoTag | None:
    """The AVC packet in a video message; None for an empty message or a video info frame."""
    if not payload:
        return None
    first = payload[0]
    if first & 0x80:
        fourcc = payload[1:5].decode("latin-1", "replace")
        raise UnsupportedMedia(f"enhanced-RTMP video '{fourcc}' is not supported; publish H.264 video")
    frame_type, codec = first >> 4, first & 0x0F
    if codec != AVC_CODEC_ID:
        name = _VIDEO_CODECS.get(codec, "unknown")
        raise UnsupportedMedia(f"FLV video codec {codec} ({name}) is not supported; publish H.264 video")
    if frame_type == 5:
        # A video info/command frame carries no picture.
        return None
    if len(payload) < 5:
        raise UnsupportedMedia(f"AVC video message of {len(payload)} bytes is shorter than its 5-byte header")
    cts = int.from_bytes(payload[2:5], "big", signed=True)
    return VideoTag(keyframe=frame_type == 1, packet_type=payload[1], composition_time=cts, data=payload[5:])


def parse_audio(payload: bytes) -> AudioTag | None:
    if not payload:
        return None
    sound_format = payload[0] >> 4
    if sound_format != AAC_SOUND_FORMAT:
        name = _SOUND_FORMATS.get(sound_format, "unknown")
        raise UnsupportedMedia(f"FLV audio format {sound_format} ({name}) is not supported; publish AAC audio")
    if len(payload) < 2:
        raise UnsupportedMedia("AAC audio message without its packet type byte")
    return AudioTag(packet_type=payload[1], data=payload[2:])


def check_avc_config(record: bytes) -> None:
    """Raises UnsupportedMedia unless `record` is an AVCDecoderConfigurationRecord with an SPS and a PPS.

    FFmpeg's H.264 decoder opens even on a broken record and only fails later, frame after frame;
    checking the structure here gives the publisher one clear reason instead.
    """
    if len(record) < 7 or record[0] != 1:
        raise UnsupportedMedia("the AVC sequence header is not an AVCDecoderConfigurationRecord")
    pos = 5
    for count_mask, nal_type, name in ((0x1F, 7, "SPS"), (0xFF, 8, "PPS")):
        if pos >= len(record):
            raise UnsupportedMedia(f"the AVC sequence header ends before its {name} list")
        count = record[pos] & count_mask
        pos += 1
        if count == 0:
            raise UnsupportedMedia(f"the AVC sequence header has no {name}")
        for _ in range(count):
            size = int.from_bytes(record[pos:pos + 2], "big")
            nal = record[pos + 2:pos + 2 + size]
            if size == 0 or len(nal) != size or nal[0] & 0x1F != nal_type:
                raise UnsupportedMedia(f"the AVC sequence header holds a malformed {name}")
            pos += 2 + size
