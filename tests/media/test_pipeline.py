"""StreamPipeline fed directly with PyAV frames: aligned keyframes, audio, ladder trimming."""

from __future__ import annotations

import fractions
import io
import re
import time
from pathlib import Path

import av

from nchat_live.media.hls.packager import SegmentInfo
from nchat_live.media.storage.local import LocalStorage
from nchat_live.media.transcode.pipeline import PipelineObserver, StreamPipeline


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
                              trim_after_seconds=0.2, trim_warmup_seconds=0, max_backlog_seconds=float("inf"))
    # Enough frames that encoding lasts well past trim_after_seconds of wall time on a fast machine too.
    for frame in frames(854, 480, 300):
        pipeline.push_video(frame)
    pipeline.close()
    assert pipeline.stats.trimmed == ["480p"]
    assert [r.name for r in pipeline.renditions] == ["360p"]  # the last rendition always stays
    master = (tmp_path / "p2" / "master.m3u8").read_text()
    assert re.findall(r"^(\S+/index\.m3u8)$", master, re.M) == ["360p/index.m3u8"]
    # Its files are gone, not ended: a process serving it from storage would hand its players an ENDLIST.
    assert not (tmp_path / "p2" / "480p").exists()


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


def audio_frames(seconds: float) -> list[av.AudioFrame]:
    made = []
    for index in range(int(seconds / 0.02)):
        frame = av.AudioFrame(format="s16", layout="stereo", samples=960)
        for plane in frame.planes:
            plane.update(bytes(plane.buffer_size))
        frame.sample_rate = 48000
        frame.pts = index * 960
        frame.time_base = fractions.Fraction(1, 48000)
        made.append(frame)
    return made


def parts_of(playlist: str) -> tuple[float, list[float]]:
    target = float(re.search(r"PART-TARGET=([\d.]+)", playlist).group(1))  # type: ignore[union-attr]
    return target, [float(d) for d in re.findall(r"#EXT-X-PART:DURATION=([\d.]+)", playlist)]


def test_closed_stream_ends_every_playlist_with_parts_between_200_ms_and_the_target(tmp_path: Path) -> None:
    observer = Recorder()
    pipeline = StreamPipeline("p4", LocalStorage(tmp_path), max_resolution="480p", observer=observer,
                              max_backlog_seconds=float("inf"))
    video = frames(854, 480, 91)  # 3.03 s: the last frame starts a one-frame part at 3.0 s
    # Jitter: frame 59 arrives 15 ms late, so at 24 fps it would round into the slot of the 2 s keyframe.
    video[59].pts = int(1.985 * 90000)
    sound = iter(audio_frames(3.1))
    for index, frame in enumerate(video):
        pipeline.push_video(frame)
        if index % 3 == 2:  # 20 ms audio frames, a little ahead of the video as from a live publisher
            for _ in range(5):
                pipeline.push_audio(next(sound))
    pipeline.close()
    for name in ("480p", "360p"):
        playlist = (tmp_path / "p4" / name / "index.m3u8").read_text()
        target, durations = parts_of(playlist)
        assert "\n#EXT-X-ENDLIST\n" in playlist and "PRELOAD-HINT" not in playlist
        assert durations and max(durations) <= target, (name, durations)
        assert min(durations) >= 0.2, (name, durations)
        extinf = [float(d) for d in re.findall(r"#EXTINF:([\d.]+)", playlist)]
        assert abs(sum(extinf) - sum(durations)) < 1e-3  # the segments are exactly their parts
    starts = sorted({round(s.start, 3) for s in observer.segments})
    assert starts == [0.0, 2.0]  # the keyframe kept its slot: no one-frame part or segment before it


def test_reconnect_leaves_no_short_part_before_the_discontinuity(tmp_path: Path) -> None:
    pipeline = StreamPipeline("p5", LocalStorage(tmp_path), max_resolution="360p", max_backlog_seconds=float("inf"))
    started = time.monotonic()
    for frame in frames(640, 360, 77):  # up to 2.53 s: one frame after the 2.5 s part boundary
        pipeline.push_video(frame)
    # The new publisher's frames are timed by arrival: let the old ones' media time pass first.
    time.sleep(max(0.0, started + 2.8 - time.monotonic()))
    pipeline.discontinuity()
    for frame in frames(640, 360, 30):
        pipeline.push_video(frame)
    pipeline.close()
    playlist = (tmp_path / "p5" / "360p" / "index.m3u8").read_text()
    before = playlist.split("#EXT-X-DISCONTINUITY\n")
    assert len(before) == 2, playlist
    target, durations = parts_of(before[0])
    assert durations[-1] >= 0.2 and max(durations) <= target, durations
    # The segment before the reconnect ends on a part players take (>= 200 ms), every part within target.
    extinf = [float(d) for d in re.findall(r"#EXTINF:([\d.]+)", before[0])]
    assert extinf[0] == 2.0 and 0.2 <= extinf[1] <= 2.0, extinf
    assert abs(sum(extinf) - sum(durations)) < 1e-3
    after = [float(d) for d in re.findall(r"#EXT-X-PART:DURATION=([\d.]+)", before[1])]
    assert after and max(after) <= target


def test_a_source_stall_longer_than_frame_repeat_becomes_a_discontinuity(tmp_path: Path) -> None:
    """A publisher that freezes for 3.5 s (then resumes with timestamps 3.5 s later) must not leave a
    part spanning the gap: the gap is marked as a discontinuity instead."""
    pipeline = StreamPipeline("stall", LocalStorage(tmp_path), max_resolution="360p",
                              max_backlog_seconds=float("inf"))
    source = frames(640, 360, 150)  # 5 s at 30 fps
    started = time.monotonic()
    for index, frame in enumerate(source):
        if 45 <= index < 150 - 45:
            continue  # 1.5 s sent, then 2 s of silence plus the 1.5 s the skipped frames stood for
        time.sleep(max(0.0, started + index / 30 - time.monotonic()))
        pipeline.push_video(frame)
    pipeline.close()
    playlist = (tmp_path / "stall" / "360p" / "index.m3u8").read_text()
    target, durations = parts_of(playlist)
    assert "#EXT-X-DISCONTINUITY" in playlist
    assert durations and max(durations) <= target, durations
    # No segment outlasts the target duration either (the spec's rule for EXTINF).
    target_duration = int(re.search(r"#EXT-X-TARGETDURATION:(\d+)", playlist).group(1))  # type: ignore[union-attr]
    segments = [float(d) for d in re.findall(r"#EXTINF:([\d.]+),", playlist)]
    assert segments and max(round(d) for d in segments) <= target_duration, segments
