"""Peak detection and highlight titles (resolvers/engagement.py): pure functions on synthetic series."""

from __future__ import annotations

import random

from nchat_live.resolvers.engagement import (
    PeakParams,
    bucket_score,
    detect_peaks,
    highlight_title,
    score_series,
    top_terms,
)


def _series(length: int, peaks: dict[int, float], noise: float = 2.0, seed: int = 7) -> list[float]:
    rng = random.Random(seed)
    values = [max(0.0, 4 + rng.uniform(-noise, noise)) for _ in range(length)]
    for at, height in peaks.items():
        values[at] += height
    return values


def test_known_peaks_are_found_in_a_noisy_series() -> None:
    scores = _series(240, {40: 30, 41: 18, 120: 25, 200: 40})
    peaks = detect_peaks(scores)
    assert [p.peak for p in peaks] == [40, 120, 200]
    assert (peaks[0].first, peaks[0].last) == (40, 41)  # adjacent hot buckets merge into one run


def test_noise_alone_has_no_peak() -> None:
    assert detect_peaks(_series(300, {}, noise=3.0)) == []
    assert detect_peaks([0.0] * 50) == []


def test_a_single_message_in_silence_is_not_a_peak() -> None:
    scores = [0.0] * 30
    scores[10] = 1.0
    assert detect_peaks(scores) == []


def test_peaks_closer_than_the_separation_keep_the_stronger() -> None:
    scores = _series(100, {50: 20, 53: 35})
    peaks = detect_peaks(scores, PeakParams(min_separation_buckets=6))
    assert [p.peak for p in peaks] == [53]


def test_short_runs_are_dropped_with_a_minimum_duration() -> None:
    scores = _series(100, {30: 30, 60: 30, 61: 30, 62: 30})
    assert [p.peak for p in detect_peaks(scores, PeakParams(min_buckets=2))] == [60]


def test_the_baseline_follows_a_rising_level() -> None:
    # The audience grows from ~4 to ~20 per bucket at bucket 100: the surge itself is one moment, then the
    # rolling median takes the new level as normal and only the real peak stands out.
    scores = _series(100, {}) + [v + 16 for v in _series(200, {150: 40}, seed=3)]
    first, second = detect_peaks(scores)
    assert first.first >= 100 and first.last <= 100 + 12 and second.peak == 250


def test_scores_weigh_the_kinds_of_engagement() -> None:
    row = {"bucket": 2, "chat_messages": 3, "reactions": 4, "viewer_joins": 2, "questions": 1, "upvotes": 2}
    assert bucket_score(row) == 3 + 2 + 1 + 2 + 2
    assert score_series([row], length=4) == [0.0, 0.0, 10.0, 0.0]


def test_top_terms_drop_stopwords_emoji_short_words_and_count_once_per_message() -> None:
    messages = ["GOAL goal goal!!! ⚽⚽", "what a goal", "penalty? no way", "penalty was clear 100%", "ok 🎉",
                "Penalty, clearly"]
    assert top_terms(messages) == ["penalty", "goal", "clear"]
    assert top_terms(["🔥🔥", "a b c", "12345"]) == []


def test_titles() -> None:
    assert highlight_title(["goal", "penalty"], 65) == "Goal · Penalty"
    assert highlight_title([], 65.4) == "Highlight at 1:05"
