"""Guest compositor cost: one 720p program frame from 2 and 4 sources, against the pipeline's own encode of
the same program (StreamPipeline, 720p ladder: 720p, 480p, 360p) in the same run.

Each source sends a new 1280x720 frame on every tick (the worst case: nothing is reused from the scale
cache). Prints milliseconds (wall and CPU) per program frame and the ratios compose / encode; the frame
budget at 30 fps is 33.3 ms. Also side by side with the guest in 3840x2160 against the same with the guest in
720p (what an oversized guest costs: its frames are scaled straight to the tile, once per new frame).

    .venv/bin/python bench/compose_cost.py [--frames 150]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from nchat_live.media.compose import HOST, ProgramCompositor
from nchat_live.media.storage.local import LocalStorage
from nchat_live.media.transcode.pipeline import StreamPipeline

WIDTH, HEIGHT, FPS = 1280, 720, 30


class _Discard:
    def push_video(self, frame: av.VideoFrame) -> None:
        pass

    def push_audio(self, frame: av.AudioFrame) -> None:
        pass


def moving_frames(seed: int, count: int, width: int = WIDTH, height: int = HEIGHT) -> list[av.VideoFrame]:
    """`count` frames (720p unless said) of a moving gradient and bar (content an encoder has to work on)."""
    ramp = np.add.outer(np.arange(height), np.arange(width)).astype(np.uint16)
    frames = []
    for i in range(count):
        data = np.empty(width * height * 3 // 2, dtype=np.uint8)
        luma = ((ramp + i * 7 + seed * 40) % 220 + 16).astype(np.uint8)
        bar = (i * 24 + seed * 100) % (width - 80)
        luma[height // 3:height // 3 + 60, bar:bar + 80] = 235
        data[:width * height] = luma.reshape(-1)
        data[width * height:] = (64 + seed * 40 + i) % 200 + 16
        frames.append(av.VideoFrame.from_ndarray(data.reshape(height * 3 // 2, width), format="yuv420p"))
    return frames


def compose_cost(sources: int, frames: int,
                 pool: list[list[av.VideoFrame]]) -> tuple[float, float, list[av.VideoFrame]]:
    """(wall ms, CPU ms) per program frame, and the frames made."""
    program = ProgramCompositor(_Discard(), WIDTH, HEIGHT, FPS)
    keys = [HOST, *(f"guest{i}" for i in range(1, sources))]
    for key in keys:
        program.add_source(key)
    program.set_program("side_by_side" if sources == 2 else "grid")
    made = []
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for tick in range(frames):
        for index, key in enumerate(keys):
            program.push_video(key, pool[index][tick % len(pool[index])])
        made.append(program.render(time.monotonic()))
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return wall / frames * 1000, cpu / frames * 1000, made


def encode_cost(frames: list[av.VideoFrame], workdir: Path) -> tuple[float, float, list[str]]:
    """(wall ms, CPU ms) per frame of the pipeline encoding the program at 720p."""
    pipeline = StreamPipeline("bench", LocalStorage(workdir), max_resolution="720p",
                              max_backlog_seconds=float("inf"), trim_after_seconds=float("inf"))
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for tick, frame in enumerate(frames):
        while pipeline.backlog > 4:
            time.sleep(0.001)
        frame.pts, frame.time_base = tick, Fraction(1, FPS)
        pipeline.push_video(frame)
    pipeline.close(timeout=None)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return wall / len(frames) * 1000, cpu / len(frames) * 1000, pipeline.stats.renditions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=150)
    args = parser.parse_args()
    pool = [moving_frames(seed, 30) for seed in range(4)]
    two_wall, two_cpu, program = compose_cost(2, args.frames, pool)
    four_wall, four_cpu, _ = compose_cost(4, args.frames, pool)
    # One guest in 4K (a camera sending more than the program can show) against the same guest in 720p: 6
    # distinct 3840x2160 frames (~75 MB), each tick still a new frame to scale.
    uhd_wall, uhd_cpu, _ = compose_cost(2, args.frames, [pool[0], moving_frames(1, 6, 3840, 2160)])
    with tempfile.TemporaryDirectory(prefix="nchat-compose-") as workdir:
        enc_wall, enc_cpu, renditions = encode_cost(program, Path(workdir))
    print(json.dumps({
        "frames": args.frames,
        "program": f"{WIDTH}x{HEIGHT}@{FPS}",
        "compose_2_sources_ms": {"wall": round(two_wall, 2), "cpu": round(two_cpu, 2)},
        "compose_4_sources_ms": {"wall": round(four_wall, 2), "cpu": round(four_cpu, 2)},
        "compose_720p_host_4k_guest_ms": {"wall": round(uhd_wall, 2), "cpu": round(uhd_cpu, 2)},
        "ratio_cpu_4k_guest_to_720p_guest": round(uhd_cpu / two_cpu, 3),
        "encode_ms": {"wall": round(enc_wall, 2), "cpu": round(enc_cpu, 2), "renditions": renditions},
        "ratio_cpu_compose2_to_encode": round(two_cpu / enc_cpu, 3),
        "ratio_cpu_compose4_to_encode": round(four_cpu / enc_cpu, 3),
        "frame_budget_ms": round(1000 / FPS, 1),
    }, indent=2))


if __name__ == "__main__":
    main()
