"""Every HLS playlist nchat-live writes, rendered here: live media playlists (LL-HLS), master
playlists (live, DVR, recording, clip), the DVR window, VOD playlists of recordings and clips, and
the closing of a playlist a lost worker left open.

Callers hold the state (the packager its segments and parts, the DVR observer its window, the
recorder its segments) and pass it in; this module owns the tags, their order and the defaults.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Protocol

# Live playlists use LL-HLS (parts, preload hints, rendition reports): version 9. The rest stay at 7.
LIVE_VERSION = 9
VOD_VERSION = 7
INIT_SEGMENT = "init.mp4"
MEDIA_PLAYLIST = "index.m3u8"
DVR_PLAYLIST = "dvr.m3u8"
# A master playlist without measurements (a recording whose live master is gone) declares this.
FALLBACK_BANDWIDTH = 500_000
# The H.264 profile announced before the encoder wrote its init segment, and the AAC audio of every rendition.
FALLBACK_VIDEO_CODEC = "avc1.640028"
AUDIO_CODEC = "mp4a.40.2"

Variant = tuple[str, str]
"""(EXT-X-STREAM-INF line, rendition name) of a master playlist."""


class LivePart(Protocol):
    @property
    def duration(self) -> float: ...
    @property
    def uri(self) -> str: ...
    @property
    def independent(self) -> bool: ...


class LiveSegment(Protocol):
    @property
    def msn(self) -> int: ...
    @property
    def uri(self) -> str: ...
    @property
    def duration(self) -> float: ...
    @property
    def complete(self) -> bool: ...
    @property
    def discontinuity(self) -> bool: ...
    @property
    def init_uri(self) -> str: ...
    @property
    def program_date_time(self) -> datetime: ...
    @property
    def parts(self) -> Sequence[LivePart]: ...


class WindowEntry(Protocol):
    """A segment of the DVR window."""

    @property
    def msn(self) -> int: ...
    @property
    def duration(self) -> float: ...
    @property
    def discontinuity(self) -> bool: ...
    @property
    def init_uri(self) -> str: ...
    @property
    def program_date_time(self) -> datetime: ...


class VodSegment(Protocol):
    """A recorded segment."""

    @property
    def uri(self) -> str: ...
    @property
    def duration(self) -> float: ...
    @property
    def discontinuity(self) -> bool: ...
    @property
    def map(self) -> str: ...


def _text(lines: list[str]) -> str:
    return "\n".join(lines) + "\n"


def program_date_time(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def target_duration(durations: Iterable[float]) -> int:
    """EXT-X-TARGETDURATION: the longest segment, rounded up (a hair over a whole second does not count)."""
    return max(1, math.ceil(max(durations, default=1.0) - 1e-3))


# -- master playlists -------------------------------------------------------------------------


def stream_inf(*, bandwidth: int, average: int, width: int, height: int, fps: float, video_codec: str | None) -> str:
    codecs = f"{video_codec or FALLBACK_VIDEO_CODEC},{AUDIO_CODEC}"
    return (f"#EXT-X-STREAM-INF:BANDWIDTH={bandwidth},AVERAGE-BANDWIDTH={average},"
            f'RESOLUTION={width}x{height},FRAME-RATE={fps:.3f},CODECS="{codecs}"')


def fallback_variants(names: Iterable[str]) -> list[Variant]:
    return [(f"#EXT-X-STREAM-INF:BANDWIDTH={FALLBACK_BANDWIDTH}", name) for name in names]


def render_master(variants: Iterable[Variant], *, version: int = VOD_VERSION) -> str:
    lines = ["#EXTM3U", f"#EXT-X-VERSION:{version}", "#EXT-X-INDEPENDENT-SEGMENTS"]
    for inf, name in variants:
        lines += [inf, f"{name}/{MEDIA_PLAYLIST}"]
    return _text(lines)


def master_variants(master: str) -> list[Variant]:
    """The variants of a master playlist this module wrote."""
    pairs = []
    for line, uri in itertools.pairwise(master.splitlines()):
        if line.startswith("#EXT-X-STREAM-INF") and uri.endswith(f"/{MEDIA_PLAYLIST}"):
            pairs.append((line, uri.split("/", 1)[0]))
    return pairs


def dvr_master(live_master: bytes) -> bytes:
    """The DVR master: the live one, pointing at each rendition's DVR playlist."""
    return live_master.replace(f"/{MEDIA_PLAYLIST}".encode(), f"/{DVR_PLAYLIST}".encode())


# -- media playlists --------------------------------------------------------------------------


def render_live(
    segments: Sequence[LiveSegment], *, next_msn: int, discontinuity_sequence: int, target: int,
    part_target: float, part_hold_back: float, hold_back: float, ended: bool, preload_uri: str,
    reports: Iterable[tuple[str, int, int]] = (),
) -> str:
    """An LL-HLS media playlist; parts are listed for the newest three segments. `reports`:
    (rendition, last msn, last part) of the other renditions."""
    lines = [
        "#EXTM3U",
        f"#EXT-X-VERSION:{LIVE_VERSION}",
        f"#EXT-X-TARGETDURATION:{target}",
        f"#EXT-X-MEDIA-SEQUENCE:{segments[0].msn if segments else next_msn}",
        f"#EXT-X-DISCONTINUITY-SEQUENCE:{discontinuity_sequence}",
        f"#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK={part_hold_back:.3f},"
        f"HOLD-BACK={hold_back:.3f}",
        f"#EXT-X-PART-INF:PART-TARGET={part_target:.3f}",
        "#EXT-X-INDEPENDENT-SEGMENTS",
    ]
    current_map = None
    with_parts = {s.msn for s in segments[-3:]}
    for segment in segments:
        if segment.discontinuity:
            lines.append("#EXT-X-DISCONTINUITY")
        if segment.init_uri != current_map:
            current_map = segment.init_uri
            lines.append(f'#EXT-X-MAP:URI="{current_map}"')
        lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{program_date_time(segment.program_date_time)}")
        if segment.msn in with_parts:
            for part in segment.parts:
                independent = ",INDEPENDENT=YES" if part.independent else ""
                lines.append(f'#EXT-X-PART:DURATION={part.duration:.5f},URI="{part.uri}"{independent}')
        if segment.complete:
            lines.append(f"#EXTINF:{segment.duration:.5f},")
            lines.append(segment.uri)
    if ended:
        lines.append("#EXT-X-ENDLIST")
    else:
        lines.append(f'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="{preload_uri}"')
    for name, last_msn, last_part in reports:
        lines.append(f'#EXT-X-RENDITION-REPORT:URI="../{name}/{MEDIA_PLAYLIST}",LAST-MSN={last_msn},'
                     f"LAST-PART={last_part}")
    return _text(lines)


