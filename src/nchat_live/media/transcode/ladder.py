"""The adaptive bitrate ladder and how it is capped for one stream."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Rendition:
    """One rung: output size, frame rate and bitrates (kbit/s)."""

    name: str
    width: int
    height: int
    fps: int
    video_kbps: int
    audio_kbps: int = 128

    @property
    def gop(self) -> int:
        """GOP = 2 x fps: one keyframe per 2 s segment."""
        return 2 * self.fps

    @property
    def average_bandwidth(self) -> int:
        return (self.video_kbps + self.audio_kbps) * 1000

    @property
    def peak_bandwidth(self) -> int:
        # The encoder's VBV cap is 1.2 x the target; container overhead is a few percent on top.
        return int((self.video_kbps * 1.2 + self.audio_kbps) * 1000 * 1.05)


# The guide's table.
LADDER: tuple[Rendition, ...] = (
    Rendition("1080p", 1920, 1080, 30, 3000),
    Rendition("720p", 1280, 720, 30, 1500),
    Rendition("480p", 854, 480, 24, 800),
    Rendition("360p", 640, 360, 24, 400),
)
HEIGHTS = {r.name: r.height for r in LADDER}


def _even(value: float) -> int:
    return max(2, round(value / 2) * 2)


def select_ladder(source_width: int, source_height: int, max_resolution: str = "1080p") -> list[Rendition]:
    """The rungs no taller than the source and `max_resolution`, widths following the source's aspect.

    A source smaller than the lowest rung still gets one rendition at its own size.
    """
    if max_resolution not in HEIGHTS:
        raise ValueError(f"max_resolution '{max_resolution}' is not one of {', '.join(HEIGHTS)}")
    cap = min(HEIGHTS[max_resolution], source_height)
    aspect = source_width / source_height if source_height else 16 / 9
    rungs = [
        Rendition(r.name, _even(r.height * aspect), r.height, r.fps, r.video_kbps, r.audio_kbps)
        for r in LADDER
        if r.height <= cap
    ]
    if not rungs:
        low = LADDER[-1]
        height = _even(source_height)
        rungs = [Rendition(f"{height}p", _even(height * aspect), height, low.fps, low.video_kbps, low.audio_kbps)]
    return rungs


def sender_kbps(max_resolution: str) -> int:
    """The video bit rate a publisher should send for a preset: twice the top rung's, so the transcoded
    top rung starts from a source with room to spare."""
    top = next((r for r in LADDER if r.name == max_resolution), LADDER[1])
    return 2 * top.video_kbps


def with_bandwidth(sdp: str, video_kbps: int, audio_kbps: int = 128) -> str:
    """An SDP answer telling a WebRTC sender how much it may send, and to start there.

    aiortc's receiver feeds back REMB only (no transport-wide congestion control), whose estimate
    grows about 8 % a second from Chromium's 300 kbit/s start: a 720p preset would take ~20 s to get
    its bit rate, and Chromium sends 360p meanwhile. So each video section gets `b=AS` / `b=TIAS`
    (the ceiling, RFC 4566 / RFC 3890) and its codecs `x-google-start-bitrate` / `x-google-max-bitrate`
    (Chromium starts its estimate there; REMB then follows the incoming rate, so it holds on a good link
    and still backs off on a bad one).
    """
    lines = sdp.splitlines()
    out: list[str] = []
    video = False
    rtx: set[str] = set()
    with_fmtp: set[str] = set()
    payloads: list[str] = []
    start = video_kbps * 2 // 3

    def finish_section() -> None:
        # Codecs of the section that had no fmtp line get one.
        for pt in payloads:
            if pt not in rtx and pt not in with_fmtp:
                out.append(f"a=fmtp:{pt} x-google-start-bitrate={start};x-google-max-bitrate={video_kbps}")

    for line in lines:
        if line.startswith("m="):
            if video:
                finish_section()
            video = line.startswith("m=video")
            rtx, with_fmtp = set(), set()
            payloads = line.split()[3:] if video else []
            out.append(line)
            continue
        if video and line.startswith("b="):
            continue  # ours replace any
        if video and line.startswith("a=rtpmap:") and "/" in line:
            pt, codec = line[len("a=rtpmap:"):].split(" ", 1)
            if codec.lower().startswith(("rtx/", "red/", "ulpfec/")):
                rtx.add(pt)
        if video and line.startswith("a=fmtp:"):
            pt = line[len("a=fmtp:"):].split(" ", 1)[0]
            with_fmtp.add(pt)
            if pt not in rtx and "apt=" not in line:
                line += f";x-google-start-bitrate={start};x-google-max-bitrate={video_kbps}"
        out.append(line)
        if video and line.startswith("c="):
            out.append(f"b=AS:{video_kbps + audio_kbps}")
            out.append(f"b=TIAS:{video_kbps * 1000}")
    if video:
        finish_section()
    return "\r\n".join(out) + "\r\n"
