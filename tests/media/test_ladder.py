"""The ladder follows the broadcaster: decided on the source's steady size (a WebRTC sender starts small
and ramps up), later size changes scaled into the fixed rungs, trimming only on a sustained deficit past
the warm-up, and a trimmed rung gone from the master."""

from __future__ import annotations

import re
from pathlib import Path

from aiortc import RTCPeerConnection, RTCSessionDescription

from nchat_live.media.storage.local import LocalStorage
from nchat_live.media.transcode.ladder import sender_kbps, with_bandwidth
from nchat_live.media.transcode.pipeline import StreamPipeline

from .media_client import SyntheticVideo
from .test_pipeline import frames


def renditions_in(master: str) -> list[str]:
    return re.findall(r"^(\S+)/index\.m3u8$", master, re.M)


def test_ladder_follows_the_steady_source_not_its_first_frame(tmp_path: Path) -> None:
    pipeline = StreamPipeline("ramp", LocalStorage(tmp_path), max_resolution="480p", max_backlog_seconds=float("inf"))
    small = frames(640, 360, 15)  # a WebRTC sender's first half second at 360p...
    large = frames(854, 480, 90)  # ...then the preset's 480p
    for index, frame in enumerate(large):
        frame.pts = (index + 15) * 3000
    for frame in small + large:
        pipeline.push_video(frame)
    pipeline.close()
    assert pipeline.stats.ladder_decided
    assert [r.name for r in pipeline.renditions] == ["480p", "360p"]
    master = (tmp_path / "ramp" / "master.m3u8").read_text()
    assert renditions_in(master) == ["480p", "360p"]
    assert "RESOLUTION=854x480" in master
    # The ladder started again when the source grew (nobody played yet): every playlist begins at 0.5 s.
    playlist = (tmp_path / "ramp" / "480p" / "index.m3u8").read_text()
    assert "#EXT-X-DISCONTINUITY\n" not in playlist and "#EXT-X-MEDIA-SEQUENCE:0\n" in playlist


def test_a_source_that_shrinks_after_the_decision_is_scaled_into_the_rungs(tmp_path: Path) -> None:
    pipeline = StreamPipeline("shrink", LocalStorage(tmp_path), max_resolution="360p",
                              max_backlog_seconds=float("inf"))
    big = frames(640, 360, 30)
    small = frames(320, 180, 45)
    for index, frame in enumerate(small):
        frame.pts = (index + 30) * 3000
    for frame in big + small:
        pipeline.push_video(frame)
    pipeline.close()
    assert [r.name for r in pipeline.renditions] == ["360p"]
    assert renditions_in((tmp_path / "shrink" / "master.m3u8").read_text()) == ["360p"]


def test_no_trim_during_warm_up_and_a_trimmed_rung_leaves_the_master(tmp_path: Path) -> None:
    # Encoding "too slow" by definition (min_speed 1000x), but only for the 3 s warm-up: nothing is trimmed.
    warm = StreamPipeline("warm", LocalStorage(tmp_path), max_resolution="480p", min_speed=1000,
                          trim_after_seconds=0.2, trim_warmup_seconds=5, max_backlog_seconds=float("inf"))
    for frame in frames(854, 480, 90):
        warm.push_video(frame)
    warm.close()
    assert warm.stats.trimmed == []
    assert renditions_in((tmp_path / "warm" / "master.m3u8").read_text()) == ["480p", "360p"]
    # Past the warm-up the deficit is sustained: the top rung is dropped, and the master no longer offers it.
    # The deficit is judged in wall time (trim_after_seconds) while frames are queued all at once: a fast,
    # idle machine encodes 45 frames after the warm-up in under 0.2 s, so 225 frames follow it here.
    slow = StreamPipeline("slow", LocalStorage(tmp_path), max_resolution="480p", min_speed=1000,
                          trim_after_seconds=0.2, trim_warmup_seconds=2.5, max_backlog_seconds=float("inf"))
    for frame in frames(854, 480, 300):
        slow.push_video(frame)
    slow.close()
    assert slow.stats.trimmed == ["480p"]
    master = slow.packager.render_master()
    assert renditions_in(master) == ["360p"] == renditions_in((tmp_path / "slow" / "master.m3u8").read_text())
    assert "../480p/" not in slow.packager.renditions["360p"].render()  # no rendition report for it either


async def test_whip_answer_lets_the_sender_start_at_the_preset_bit_rate() -> None:
    """b=AS/b=TIAS and x-google-start/max-bitrate in the answer's video section; aiortc (and browsers) accept it."""
    sender, receiver = RTCPeerConnection(), RTCPeerConnection()
    try:
        sender.addTransceiver(SyntheticVideo(320, 240, 30), direction="sendonly")
        await sender.setLocalDescription(await sender.createOffer())
        await receiver.setRemoteDescription(sender.localDescription)
        await receiver.setLocalDescription(await receiver.createAnswer())
        answer = with_bandwidth(receiver.localDescription.sdp, sender_kbps("720p"))
        video = answer.split("m=video", 1)[1]
        assert "\r\nb=AS:3128\r\n" in video and "\r\nb=TIAS:3000000\r\n" in video
        codecs = re.findall(r"a=rtpmap:(\d+) (\w+)/", video)
        for pt, name in codecs:
            if name.lower() != "rtx":
                assert re.search(rf"a=fmtp:{pt} .*x-google-start-bitrate=2000;x-google-max-bitrate=3000", video), name
        await sender.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    finally:
        await sender.close()
        await receiver.close()