def render_dvr(entries: Sequence[WindowEntry], *, discontinuity_sequence: int, ended: bool) -> str:
    """The DVR playlist of one rendition: the last `dvr_window_seconds` of segments, rewindable."""
    lines = [
        "#EXTM3U",
        f"#EXT-X-VERSION:{VOD_VERSION}",
        f"#EXT-X-TARGETDURATION:{target_duration(e.duration for e in entries)}",
        f"#EXT-X-MEDIA-SEQUENCE:{entries[0].msn if entries else 0}",
        f"#EXT-X-DISCONTINUITY-SEQUENCE:{discontinuity_sequence}",
        "#EXT-X-INDEPENDENT-SEGMENTS",
    ]
    current_map = None
    for index, entry in enumerate(entries):
        if entry.discontinuity and index > 0:
            lines.append("#EXT-X-DISCONTINUITY")
        # A reconnect or a takeover brings a new encoder, and with it a new init segment.
        if entry.init_uri != current_map:
            current_map = entry.init_uri
            lines.append(f'#EXT-X-MAP:URI="{current_map}"')
        lines += [f"#EXT-X-PROGRAM-DATE-TIME:{program_date_time(entry.program_date_time)}",
                  f"#EXTINF:{entry.duration:.5f},", f"seg{entry.msn}.m4s"]
    if ended:
        lines.append("#EXT-X-ENDLIST")
    return _text(lines)


def render_vod(segments: Sequence[VodSegment], map_uri: str = INIT_SEGMENT, prefix: str = "") -> str:
    """A VOD media playlist (recordings, clips); `prefix` goes before every URI (clips point into the recording)."""
    lines = [
        "#EXTM3U",
        f"#EXT-X-VERSION:{VOD_VERSION}",
        f"#EXT-X-TARGETDURATION:{target_duration(s.duration for s in segments)}",
        "#EXT-X-PLAYLIST-TYPE:VOD",
        "#EXT-X-MEDIA-SEQUENCE:0",
        "#EXT-X-INDEPENDENT-SEGMENTS",
    ]
    if not segments:
        lines.append(f'#EXT-X-MAP:URI="{prefix}{map_uri}"')
    current_map = None
    for index, segment in enumerate(segments):
        if segment.discontinuity and index > 0:
            lines.append("#EXT-X-DISCONTINUITY")
        wanted = segment.map or map_uri
        if wanted != current_map:
            current_map = wanted
            lines.append(f'#EXT-X-MAP:URI="{prefix}{current_map}"')
        lines.append(f"#EXTINF:{segment.duration:.5f},")
        lines.append(prefix + segment.uri)
    lines.append("#EXT-X-ENDLIST")
    return _text(lines)


CHAPTER_CLASS = "com.nchat.chapter"


def _quoted(value: str) -> str:
    """A quoted-string attribute value: no double quote, CR or LF may appear in it (RFC 8216 4.2)."""
    return value.replace('"', "'").replace("\r", " ").replace("\n", " ")


def with_dateranges(vod: str, base: datetime, ranges: Iterable[tuple[str, float, float | None, str]],
                    *, class_name: str = CHAPTER_CLASS) -> str:
    """A VOD playlist with EXT-X-DATERANGE tags: `ranges` are (id, start offset s, duration s or None,
    title). The playlist gets an EXT-X-PROGRAM-DATE-TIME of `base` on its first segment (a playlist with
    date ranges must carry one), and each range's START-DATE is `base` + its offset."""
    lines = vod.rstrip("\n").split("\n")
    tags = []
    for range_id, offset, duration, title in ranges:
        start = program_date_time(base + timedelta(seconds=offset))
        tag = f'#EXT-X-DATERANGE:ID="{_quoted(range_id)}",CLASS="{class_name}",START-DATE="{start}"'
        if duration is not None and duration > 0:
            tag += f",DURATION={duration:.3f}"
        tags.append(tag + f',X-TITLE="{_quoted(title)}"')
    if not tags:
        return vod
    first = next((i for i, line in enumerate(lines) if line.startswith("#EXTINF")), len(lines) - 1)
    has_date = any(line.startswith("#EXT-X-PROGRAM-DATE-TIME") for line in lines)
    dated = [] if has_date else [f"#EXT-X-PROGRAM-DATE-TIME:{program_date_time(base)}"]
    return _text(lines[:first] + tags + dated + lines[first:])


def end_live(text: str) -> str | None:
    """A live playlist closed (ENDLIST, no preload hint); None when it is closed already."""
    if "#EXT-X-ENDLIST" in text:
        return None
    lines = [ln for ln in text.splitlines() if not ln.startswith("#EXT-X-PRELOAD-HINT")]
    lines.append("#EXT-X-ENDLIST")
    return _text(lines)
