"""The compositor frame by frame: layout geometry, tiles of solid colours, the audio mix, the program thread."""

from __future__ import annotations

import itertools
import threading
import time
from fractions import Fraction

import av
import numpy as np
import pytest

from nchat_live.media.compose import HOST, ProgramCompositor, Rect, fit, place
from nchat_live.media.compose.audio import AudioMixer
from nchat_live.media.compose.video import VideoCompositor

from .compose_support import BLACK, BLUE, GREEN, PLACEHOLDER, RED, YELLOW, colour_at, near, solid_frame


def test_solo_shows_the_focus_full_frame_or_the_host() -> None:
    sources = [HOST, "g1", "g2"]
    assert place("solo", sources, "g2", 1280, 720) == [("g2", Rect(0, 0, 1280, 720))]
    assert place("solo", sources, None, 1280, 720) == [(HOST, Rect(0, 0, 1280, 720))]
    # A focus who is not on the program (not connected) falls back to the host.
    assert place("solo", sources, "gone", 1280, 720) == [(HOST, Rect(0, 0, 1280, 720))]


def test_side_by_side_and_grid_cells_tile_the_canvas_without_gaps() -> None:
    assert place("side_by_side", [HOST, "g1"], None, 1280, 720) == [
        (HOST, Rect(0, 0, 640, 720)), ("g1", Rect(640, 0, 640, 720))]
    three = place("side_by_side", [HOST, "a", "b"], None, 1280, 720)
    assert [cell.x for _, cell in three] == [0, 426, 852]
    assert sum(cell.width for _, cell in three) == 1280
    four = place("grid", [HOST, "a", "b", "c"], None, 1280, 720)
    assert [cell for _, cell in four] == [Rect(0, 0, 640, 360), Rect(640, 0, 640, 360),
                                          Rect(0, 360, 640, 360), Rect(640, 360, 640, 360)]
    # Three in a 2x2 grid: the short last row is centred.
    assert [cell for _, cell in place("grid", [HOST, "a", "b"], None, 1280, 720)][2] == Rect(320, 360, 640, 360)
    assert place("grid", [HOST], None, 1280, 720) == [(HOST, Rect(0, 0, 1280, 720))]
    assert place("grid", [], None, 1280, 720) == []
    for _, cell in place("grid", [HOST, "a", "b", "c", "d"], None, 854, 480):
        assert cell.x % 2 == cell.y % 2 == cell.width % 2 == cell.height % 2 == 0
    with pytest.raises(ValueError, match="'mosaic' is not one of solo, side_by_side, grid"):
        place("mosaic", [HOST], None, 1280, 720)


def test_fit_letterboxes_and_pillarboxes_keeping_the_aspect() -> None:
    # 16:9 into a tall half: bars above and below.
    assert fit(1280, 720, Rect(640, 0, 640, 720)) == Rect(640, 180, 640, 360)
    # 4:3 into 16:9: bars left and right.
    assert fit(640, 480, Rect(0, 0, 1280, 720)) == Rect(160, 0, 960, 720)
    # A portrait phone into a quarter.
    box = fit(720, 1280, Rect(640, 360, 640, 360))
    assert box.height == 360 and box.width == 202 and box.x == 640 + 218 and box.y == 360


