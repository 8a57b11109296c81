"""Stream analytics (the guide's key metrics) and their CSV export. Stream managers only.

Definitions:
- peak concurrent viewers: the stream's peak_viewers counter;
- total views: viewer sessions opened; unique viewers: distinct signed-in users plus anonymous sessions;
- average watch time: mean watch_duration_seconds over sessions;
- buffering ratio: total buffering time / total watch time;
- chat engagement rate: distinct chatters / unique viewers;
- reaction rate: reactions per minute of stream time;
- quality switching frequency: quality switches per viewer-hour watched;
- viewer timeline: viewers whose session overlapped each minute since the start.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime
from typing import Any

from ..db import Session
from ._common import Row, load_stream, require_manager, utcnow

TIMELINE_MAX_MINUTES = 24 * 60


async def stream_analytics(session: Session, stream_id: str, *, now: datetime | None = None) -> Row:
    stream = await load_stream(session, stream_id)
    await require_manager(session, stream["id"], "see analytics")
    now = now or utcnow()
    viewers = await session.fetchrow(
        "SELECT count(*)::int AS sessions, "
        "count(DISTINCT coalesce(user_id::text, 'anon:' || id::text))::int AS unique_viewers, "
        "coalesce(avg(watch_duration_seconds), 0)::float AS avg_watch, "
        "coalesce(sum(watch_duration_seconds), 0)::bigint AS watch_total, "
        "coalesce(sum(buffering_ms), 0)::bigint AS buffering_total, "
        "coalesce(sum(quality_switches), 0)::bigint AS switches "
        "FROM nchat_stream_viewers WHERE stream_id = $1",
        stream["id"],
    )
    chatters = await session.fetchval(
        "SELECT count(DISTINCT user_id)::int FROM nchat_stream_chat_messages WHERE stream_id = $1", stream["id"])
    top = await session.fetch(
        "SELECT emoji, count(*)::int AS count FROM nchat_stream_reactions WHERE stream_id = $1 "
        "GROUP BY emoji ORDER BY count DESC, emoji LIMIT 5",
        stream["id"],
    )
    assert viewers is not None
    start = stream["started_at"]
    end = stream["ended_at"] or now
    minutes = max((end - start).total_seconds() / 60, 1 / 60) if start else 0.0
    timeline: list[Row] = []
    if start:
        records = await session.fetch(
            "SELECT m AS minute, (SELECT count(*)::int FROM nchat_stream_viewers v WHERE v.stream_id = $1 "
            "  AND v.joined_at < m + interval '1 minute' AND coalesce(v.left_at, $3) > m) AS viewers "
            "FROM generate_series(date_trunc('minute', $2::timestamptz), $3::timestamptz, interval '1 minute') m "
            "LIMIT $4",
            stream["id"], start, end, TIMELINE_MAX_MINUTES,
        )
        timeline = [{"minute": r["minute"], "viewers": r["viewers"]} for r in records]
    unique = viewers["unique_viewers"]
    watch_total = viewers["watch_total"]
    return {
        "stream_id": stream["id"],
        "status": stream["status"],
        "duration_seconds": stream["duration_seconds"] if stream["duration_seconds"] is not None
        else int(minutes * 60),
        "peak_concurrent_viewers": stream["peak_viewers"],
        "current_viewers": stream["current_viewers"],
        "total_views": viewers["sessions"],
        "unique_viewers": unique,
        "average_watch_seconds": round(viewers["avg_watch"], 1),
        "buffering_ratio": round(viewers["buffering_total"] / (watch_total * 1000), 4) if watch_total else 0.0,
        "total_chat_messages": stream["total_chat_messages"],
        "chat_engagement_rate": round(chatters / unique, 4) if unique else 0.0,
        "total_reactions": stream["total_reactions"],
        "reactions_per_minute": round(stream["total_reactions"] / minutes, 2) if minutes else 0.0,
        "quality_switches_per_viewer_hour": round(viewers["switches"] / (watch_total / 3600), 2)
        if watch_total else 0.0,
        "viewer_timeline": timeline,
        "top_emojis": [{"emoji": r["emoji"], "count": r["count"]} for r in top],
    }


def analytics_csv(analytics: Row) -> str:
    """Summary rows ("metric", name, value), then the timeline ("minute", time, viewers) and top emojis."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["section", "name", "value"])
    for key, value in analytics.items():
        if key not in ("viewer_timeline", "top_emojis"):
            writer.writerow(["metric", key, _cell(value)])
    for point in analytics["viewer_timeline"]:
        writer.writerow(["minute", point["minute"].isoformat(), point["viewers"]])
    for item in analytics["top_emojis"]:
        writer.writerow(["emoji", item["emoji"], item["count"]])
    return out.getvalue()


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    # A leading =, +, - or @ makes spreadsheets evaluate the cell; quote it as text.
    return "'" + text if text[:1] in ("=", "+", "-", "@") and not _is_number(text) else text


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
