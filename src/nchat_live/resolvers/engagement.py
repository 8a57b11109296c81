"""Engagement, highlights and chapters (issue 18): the pure parts (a bucket's score, peak detection, a
title from the chat's most used terms) and the domain operations on highlights and chapters, which run
under the caller's RLS (migration 0016) so the table API and the domain answer alike.

Peak detection (README, "Highlights and chapters"): each bucket of a few seconds gets a weighted score
(chat 1, reactions 0.5, viewer joins 0.5, questions 2, upvotes 1). A bucket is hot when its score is
above a rolling baseline, the median of the previous `baseline_buckets` (two minutes of 5 s buckets),
by more than `k` times their scaled median absolute deviation (1.4826 x MAD, about one standard
deviation of normal noise), the spread floored at `min_spread` so a silent stream does not flag a single
message; the first `warmup_buckets` are judged against the opening buckets themselves. Consecutive hot
buckets (a gap of one allowed) merge into one run; runs shorter than `min_buckets` are dropped; each
run's peak is its highest bucket; peaks closer than `min_separation_buckets` keep only the stronger one.
The median and MAD are robust: a burst does not raise its own baseline the way a mean would.
"""

from __future__ import annotations

import re
import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ..db import Session
from ..errors import NotFound, PermissionDenied, ValidationFailed
from ..ids import is_canonical_uuid

WEIGHTS = {"chat_messages": 1.0, "reactions": 0.5, "viewer_joins": 0.5, "questions": 2.0, "upvotes": 1.0}
HIGHLIGHT_STATUSES = ("suggested", "kept", "discarded")
MAX_CHAPTER_TITLE = 200


@dataclass(frozen=True, slots=True)
class PeakParams:
    baseline_buckets: int = 24
    k: float = 4.0
    min_spread: float = 1.0
    min_buckets: int = 1
    min_separation_buckets: int = 6
    warmup_buckets: int = 6


@dataclass(frozen=True, slots=True)
class Peak:
    first: int  # first hot bucket of the run
    last: int  # last hot bucket of the run
    peak: int  # the highest bucket
    score: float


def bucket_score(row: dict[str, Any]) -> float:
    return sum(weight * float(row.get(name) or 0) for name, weight in WEIGHTS.items())


def score_series(rows: Iterable[dict[str, Any]], length: int = 0) -> list[float]:
    """Scores per bucket index from engagement rows (absent buckets are 0)."""
    by_bucket = {int(r["bucket"]): bucket_score(r) for r in rows}
    size = max(length, max(by_bucket, default=-1) + 1)
    return [by_bucket.get(i, 0.0) for i in range(size)]


def detect_peaks(scores: Sequence[float], params: PeakParams = PeakParams()) -> list[Peak]:
    """The peaks of an engagement series, in time order (see the module docstring)."""
    hot: list[int] = []
    for i, value in enumerate(scores):
        # The opening buckets, with little or no history, are judged against the opening itself.
        window = scores[max(0, i - params.baseline_buckets):max(i, params.warmup_buckets)]
        baseline = statistics.median(window) if window else 0.0
        # MAD x 1.4826 estimates the standard deviation of normal noise.
        spread = 1.4826 * statistics.median(abs(x - baseline) for x in window) if window else 0.0
        if value > baseline + params.k * max(spread, params.min_spread):
            hot.append(i)
    runs: list[list[int]] = []
    for i in hot:
        if runs and i - runs[-1][-1] <= 2:
            runs[-1].append(i)
        else:
            runs.append([i])
    peaks = []
    for run in runs:
        if run[-1] - run[0] + 1 < params.min_buckets:
            continue
        top = max(run, key=lambda b: (scores[b], -b))
        peaks.append(Peak(run[0], run[-1], top, float(scores[top])))
    kept: list[Peak] = []
    for peak in sorted(peaks, key=lambda p: (-p.score, p.peak)):
        if all(abs(peak.peak - other.peak) >= params.min_separation_buckets for other in kept):
            kept.append(peak)
    return sorted(kept, key=lambda p: p.peak)


_STOPWORD_TEXT = """
a about above after again all also am an and any are as at be because been before being below between both
but by can could did do does doing done down during each else few for from further get got had has have
having he her here hers him his how i if in into is it its itself just like lol me more most my no nor not
now of off oh ok okay on once only or other our ours out over own really same she should so some such than
that the their them then there these they this those through to too under until up very was way we were
what when where which while who whom why will with would yeah yes you your yours omg wow haha hahaha lmao
"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())
_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?")


def top_terms(messages: Iterable[str], count: int = 3, min_length: int = 3) -> list[str]:
    """The most used words of some chat messages: letters only (emoji, digits and punctuation go),
    lower-cased, stopwords and words shorter than `min_length` dropped; ties go to the earlier word.
    A word counts once per message, so one spammer does not name the moment."""
    counts: Counter[str] = Counter()
    first: dict[str, int] = {}
    for message in messages:
        words = {w.lower() for w in _WORD.findall(message)}
        for word in sorted(words, key=lambda w: message.lower().find(w)):
            if len(word) < min_length or word in STOPWORDS:
                continue
            counts[word] += 1
            first.setdefault(word, len(first))
    return sorted(counts, key=lambda w: (-counts[w], first[w]))[:count]


def highlight_title(terms: Sequence[str], at_seconds: float) -> str:
    if not terms:
        minutes, seconds = divmod(int(at_seconds), 60)
        return f"Highlight at {minutes}:{seconds:02d}"
    return " · ".join(t.capitalize() for t in terms)


# -- domain operations ----------------------------------------------------------------------------

HIGHLIGHT_COLUMNS = ("id, stream_id, clip_id, peak_seconds, start_seconds, end_seconds, score, title, terms, status, "
                     "decided_by, decided_at, created_at")
CHAPTER_COLUMNS = "id, stream_id, start_seconds, title, source, highlight_id, created_by, created_at"


def is_stream_id(value: str) -> bool:
    return is_canonical_uuid(value)


def _id(value: str, kind: str) -> str:
    if not is_canonical_uuid(value):
        raise NotFound(f"{kind} '{value}' not found", code=f"{kind}-not-found")
    return value


async def highlights(session: Session, stream_id: str) -> list[dict[str, Any]]:
    """A stream's highlights the caller may see: all of them for its managers, the kept ones otherwise."""
    rows = await session.fetch(
        f"SELECT {HIGHLIGHT_COLUMNS} FROM nchat_stream_highlights WHERE stream_id = $1 ORDER BY peak_seconds",
        _id(stream_id, "stream"))
    return [dict(r) for r in rows]


