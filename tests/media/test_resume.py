"""Continuing HLS after a takeover: parsing the old playlist, the packager going on from it, storage selection."""

from __future__ import annotations

from pathlib import Path

import pytest

from nchat_live.config import Settings
from nchat_live.errors import ConfigError
from nchat_live.media.hls.fmp4 import FragmentInfo
from nchat_live.media.hls.packager import PackagingConfig, StreamPackager
from nchat_live.media.storage.local import LocalStorage
from nchat_live.media.storage.s3 import S3Storage
from nchat_live.media.storage.select import open_storage, public_url
from nchat_live.media.transcode.ladder import select_ladder
from nchat_live.media.worker.resume import end_playlists, parse_media_playlist, read_resume

OLD = """#EXTM3U
#EXT-X-VERSION:9
#EXT-X-TARGETDURATION:2
#EXT-X-MEDIA-SEQUENCE:7
#EXT-X-DISCONTINUITY-SEQUENCE:1
#EXT-X-MAP:URI="init.mp4"
#EXT-X-PROGRAM-DATE-TIME:2026-01-01T00:00:14.000Z
#EXTINF:2.00000,
seg7.m4s
#EXT-X-DISCONTINUITY
#EXT-X-MAP:URI="init8.mp4"
#EXT-X-PROGRAM-DATE-TIME:2026-01-01T00:00:20.000Z
#EXT-X-PART:DURATION=0.50000,URI="seg8.0.m4s",INDEPENDENT=YES
#EXTINF:2.00000,
seg8.m4s
#EXT-X-PROGRAM-DATE-TIME:2026-01-01T00:00:22.000Z
#EXT-X-PART:DURATION=0.50000,URI="seg9.0.m4s",INDEPENDENT=YES
#EXT-X-PRELOAD-HINT:TYPE=PART,URI="seg9.1.m4s"
"""


def test_parse_keeps_complete_segments_and_skips_started_numbers() -> None:
    state = parse_media_playlist(OLD)
    assert [s.msn for s in state.segments] == [7, 8]
    assert [s.init_uri for s in state.segments] == ["init.mp4", "init8.mp4"]
    assert [s.discontinuity for s in state.segments] == [False, True]
    # Segment 9 was started (a part and a hint): players know that number, so it is never reused.
    assert state.next_msn == 10 and state.discontinuity_sequence == 1


def _part(packager: StreamPackager, name: str, start: float) -> None:
    rendition = packager.rendition(name)
    assert rendition is not None
    rendition.add_part(b"moof+mdat", FragmentInfo(base_time=int(start * 90000), duration=45000, samples=15,
                                                  starts_with_sync=True), 90000)


def test_packager_continues_numbering_after_a_discontinuity(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    storage.write("s/master.m3u8", b"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\n360p/index.m3u8\n")
    storage.write("s/360p/index.m3u8", OLD.encode())
    resume = read_resume(storage, "s")
    assert list(resume) == ["360p"]
    packager = StreamPackager("s", storage, PackagingConfig(window_segments=4), resume=resume)
    rendition = packager.add_rendition(select_ladder(640, 360, "360p")[0])
    rendition.set_init(b"init", "avc1.64001e")
    for second in range(3):
        _part(packager, "360p", float(second))
    text = rendition.render()
    assert "#EXT-X-MEDIA-SEQUENCE:7\n" in text and "#EXT-X-DISCONTINUITY-SEQUENCE:1\n" in text
    lines = text.splitlines()
    # Old window first, then a discontinuity, a new init segment (the old one stays for seg7/seg8) and seg10.
    assert lines.index("seg7.m4s") < lines.index("seg8.m4s") < lines.index("seg10.m4s")
    after_old = lines[lines.index("seg8.m4s") + 1:]
    assert after_old[0] == "#EXT-X-DISCONTINUITY" and after_old[1] == '#EXT-X-MAP:URI="init10.mp4"'
    assert (tmp_path / "s/360p/init10.mp4").read_bytes() == b"init"


def test_end_playlists_closes_what_a_dead_worker_left(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    storage.write("s/master.m3u8", b"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\n360p/index.m3u8\n")
    storage.write("s/360p/index.m3u8", OLD.encode())
    end_playlists(storage, "s")
    text = (tmp_path / "s/360p/index.m3u8").read_text()
    assert text.endswith("#EXT-X-ENDLIST\n") and "PRELOAD-HINT" not in text


def test_storage_url_selects_the_backend(tmp_path: Path) -> None:
    assert isinstance(open_storage(Settings(NCHAT_MEDIA_DIR=tmp_path)), LocalStorage)
    local = open_storage(Settings(NCHAT_STORAGE_URL=f"file://{tmp_path}/shared"))
    assert isinstance(local, LocalStorage) and local.root == tmp_path / "shared"
    assert public_url(local, "s/master.m3u8") is None
    s3 = open_storage(Settings(NCHAT_STORAGE_URL="s3://bucket/live?endpoint=http://127.0.0.1:9&region=us-east-1"))
    assert isinstance(s3, S3Storage) and s3.prefix == "live/"
    assert public_url(s3, "s/master.m3u8") == "http://127.0.0.1:9/bucket/live/s/master.m3u8"
    with pytest.raises(ConfigError):
        open_storage(Settings(NCHAT_STORAGE_URL="ftp://x"))
