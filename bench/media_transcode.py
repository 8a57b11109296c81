"""Transcoding benchmark: our ladder (StreamPipeline) against the ffmpeg CLI on the same 10 s 1080p30 clip.

Both decode the clip once and encode the same four renditions (1080p 3000k 30fps, 720p 1500k 30fps,
480p 800k 24fps, 360p 400k 24fps; x264 veryfast + zerolatency, GOP 2 s, AAC 128k) into fragmented MP4,
one after the other in the same run. Prints wall and CPU seconds of each and the ratios (ours / ffmpeg).

    .venv/bin/python bench/media_transcode.py [--seconds 10] [--workdir /tmp/nchat-bench]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import av

from nchat_live.media.hls.packager import PackagingConfig
from nchat_live.media.storage.local import LocalStorage
from nchat_live.media.transcode.ladder import select_ladder
from nchat_live.media.transcode.pipeline import StreamPipeline


def make_clip(path: Path, seconds: int) -> None:
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-y",
         "-f", "lavfi", "-i", f"testsrc2=size=1920x1080:rate=30:duration={seconds}",
         "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}",
         "-c:v", "libx264", "-preset", "ultrafast", "-crf", "18", "-pix_fmt", "yuv420p",
         "-c:a", "aac", "-ac", "2", "-b:a", "192k", str(path)],
        check=True,
    )


def run_ours(clip: Path, out: Path) -> tuple[float, float, int]:
    cpu0, wall0 = time.process_time(), time.perf_counter()
    pipeline = StreamPipeline(
        "bench", LocalStorage(out), max_resolution="1080p", config=PackagingConfig(),
        max_backlog_seconds=float("inf"), trim_after_seconds=float("inf"), keep_segments=True,
    )
    with av.open(str(clip)) as container:
        streams = [container.streams.video[0], *container.streams.audio[:1]]
        streams[0].thread_type = "AUTO"
        for frame in container.decode(*streams):
            if isinstance(frame, av.VideoFrame):
                while pipeline.backlog > 8:
                    time.sleep(0.002)
                pipeline.push_video(frame)
            else:
                pipeline.push_audio(frame)
    pipeline.close(timeout=None)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return wall, cpu, pipeline.stats.frames_encoded


def run_ffmpeg(clip: Path, out: Path) -> tuple[float, float]:
    ladder = select_ladder(1920, 1080, "1080p")
    labels = [f"v{i}" for i in range(len(ladder))]
    graph = f"[0:v]split={len(ladder)}" + "".join(f"[s{i}]" for i in range(len(ladder))) + ";" + ";".join(
        f"[s{i}]" + (f"fps={r.fps}," if r.fps != 30 else "") + f"scale={r.width}:{r.height}[{labels[i]}]"
        for i, r in enumerate(ladder)
    )
    args = ["ffmpeg", "-loglevel", "error", "-y", "-i", str(clip), "-filter_complex", graph]
    out.mkdir(parents=True, exist_ok=True)
    for i, r in enumerate(ladder):
        args += [
            "-map", f"[{labels[i]}]", "-map", "0:a",
            "-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency",
            "-b:v", f"{r.video_kbps}k", "-maxrate", f"{int(r.video_kbps * 1.2)}k", "-bufsize", f"{r.video_kbps * 2}k",
            "-g", str(r.gop), "-keyint_min", str(r.gop), "-sc_threshold", "0",
            "-force_key_frames", "expr:gte(t,n_forced*2)", "-pix_fmt", "yuv420p",
            "-c:a", "aac", "-b:a", f"{r.audio_kbps}k", "-ac", "2", "-ar", "48000",
            "-movflags", "empty_moov+default_base_moof+frag_keyframe", "-frag_duration", "499000",
            "-f", "mp4", str(out / f"{r.name}.mp4"),
        ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall0 = time.perf_counter()
    subprocess.run(args, check=True)
    wall = time.perf_counter() - wall0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    if shutil.which("ffmpeg") is None:
        raise SystemExit("the ffmpeg command is needed (apt-get install ffmpeg)")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="nchat-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    clip = workdir / f"clip-1080p30-{args.seconds}s.mp4"
    if not clip.exists():
        make_clip(clip, args.seconds)
    ours_wall, ours_cpu, frames = run_ours(clip, workdir / "ours")
    ff_wall, ff_cpu = run_ffmpeg(clip, workdir / "ffmpeg")
    result = {
        "clip_seconds": args.seconds,
        "renditions": [r.name for r in select_ladder(1920, 1080)],
        "ours": {"wall_s": round(ours_wall, 2), "cpu_s": round(ours_cpu, 2), "frames_encoded": frames,
                 "realtime_factor": round(args.seconds / ours_wall, 2)},
        "ffmpeg": {"wall_s": round(ff_wall, 2), "cpu_s": round(ff_cpu, 2),
                   "realtime_factor": round(args.seconds / ff_wall, 2)},
        "ratio_wall": round(ours_wall / ff_wall, 2),
        "ratio_cpu": round(ours_cpu / ff_cpu, 2),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