async def set_highlight_status(session: Session, highlight_id: str, status: str) -> dict[str, Any]:
    """Keep or discard a suggested highlight (the stream's broadcaster or channel moderators)."""
    if status not in HIGHLIGHT_STATUSES:
        raise ValidationFailed(f"highlight status '{status}' is invalid; expected one of "
                               f"{', '.join(HIGHLIGHT_STATUSES)}", code="invalid-highlight-status")
    visible = await session.fetchrow(
        "SELECT id, stream_id FROM nchat_stream_highlights WHERE id = $1", _id(highlight_id, "highlight"))
    if visible is None:
        raise NotFound(f"highlight '{highlight_id}' not found", code="highlight-not-found")
    row = await session.fetchrow(
        f"UPDATE nchat_stream_highlights SET status = $2 WHERE id = $1 RETURNING {HIGHLIGHT_COLUMNS}",
        highlight_id, status)
    if row is None:
        raise PermissionDenied(f"only the broadcaster or the channel's moderators can decide highlight "
                               f"'{highlight_id}'")
    return dict(row)


async def chapters(session: Session, stream_id: str) -> list[dict[str, Any]]:
    rows = await session.fetch(
        f"SELECT {CHAPTER_COLUMNS} FROM nchat_stream_chapters WHERE stream_id = $1 ORDER BY start_seconds, created_at",
        _id(stream_id, "stream"))
    return [dict(r) for r in rows]


def _chapter_fields(title: str | None, start_seconds: float | None) -> None:
    if title is not None and not 1 <= len(title.strip()) <= MAX_CHAPTER_TITLE:
        raise ValidationFailed(f"chapter title has {len(title.strip())} characters; expected 1 to "
                               f"{MAX_CHAPTER_TITLE}", code="invalid-chapter")
    if start_seconds is not None and not 0 <= start_seconds < 7 * 86400:
        raise ValidationFailed(f"chapter start {start_seconds:g} s is invalid; expected 0 or more seconds "
                               "into the recording", code="invalid-chapter")


async def add_chapter(session: Session, stream_id: str, start_seconds: float, title: str) -> dict[str, Any]:
    _chapter_fields(title, start_seconds)
    if not await session.fetchval("SELECT nchat.can_read_stream($1)", _id(stream_id, "stream")):
        raise NotFound(f"stream '{stream_id}' not found", code="stream-not-found")
    if not await session.fetchval("SELECT nchat.can_manage_stream($1)", stream_id):
        raise PermissionDenied(f"only the broadcaster or the channel's moderators can edit the chapters of "
                               f"stream '{stream_id}'")
    row = await session.fetchrow(
        f"INSERT INTO nchat_stream_chapters (stream_id, start_seconds, title) VALUES ($1, $2, $3) "
        f"RETURNING {CHAPTER_COLUMNS}", stream_id, start_seconds, title.strip())
    assert row is not None
    return dict(row)


async def update_chapter(session: Session, chapter_id: str, *, title: str | None = None,
                         start_seconds: float | None = None) -> dict[str, Any]:
    _chapter_fields(title, start_seconds)
    if await session.fetchval("SELECT id FROM nchat_stream_chapters WHERE id = $1", _id(chapter_id, "chapter")) is None:
        raise NotFound(f"chapter '{chapter_id}' not found", code="chapter-not-found")
    row = await session.fetchrow(
        "UPDATE nchat_stream_chapters SET title = coalesce($2, title), start_seconds = coalesce($3, start_seconds) "
        f"WHERE id = $1 RETURNING {CHAPTER_COLUMNS}", chapter_id, title.strip() if title else None, start_seconds)
    if row is None:
        raise PermissionDenied(f"only the broadcaster or the channel's moderators can edit chapter '{chapter_id}'")
    return dict(row)


async def remove_chapter(session: Session, chapter_id: str) -> str:
    if await session.fetchval("SELECT id FROM nchat_stream_chapters WHERE id = $1", _id(chapter_id, "chapter")) is None:
        raise NotFound(f"chapter '{chapter_id}' not found", code="chapter-not-found")
    if await session.fetchval("DELETE FROM nchat_stream_chapters WHERE id = $1 RETURNING id", chapter_id) is None:
        raise PermissionDenied(f"only the broadcaster or the channel's moderators can remove chapter '{chapter_id}'")
    return chapter_id
