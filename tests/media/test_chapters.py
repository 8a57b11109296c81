"""Chapters as media (media/extras/chapters.py, hls/playlists.with_dateranges): WebVTT cues and
EXT-X-DATERANGE tags from chapter rows, without a database."""

from __future__ import annotations

from datetime import UTC, datetime

from nchat_live.media.extras.chapters import Chapter, RecordingChapters, playlist_with_chapters, render_vtt, spans
from nchat_live.media.extras.recording import RecordedSegment
from nchat_live.media.hls.playlists import render_vod

BASE = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
CHAPTERS = [Chapter("c2", 65.25, "Goal · Penalty"), Chapter("c1", 0.0, "Start"), Chapter("c3", 200.0, "Past the end")]


def test_spans_end_at_the_next_chapter_or_the_recording() -> None:
    assert [(c.id, end) for c, end in spans(CHAPTERS, 120.0)] == [("c1", 65.25), ("c2", 120.0)]


def test_vtt_cues() -> None:
    text = render_vtt([*CHAPTERS, Chapter("c4", 70.0, "a --> b\nc")], 3725.5)
    assert text == ("WEBVTT\n\nc1\n00:00:00.000 --> 00:01:05.250\nStart\n\n"
                    "c2\n00:01:05.250 --> 00:01:10.000\nGoal · Penalty\n\n"
                    "c4\n00:01:10.000 --> 00:03:20.000\na -> b c\n\n"
                    "c3\n00:03:20.000 --> 01:02:05.500\nPast the end\n")
    assert render_vtt([], 10.0) == "WEBVTT\n"


def test_dateranges_in_a_vod_playlist() -> None:
    vod = render_vod([RecordedSegment("seg0.m4s", 2.0, False), RecordedSegment("seg1.m4s", 2.0, False)])
    text = playlist_with_chapters(vod, RecordingChapters(BASE, 4.0, [Chapter("a", 0.0, "Start"),
                                                                     Chapter("b", 2.5, 'Say "hi"')]))
    lines = text.splitlines()
    assert lines[lines.index('#EXT-X-MAP:URI="init.mp4"') + 1:][:4] == [
        '#EXT-X-DATERANGE:ID="a",CLASS="com.nchat.chapter",START-DATE="2026-03-01T12:00:00.000Z",DURATION=2.500,'
        'X-TITLE="Start"',
        '#EXT-X-DATERANGE:ID="b",CLASS="com.nchat.chapter",START-DATE="2026-03-01T12:00:02.500Z",DURATION=1.500,'
        "X-TITLE=\"Say 'hi'\"",
        "#EXT-X-PROGRAM-DATE-TIME:2026-03-01T12:00:00.000Z",
        "#EXTINF:2.00000,",
    ]
    assert text.endswith("#EXT-X-ENDLIST\n") and text.count("#EXTINF") == 2
    # No chapters (or no start time): the playlist as recorded.
    assert playlist_with_chapters(vod, RecordingChapters(BASE, 4.0, [])) == vod
    assert playlist_with_chapters(vod, RecordingChapters(None, 4.0, [Chapter("a", 0.0, "x")])) == vod
