"""The LL-HLS packager on hand-made parts: playlists, the live window, blocking-reload rules."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from pathlib import Path

import pytest

from nchat_live.media.hls.fmp4 import FragmentInfo
from nchat_live.media.hls.packager import PackagingConfig, PlaylistRequestError, RenditionPackager, StreamPackager
from nchat_live.media.storage.local import LocalStorage
from nchat_live.media.transcode.ladder import Rendition

LOW = Rendition("360p", 640, 360, 24, 400)
HIGH = Rendition("720p", 1280, 720, 30, 1500)


def feed(packager: RenditionPackager, count: int, start_ms: int = 0, part_ms: int = 500, per_segment: int = 4) -> int:
    """`count` parts of `part_ms`, a keyframe every `per_segment` parts; returns the next start."""
    at = start_ms
    for index in range(count):
        info = FragmentInfo(base_time=at, duration=part_ms, samples=12, starts_with_sync=index % per_segment == 0)
        packager.add_part(f"part@{at}".encode(), info, 1000)
        at += part_ms
    return at


@pytest.fixture
async def packager(tmp_path: Path) -> StreamPackager:
    # Hand-made 0.5 s parts (four to a segment) keep the numbers below readable.
    stream = StreamPackager("s1", LocalStorage(tmp_path), PackagingConfig(part_seconds=0.5, start_segments=1),
                            loop=asyncio.get_running_loop())
    for rendition in (HIGH, LOW):
        stream.add_rendition(rendition).set_init(b"init", "avc1.64001f")
    return stream


async def test_media_playlist_has_ll_hls_tags_and_parts_within_target(packager: StreamPackager) -> None:
    low = packager.renditions["360p"]
    feed(low, 6)
    feed(packager.renditions["720p"], 5)
    text = low.render()
    assert "#EXT-X-TARGETDURATION:2" in text
    assert "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.500,HOLD-BACK=6.000" in text
    assert "#EXT-X-PART-INF:PART-TARGET=0.500" in text
    assert text.count("#EXT-X-PART:") == 6
    assert text.count("INDEPENDENT=YES") == 2
    assert "#EXTINF:2.00000,\nseg0.m4s" in text
    assert '#EXT-X-PRELOAD-HINT:TYPE=PART,URI="seg1.2.m4s"' in text
    assert '#EXT-X-RENDITION-REPORT:URI="../720p/index.m3u8",LAST-MSN=1,LAST-PART=0' in text
    assert "#EXT-X-PROGRAM-DATE-TIME:" in text and "#EXT-X-ENDLIST" not in text
    assert packager.master_written
    master = packager.render_master()
    assert 'RESOLUTION=640x360,FRAME-RATE=24.000,CODECS="avc1.64001f,mp4a.40.2"' in master
    low.finish()
    ended = low.render()
    assert ended.rstrip().endswith('LAST-MSN=1,LAST-PART=0') and "#EXT-X-ENDLIST" in ended
    assert "PRELOAD-HINT" not in ended and "#EXTINF:1.00000,\nseg1.m4s" in ended


async def test_live_window_slides_and_old_files_go(packager: StreamPackager, tmp_path: Path) -> None:
    low = packager.renditions["360p"]
    feed(low, 4 * 9 + 1)  # nine complete segments and the start of a tenth
    text = low.render()
    assert "#EXT-X-MEDIA-SEQUENCE:5" in text
    assert re.findall(r"^seg(\d+)\.m4s$", text, re.M) == ["5", "6", "7", "8"]
    # Parts only near the live edge.
    assert "seg5.0.m4s" not in text and "seg8.0.m4s" in text
    files = {p.name for p in (tmp_path / "s1" / "360p").iterdir()}
    assert "seg0.m4s" not in files and "seg0.0.m4s" not in files
    assert {"seg3.m4s", "seg8.m4s", "seg9.0.m4s", "init.mp4", "index.m3u8"} <= files


async def test_discontinuity_marks_the_next_segment(packager: StreamPackager) -> None:
    low = packager.renditions["360p"]
    at = feed(low, 6)
    low.mark_discontinuity(at / 1000 + 5)
    low.set_init(b"init-2", "avc1.64001f")
    feed(low, 3, start_ms=at + 5000, per_segment=3)
    text = low.render()
    lines = text.splitlines()
    index = lines.index("#EXT-X-DISCONTINUITY")
    assert lines[index + 1] == '#EXT-X-MAP:URI="init2.mp4"'
    assert "#EXT-X-DISCONTINUITY-SEQUENCE:0" in text


async def test_blocking_request_rules(packager: StreamPackager) -> None:
    low = packager.renditions["360p"]
    feed(low, 2)
    with pytest.raises(PlaylistRequestError, match="requires _HLS_msn"):
        low.check_request(None, 1)
    with pytest.raises(PlaylistRequestError, match="more than two segments ahead"):
        low.check_request(3, None)
    with pytest.raises(PlaylistRequestError, match="advance limit"):
        low.check_request(0, 13)
    low.check_request(2, 0)
    assert low.satisfies(0, 1) and not low.satisfies(0, 2) and not low.satisfies(0, None)


async def test_blocking_reload_waits_for_the_part_without_polling(packager: StreamPackager) -> None:
    low = packager.renditions["360p"]
    at = feed(low, 2)
    waiters = [asyncio.create_task(packager.wait_for_playlist("360p", 0, 2)) for _ in range(50)]
    await asyncio.sleep(0.2)
    assert not any(w.done() for w in waiters)
    started = time.monotonic()
    # The worker thread of a pipeline publishes the part.
    thread = threading.Thread(target=feed, args=(low, 1), kwargs={"start_ms": at})
    thread.start()
    results = await asyncio.gather(*waiters)
    thread.join()
    assert all(results) and time.monotonic() - started < 1
    # The new part was a keyframe: segment 0 ended and segment 1 began; its second part is not there.
    assert not await packager.wait_until("360p", lambda: low.satisfies(1, 1), 0.3)


def feed_sized(packager: RenditionPackager, sizes: list[int], start_ms: int, part_ms: int = 500) -> int:
    """One segment per entry of `sizes` (bytes), each four parts of `part_ms` starting with a keyframe."""
    at = start_ms
    for size in sizes:
        for index in range(4):
            info = FragmentInfo(base_time=at, duration=part_ms, samples=12, starts_with_sync=index == 0)
            packager.add_part(bytes(size // 4), info, 1000)
            at += part_ms
    return at


def stream_inf(master: str, name: str) -> tuple[int, int]:
    match = re.search(rf"BANDWIDTH=(\d+),AVERAGE-BANDWIDTH=(\d+),.*\n{name}/index\.m3u8", master)
    assert match, master
    return int(match.group(1)), int(match.group(2))


async def test_master_declares_measured_peak_and_average_once_segments_exist(
    packager: StreamPackager, tmp_path: Path,
) -> None:
    low, high = packager.renditions["360p"], packager.renditions["720p"]
    stored = tmp_path / "s1" / "master.m3u8"
    feed(high, 5)
    at = feed_sized(low, [100_000, 50_000], 0)  # 400 and 200 kbit/s
    assert stream_inf(stored.read_text(), "360p") == (LOW.peak_bandwidth, LOW.average_bandwidth)
    at = feed_sized(low, [50_000, 50_000], at)  # the third segment completes when the fourth starts
    assert stream_inf(stored.read_text(), "360p") == (400_000, 266_667)
    assert stream_inf(stored.read_text(), "720p") == (HIGH.peak_bandwidth, HIGH.average_bandwidth)  # unmeasured
    # A busier segment outruns the declared peak: the stored master follows at once.
    at = feed_sized(low, [250_000, 50_000], at)
    assert stream_inf(stored.read_text(), "360p") == (1_000_000, 400_000)
    assert stream_inf(packager.render_master(), "360p") == stream_inf(stored.read_text(), "360p")
    # A short last segment counts together with the one before it (the spec's 0.5-1.5 target durations).
    info = FragmentInfo(base_time=at, duration=250, samples=6, starts_with_sync=True)
    low.add_part(bytes(40_000), info, 1000)
    low.finish()
    # Alone it would be 1.28 Mbit/s; with the 2 s before it, 320 kbit/s: the peak stays.
    assert low.peak_bitrate == 1_000_000
    assert low.bandwidth() == (1_000_000, round(590_000 * 8 / 12.25), True)
