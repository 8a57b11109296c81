"""One decoded frame is scaled on several threads at once: by each rendition of the pipeline, by the
WHEP relay and by the thumbnailer. PyAV's `frame.reformat` keeps one scaler on the frame, and two
threads in one scaler crash the process (a segfault in `encode_video` under CI) or hang it; every
consumer scales with a scaler of its own."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from nchat_live.media.extras.thumbnails import encode_jpeg
from nchat_live.media.storage.local import LocalStorage
from nchat_live.media.transcode.pipeline import StreamPipeline

from .test_pipeline import Recorder, frames


def test_the_pipeline_and_the_thumbnailer_scale_the_same_frames_at_once(tmp_path: Path) -> None:
    source = frames(854, 480, 120)
    observer = Recorder()
    pipeline = StreamPipeline("shared", LocalStorage(tmp_path), max_resolution="480p", observer=observer,
                              max_backlog_seconds=float("inf"))
    done = threading.Event()
    current = [0]
    thumbnails: list[int] = []

    def thumbnail_all_the_time() -> None:
        # The frame the pipeline is encoding, again and again, as the thumbnailer and the relay do.
        while not done.is_set():
            thumbnails.append(len(encode_jpeg(source[current[0]], max_height=270)))

    thumbnailer = threading.Thread(target=thumbnail_all_the_time, daemon=True)
    thumbnailer.start()
    deadline = time.monotonic() + 60
    for index, frame in enumerate(source):
        current[0] = index
        pipeline.push_video(frame)
        while pipeline.backlog and time.monotonic() < deadline:
            time.sleep(0.001)
    pipeline.close(timeout=30)
    done.set()
    thumbnailer.join(30)
    assert observer.closed, "the pipeline did not finish: its scaler hung"
    assert not thumbnailer.is_alive(), "the thumbnailer did not finish: its scaler hung"
    assert pipeline.stats.frames_encoded == 2 * 4 * 24, pipeline.stats  # 4 s in both renditions at 24 fps
    assert len(thumbnails) >= len(source) and min(thumbnails) > 100
