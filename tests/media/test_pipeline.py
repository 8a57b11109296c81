"""StreamPipeline fed directly with PyAV frames: aligned keyframes, audio, ladder trimming."""

from __future__ import annotations

import fractions
import io
import re
from pathlib import Path

import av

from nchat_live.media.packager import SegmentInfo
from nchat_live.media.pipeline import PipelineObserver, StreamPipeline
from nchat_live.media.storage import LocalStorage


def frames(width: int, height: int, count: int, fps: int = 30) -> list[av.VideoFrame]:
    made = []
    for index in range(count):
        frame = av.VideoFrame(width, height, "yuv420p")
        for plane_index, plane in enumerate(frame.planes):
            plane.update(bytes([(index * 7 + plane_index * 60) % 256]) * plane.buffer_size)
        frame.pts = index * 3000
        frame.time_base = fractions.Fraction(1, 90000)
        made.append(frame)
    return made


class Recorder(PipelineObserver):
    def __init__(self) -> None:
        self.segments: list[SegmentInfo] = []
        self.keyframes: list[float] = []
        self.closed = False

    def on_segment(self, info: SegmentInfo) -> None:
        self.segments.append(info)

    def on_keyframe(self, frame: av.VideoFrame, at_seconds: float) -> None:
        self.keyframes.append(at_seconds)

    def on_closed(self, stream_id: str) -> None:
        self.closed = True


def test_keyframes_align_across_renditions_and_segments_carry_audio(tmp_path: Path) -> None:
    observer = Recorder()
    pipeline = StreamPipeline("p1", LocalStorage(tmp_path), max_resolution="480p", observer=observer,
                              max_backlog_seconds=float("inf"))
    for frame in frames(854, 480, 150):  # 5 s at 30 fps, pushed faster than real time
        pipeline.push_video(frame)
    pipeline.close()
    assert observer.closed and observer.keyframes == [0.0, 2.0, 4.0]
    by_rendition: dict[str, list[SegmentInfo]] = {}
    for info in observer.segments:
        by_rendition.setdefault(info.rendition, []).append(info)
    assert set(by_rendition) == {"480p", "360p"}
    starts = {name: [round(s.start, 3) for s in infos] for name, infos in by_rendition.items()}
    assert starts["480p"] == starts["360p"] == [0.0, 2.0, 4.0]
    init = (tmp_path / "p1" / "360p" / "init.mp4").read_bytes()
    with av.open(io.BytesIO(init + by_rendition["360p"][1].data), format="mp4") as container:
        assert container.streams.audio[0].codec_context.name == "aac"  # silence stands in for missing audio
        video = list(container.decode(video=0))
    assert video[0].key_frame and (video[0].width, video[0].height) == (640, 360)
    assert len(video) == 48  # 2 s at 24 fps


def test_ladder_is_trimmed_when_encoding_cannot_keep_up(tmp_path: Path) -> None:
    # A machine "too slow" by definition: real time would need 1000x the speed any encoder has.
    pipeline = StreamPipeline("p2", LocalStorage(tmp_path), max_resolution="480p", min_speed=1000,
                              trim_after_seconds=0.2, max_backlog_seconds=float("inf"))
    for frame in frames(854, 480, 90):
        pipeline.push_video(frame)
    pipeline.close()
    assert pipeline.stats.trimmed == ["480p"]
    assert [r.name for r in pipeline.renditions] == ["360p"]  # the last rendition always stays
    master = (tmp_path / "p2" / "master.m3u8").read_text()
    assert re.findall(r"^(\S+/index\.m3u8)$", master, re.M) == ["360p/index.m3u8"]
    assert "#EXT-X-ENDLIST" in (tmp_path / "p2" / "480p" / "index.m3u8").read_text()


def test_missing_source_frames_are_repeated_so_parts_stay_within_target(tmp_path: Path) -> None:
    observer = Recorder()
    pipeline = StreamPipeline("p3", LocalStorage(tmp_path), max_resolution="360p", observer=observer,
                              max_backlog_seconds=float("inf"))
    # 3 s at 30 fps with 0.3 s (frames 20-28) and 0.2 s (frames 50-55) lost on the way.
    for index, frame in enumerate(frames(640, 360, 90)):
        if not (20 <= index < 29 or 50 <= index < 56):
            pipeline.push_video(frame)
    pipeline.close()
    playlist = (tmp_path / "p3" / "360p" / "index.m3u8").read_text()
    target = float(re.search(r"PART-TARGET=([\d.]+)", playlist).group(1))  # type: ignore[union-attr]
    durations = [float(d) for d in re.findall(r"#EXT-X-PART:DURATION=([\d.]+)", playlist)]
    assert durations and max(durations) <= target
    init = (tmp_path / "p3" / "360p" / "init.mp4").read_bytes()
    with av.open(io.BytesIO(init + observer.segments[0].data), format="mp4") as container:
        assert len(list(container.decode(video=0))) == 48  # every 24 fps slot of the first 2 s is filled
