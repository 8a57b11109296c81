"""Publishes a synthetic H.264/AAC stream over RTMP with PyAV, as OBS would.

Run as a separate process (`python -m tests.media.rtmp_publisher URL ...`): PyAV holds the GIL
while FFmpeg's RTMP client waits for the server's handshake, so a publisher in the test's own
process would stall the event loop serving it.
"""

from __future__ import annotations

import argparse
import sys
import time
from fractions import Fraction

import av


def _video_frame(width: int, height: int, index: int, pattern: bytes) -> av.VideoFrame:
    frame = av.VideoFrame(width, height, "yuv420p")
    # A moving diagonal gradient: every frame differs, so encoders produce real P-frames.
    shift = (index * 4) % width
    luma = b"".join(pattern[(shift + y) % width:(shift + y) % width + width] for y in range(height))
    frame.planes[0].update(_fit(luma, frame.planes[0]))
    for plane, value in ((frame.planes[1], 90 + index % 60), (frame.planes[2], 160)):
        plane.update(bytes([value]) * plane.buffer_size)
    return frame


def _fit(data: bytes, plane: av.video.plane.VideoPlane) -> bytes:
    # Plane lines may be padded (line_size > width).
    if plane.line_size == plane.width:
        return data
    pad = bytes(plane.line_size - plane.width)
    return b"".join(data[y * plane.width:(y + 1) * plane.width] + pad for y in range(plane.height))


def _solid_frame(width: int, height: int, colour: tuple[int, int, int]) -> av.VideoFrame:
    frame = av.VideoFrame(width, height, "yuv420p")
    for plane, value in zip(frame.planes, colour, strict=True):
        plane.update(bytes([value]) * plane.buffer_size)
    return frame


def publish(url: str, seconds: float, width: int, height: int, fps: int, video_codec: str, realtime: bool,
            colour: tuple[int, int, int] | None = None) -> None:
    out = av.open(url, "w", format="flv")
    video = out.add_stream(video_codec, rate=fps)
    video.width, video.height, video.pix_fmt = width, height, "yuv420p"
    if video_codec == "libx264":
        video.options = {"preset": "ultrafast", "tune": "zerolatency", "g": str(2 * fps), "bf": "0"}
    video.bit_rate = 600_000
    audio = out.add_stream("aac", rate=44100)
    audio.layout = "stereo"
    pattern = bytes((x * 255 // max(1, width - 1)) for x in range(width)) * 3
    frames = int(seconds * fps)
    samples_per_frame = 1024
    sample = 0
    started = time.monotonic()
    for index in range(frames):
        frame = _video_frame(width, height, index, pattern) if colour is None else _solid_frame(width, height, colour)
        frame.pts, frame.time_base = index, Fraction(1, fps)
        for packet in video.encode(frame):
            out.mux(packet)
        # Audio up to this video frame's time, interleaved as a live encoder sends it.
        while sample < (index + 1) * 44100 // fps:
            chunk = av.AudioFrame(format="fltp", layout="stereo", samples=samples_per_frame)
            for plane in chunk.planes:
                plane.update(bytes(plane.buffer_size))
            chunk.sample_rate, chunk.pts = 44100, sample
            sample += samples_per_frame
            for packet in audio.encode(chunk):
                out.mux(packet)
        if realtime:
            delay = started + (index + 1) / fps - time.monotonic()
            if delay > 0:
                time.sleep(delay)
    for stream in (video, audio):
        for packet in stream.encode():
            out.mux(packet)
    out.close()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--size", default="320x180")
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--video-codec", default="libx264")
    parser.add_argument("--realtime", action="store_true")
    parser.add_argument("--colour", help="Y,U,V: one solid colour instead of the moving gradient")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    y, u, v = (int(part) for part in args.colour.split(",")) if args.colour else (0, 0, 0)
    try:
        publish(args.url, args.seconds, width, height, args.fps, args.video_codec, args.realtime,
                (y, u, v) if args.colour else None)
    except av.error.FFmpegError as exc:
        print(f"publish failed: {exc}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