def test_sources_of_distinct_colours_land_in_their_tiles() -> None:
    compositor = VideoCompositor(1280, 720)
    cells = dict(place("grid", [HOST, "a", "b", "c"], None, 1280, 720))
    colours = {HOST: RED, "a": BLUE, "b": GREEN, "c": YELLOW}
    frame = compositor.compose([(key, cells[key], solid_frame(colours[key])) for key in colours])
    assert (frame.width, frame.height, frame.format.name) == (1280, 720, "yuv420p")
    for key, cell in cells.items():
        centre = colour_at(frame, cell.x + cell.width // 2, cell.y + cell.height // 2)
        assert near(centre, colours[key]), (key, centre)
        # Tile edges are the source's colour too (even coordinates: no chroma bleed).
        assert near(colour_at(frame, cell.x + 1, cell.y + 1), colours[key], 2)
        assert near(colour_at(frame, cell.x + cell.width - 2, cell.y + cell.height - 2), colours[key], 2)


def test_aspect_fit_leaves_black_bars_and_a_missing_picture_is_a_placeholder() -> None:
    compositor = VideoCompositor(1280, 720)
    cells = dict(place("side_by_side", [HOST, "g1"], None, 1280, 720))
    frame = compositor.compose([(HOST, cells[HOST], solid_frame(RED)), ("g1", cells["g1"], None)])
    assert near(colour_at(frame, 320, 360), RED)
    assert colour_at(frame, 320, 90) == BLACK  # letterbox above the host's 640x360 picture
    assert colour_at(frame, 960, 90) == PLACEHOLDER  # the guest's whole cell
    # A 4:3 host next: pillarboxed inside its cell, a new scale for the new size.
    frame = compositor.compose([(HOST, cells[HOST], solid_frame(GREEN, 320, 240)), ("g1", cells["g1"], None)])
    assert near(colour_at(frame, 320, 360), GREEN) and colour_at(frame, 320, 100) == BLACK


def tone(value: int, samples: int = 1920, rate: int = 48000, layout: str = "stereo") -> av.AudioFrame:
    channels = 2 if layout == "stereo" else 1
    frame = av.AudioFrame.from_ndarray(np.full((1, samples * channels), value, dtype=np.int16), format="s16",
                                       layout=layout)
    frame.sample_rate = rate
    return frame


def test_audio_mix_sums_clips_and_leaves_out_muted_and_silent_sources() -> None:
    mixer = AudioMixer()
    for key in (HOST, "g1", "g2", "quiet"):
        mixer.add(key)
    # Unheard until 40 ms are buffered (20 ms packets meet 33 ms ticks unevenly).
    mixer.push(HOST, tone(1000, samples=960))
    assert (mixer.mix_samples(960) == 0).all()
    mixer.push(HOST, tone(1000, samples=960))
    mixer.push("g1", tone(2500))
    mixer.push("g2", tone(-300))
    mixed = mixer.mix_samples(1920)
    assert mixed.shape == (1920, 2) and mixed.dtype == np.int16
    assert (mixed == 3200).all()  # "quiet" sent nothing: silence, not an error
    mixer.push(HOST, tone(20000))
    mixer.push("g1", tone(20000))
    assert (mixer.mix_samples(1920) == 32767).all()  # clipped, not wrapped
    mixer.push(HOST, tone(-20000))
    mixer.push("g1", tone(-20000))
    assert (mixer.mix_samples(1920) == -32768).all()
    mixer.push(HOST, tone(1000))
    mixer.push("g1", tone(2500))
    assert (mixer.mix_samples(1920, muted={"g1"}) == 1000).all()
    # Running dry: the rest is silence, and the source waits for its pre-roll again.
    mixer.push(HOST, tone(1000))
    assert (mixer.mix_samples(3000)[1920:] == 0).all()
    mixer.push(HOST, tone(1000, samples=960))
    assert (mixer.mix_samples(960) == 0).all()
    # Nothing buffered: silence; an unknown or removed source is ignored.
    mixer.remove("g1")
    mixer.push("g1", tone(5))
    assert (mixer.mix_samples(480) == 0).all()


def test_audio_mix_resamples_other_rates_and_mono() -> None:
    mixer = AudioMixer()
    mixer.add("mono16k")
    # 0.1 s of a mono 16 kHz source becomes 48 kHz on both channels (each at -3 dB, swresample's
    # centre level, so a mono voice is as loud as a stereo one).
    mixer.push("mono16k", tone(4000, samples=1600, rate=16000, layout="mono"))
    mixed = mixer.mix_samples(4800)
    assert abs(int(mixed[2400, 0]) - round(4000 / 2 ** 0.5)) < 50 and mixed[2400, 0] == mixed[2400, 1]
    frame = mixer.mix(960)
    assert (frame.sample_rate, frame.samples, frame.format.name, frame.layout.name) == (48000, 960, "s16", "stereo")


def test_audio_backlog_is_bounded() -> None:
    mixer = AudioMixer()
    mixer.add(HOST)
    for _ in range(25):  # 1 s arrives at once (a burst after a stall)
        mixer.push(HOST, tone(100))
    assert (mixer.mix_samples(960) == 100).all()
    # Only a short tail of the burst is kept: the delay it would add is dropped.
    assert (mixer.mix_samples(48000)[3000:] == 0).all()


class _Collect:
    def __init__(self) -> None:
        self.video: list[av.VideoFrame] = []
        self.audio: list[av.AudioFrame] = []
        self.lock = threading.Lock()

    def push_video(self, frame: av.VideoFrame) -> None:
        with self.lock:
            self.video.append(frame)

    def push_audio(self, frame: av.AudioFrame) -> None:
        with self.lock:
            self.audio.append(frame)


def test_program_follows_layout_focus_and_sources_frame_by_frame() -> None:
    out = _Collect()
    program = ProgramCompositor(out, 640, 360, fps=30, hold_seconds=0.5)
    program.add_source(HOST)
    program.add_source("g1")
    program.push_video(HOST, solid_frame(RED))
    program.push_video("g1", solid_frame(BLUE))
    program.set_program("side_by_side")
    now = time.monotonic()
    frame = program.render(now)
    assert near(colour_at(frame, 160, 180), RED) and near(colour_at(frame, 480, 180), BLUE)
    program.set_program("solo", focus="g1")
    frame = program.render(now)
    assert near(colour_at(frame, 20, 180), BLUE) and near(colour_at(frame, 620, 180), BLUE)
    program.set_program("solo", focus=None)
    assert near(colour_at(program.render(now), 320, 180), RED)
    # Guests ordered by the program: g2 (joined later) listed first goes right after the host.
    program.add_source("g2")
    program.push_video("g2", solid_frame(GREEN))
    program.set_program("side_by_side", order=["g2", "g1"])
    assert program.sources == [HOST, "g2", "g1"]
    frame = program.render(now)
    assert [near(colour_at(frame, x, 180), c) for x, c in ((106, RED), (320, GREEN), (532, BLUE))] == [True] * 3
    # A stalled source is held, then becomes the placeholder; a removed one leaves the layout.
    assert near(colour_at(program.render(now + 0.4), 320, 180), GREEN)
    assert colour_at(program.render(now + 0.6), 320, 180) == PLACEHOLDER
    program.remove_source("g2")
    frame = program.render(now)
    assert near(colour_at(frame, 160, 180), RED) and near(colour_at(frame, 480, 180), BLUE)


def test_program_thread_emits_a_fixed_rate_with_monotonic_timestamps_and_mixed_audio() -> None:
    out = _Collect()
    program = ProgramCompositor(out, 320, 180, fps=30)
    program.add_source(HOST)
    program.push_video(HOST, solid_frame(RED, 320, 180))
    for _ in range(30):
        program.push_audio(HOST, tone(700))
    program.start()
    try:
        deadline = time.monotonic() + 10
        while len(out.video) < 20 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        program.close()
    with out.lock:
        video, audio = list(out.video), list(out.audio)
    assert len(video) >= 20
    assert all(f.time_base == Fraction(1, 30) for f in video)
    ticks = [f.pts or 0 for f in video]
    assert ticks == sorted(set(ticks)) and ticks[0] == 0
    # Audio covers every tick exactly: pts + samples of one frame is the next one's pts.
    stamps = [a.pts or 0 for a in audio]
    assert stamps[0] == 0 and all(p + a.samples == q for (p, q), a in zip(itertools.pairwise(stamps), audio,
                                                                         strict=False))
    assert sum(a.samples for a in audio) == (ticks[-1] + 1) * 1600
    assert (audio[0].to_ndarray() == 700).all()
    assert program.stats.frames == len(video)
