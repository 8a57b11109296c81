"""LL-HLS as players need it: parts within PART-TARGET, PART-HOLD-BACK of 3 x PART-TARGET, a preload hint,
no master before the first complete segment, blocking reloads woken the moment the part exists, and the
preload-hinted part streamed chunk by chunk while it is being written."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from pathlib import Path

from nchat_live.media.hls.fmp4 import FragmentInfo
from nchat_live.media.hls.packager import PackagingConfig, RenditionPackager, StreamPackager
from nchat_live.media.hls.routes import _stream_part
from nchat_live.media.storage.local import LocalStorage
from nchat_live.media.transcode.ladder import Rendition
from nchat_live.media.transcode.pipeline import StreamPipeline

from .test_pipeline import frames, parts_of

LOW = Rendition("360p", 640, 360, 30, 400)


def test_default_parts_and_hold_back_follow_the_spec() -> None:
    config = PackagingConfig()
    assert config.part_target == 0.334 and config.part_hold_back == 1.002
    assert config.part_hold_back >= 3 * config.part_target
    assert (config.chunk_frames(30), config.chunk_frames(24)) == (2, 2)  # 10 and 8 frames to a part


def test_pipeline_parts_stay_within_target_and_master_waits_for_two_whole_segments(tmp_path: Path) -> None:
    pipeline = StreamPipeline("ll", LocalStorage(tmp_path), max_resolution="360p", max_backlog_seconds=float("inf"))
    source = frames(640, 360, 130)
    try:
        for frame in source[:100]:  # under two segments: no master yet
            pipeline.push_video(frame)
        deadline = time.monotonic() + 20
        while pipeline.backlog and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.2)
        assert not pipeline.master_ready
        for frame in source[100:]:
            pipeline.push_video(frame)
        while not pipeline.master_ready and time.monotonic() < deadline:
            time.sleep(0.02)
        assert pipeline.master_ready
        rendition = pipeline.packager.renditions["360p"]
        playlist = rendition.render()
        assert "#EXT-X-PART-INF:PART-TARGET=0.334" in playlist
        assert "PART-HOLD-BACK=1.002" in playlist
        assert re.search(r'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="seg\d+\.\d+\.m4s"', playlist)
        # The first playlist a player sees holds two whole segments: far more than the hold-back.
        assert "#EXTINF:2.00000,\nseg0.m4s" in playlist and "#EXTINF:2.00000,\nseg1.m4s" in playlist
    finally:
        pipeline.close()
    target, durations = parts_of((tmp_path / "ll" / "360p" / "index.m3u8").read_text())
    assert durations and max(durations) <= target
    assert durations[:6] == [0.33333] * 6  # a 2 s segment is six whole parts at 24 fps


def chunk(packager: RenditionPackager, frame: int, key: bool = False) -> None:
    """A CMAF chunk of two frames at 30 fps starting at `frame` (five make a part)."""
    packager.add_chunk(f"[{frame}]".encode(), FragmentInfo(frame, 2, 2, key), 30)


async def test_blocking_reload_wakes_within_milliseconds_of_the_part(tmp_path: Path) -> None:
    stream = StreamPackager("s", LocalStorage(tmp_path), PackagingConfig(), loop=asyncio.get_running_loop())
    low = stream.add_rendition(LOW)
    low.set_init(b"init", "avc1.64001e")
    for index in range(7):  # one part (five chunks) plus two chunks of the next
        chunk(low, 2 * index, key=index == 0)
    assert low.satisfies(0, 0) and not low.satisfies(0, 1)
    woke: list[float] = []

    async def wait() -> None:
        assert await stream.wait_for_playlist("360p", 0, 1)
        woke.append(time.perf_counter())

    waiters = [asyncio.create_task(wait()) for _ in range(20)]
    await asyncio.sleep(0.1)
    published: list[float] = []

    def publish() -> None:
        chunk(low, 14)
        chunk(low, 16)
        chunk(low, 18)  # this chunk completes part 1
        published.append(time.perf_counter())

    thread = threading.Thread(target=publish)
    thread.start()
    await asyncio.gather(*waiters)
    thread.join()
    assert len(woke) == 20
    assert max(woke) - published[0] < 0.05, max(woke) - published[0]  # event-driven, not a poll interval


async def test_preload_hinted_part_is_streamed_while_it_is_written(tmp_path: Path) -> None:
    stream = StreamPackager("s", LocalStorage(tmp_path), PackagingConfig(), loop=asyncio.get_running_loop())
    low = stream.add_rendition(LOW)
    low.set_init(b"init", "avc1.64001e")
    chunk(low, 0, key=True)
    hinted = re.search(r'PRELOAD-HINT:TYPE=PART,URI="([^"]+)"', low.render())
    assert hinted and hinted.group(1) == "seg0.0.m4s" and low.is_open("seg0.0.m4s")
    body = _stream_part(stream, "360p", "seg0.0.m4s")
    received = [await anext(body)]  # what exists of the part now, before it is whole
    assert received == [b"[0]"]
    for at in (2, 4, 6, 8):
        next_piece = asyncio.ensure_future(anext(body))
        await asyncio.sleep(0.02)
        assert not next_piece.done()  # waits for the muxer, no busy loop
        chunk(low, at)
        received.append(await asyncio.wait_for(next_piece, 1))
    assert low.part_data("seg0.0.m4s") == b"".join(received)  # whole now: the same bytes as listed
    assert [piece async for piece in body] == []
    assert (tmp_path / "s" / "360p" / "seg0.0.m4s").read_bytes() == b"".join(received)
