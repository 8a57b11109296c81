"""hls/playlists.py: the one place playlists are rendered (VOD, DVR, masters, closing a live one)."""

from __future__ import annotations

from nchat_live.media.extras.recording import RecordedSegment
from nchat_live.media.hls.playlists import (
    FALLBACK_BANDWIDTH,
    dvr_master,
    end_live,
    fallback_variants,
    master_variants,
    render_master,
    render_vod,
    target_duration,
)


def test_vod_playlist_lists_segments_with_their_maps_and_discontinuities() -> None:
    segments = [RecordedSegment("seg0.m4s", 2.0, False), RecordedSegment("seg1.m4s", 2.001, False),
                RecordedSegment("seg2.m4s", 1.5, True, "init2.mp4")]
    text = render_vod(segments, prefix="../")
    assert text.startswith("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:2\n#EXT-X-PLAYLIST-TYPE:VOD\n")
    assert text.count("#EXT-X-MAP:") == 2 and '#EXT-X-MAP:URI="../init2.mp4"' in text
    assert text.index("#EXT-X-DISCONTINUITY\n") < text.index("../seg2.m4s")
    assert text.endswith("#EXT-X-ENDLIST\n")
    assert target_duration([]) == 1 and target_duration([2.4]) == 3


def test_master_round_trip_and_fallback() -> None:
    variants = fallback_variants(["720p", "360p"])
    text = render_master(variants)
    assert f"BANDWIDTH={FALLBACK_BANDWIDTH}" in text
    assert master_variants(text) == variants
    assert dvr_master(text.encode()).count(b"/dvr.m3u8") == 2


def test_closing_a_live_playlist_drops_the_preload_hint_once() -> None:
    live = '#EXTM3U\n#EXTINF:2.00000,\nseg0.m4s\n#EXT-X-PRELOAD-HINT:TYPE=PART,URI="seg1.0.m4s"\n'
    closed = end_live(live)
    assert closed is not None and closed.endswith("seg0.m4s\n#EXT-X-ENDLIST\n") and "PRELOAD" not in closed
    assert end_live(closed) is None
