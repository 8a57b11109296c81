"""Stream analytics (the guide's key metrics) and their CSV export. Stream managers only.

Definitions:
- peak concurrent viewers: the stream's peak_viewers counter;
- total views: viewer sessions opened; unique viewers: distinct signed-in users plus anonymous sessions;
- average watch time: mean watch_duration_seconds over sessions;
- buffering ratio: total buffering time / total watch time;
- chat engagement rate: distinct chatters / unique viewers;
- reaction rate: reactions per minute of stream time;
- quality switching frequency: quality switches per viewer-hour watched;
- viewer timeline: viewers whose session overlapped each minute since the start;
- audience (migration 0017, resolvers/audience.py): sessions per country, device class, OS and
  browser, ranked; network quality: sessions per rendition last watched, per average playback
  bitrate band (the player's heartbeat reports) and per buffering-ratio band.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime
from typing import Any

from fpdf import FPDF

from ..db import Session
from ._common import Row, load_stream, require_manager, utcnow

TIMELINE_MAX_MINUTES = 24 * 60
DISTRIBUTION_MAX = 50
# (label, lower bound inclusive) in kbit/s, and buffering ratio bands (label, lower bound inclusive).
BITRATE_BANDS = (("<500 kbps", 0), ("500-1500 kbps", 500), ("1.5-3 Mbps", 1500), ("3-6 Mbps", 3000),
                 ("6+ Mbps", 6000))
BUFFERING_BANDS = (("none", 0.0), ("<1%", 1e-9), ("1-5%", 0.01), ("5-10%", 0.05), ("10%+", 0.10))
CSV_SECTIONS = {"countries": "country", "devices": "device", "operating_systems": "os", "browsers": "browser",
                "renditions": "rendition", "bitrate_histogram": "bitrate", "buffering_histogram": "buffering"}
AUDIENCE_KEYS = ("countries", "devices", "operating_systems", "browsers", "renditions", "bitrate_histogram",
                 "buffering_histogram")


async def _distribution(session: Session, stream_id: str, column: str) -> list[Row]:
    # `column` is one of this module's constants, never the caller's.
    records = await session.fetch(
        f"SELECT coalesce({column}, 'unknown') AS name, count(*)::int AS count FROM nchat_stream_viewers "
        "WHERE stream_id = $1 GROUP BY 1 ORDER BY count DESC, name LIMIT $2",
        stream_id, DISTRIBUTION_MAX,
    )
    return [{"name": r["name"], "count": r["count"]} for r in records]


async def audience_distributions(session: Session, stream_id: str) -> Row:
    """The audience and network-quality distributions of a stream's viewer sessions (ranked)."""
    result: Row = {
        "countries": await _distribution(session, stream_id, "country"),
        "devices": await _distribution(session, stream_id, "device_class"),
        "operating_systems": await _distribution(session, stream_id, "os_family"),
        "browsers": await _distribution(session, stream_id, "browser_family"),
        "renditions": await _distribution(session, stream_id, "quality"),
    }
    records = await session.fetch(
        "SELECT CASE WHEN bitrate_samples > 0 THEN bitrate_kbps_sum::float / bitrate_samples END AS kbps, "
        "CASE WHEN watch_duration_seconds > 0 THEN buffering_ms::float / (watch_duration_seconds * 1000) END "
        "AS buffering FROM nchat_stream_viewers WHERE stream_id = $1",
        stream_id,
    )
    bitrate = {label: 0 for label, _ in BITRATE_BANDS}
    buffering = {label: 0 for label, _ in BUFFERING_BANDS}
    for r in records:
        if r["kbps"] is not None:
            bitrate[_band(BITRATE_BANDS, r["kbps"])] += 1
        if r["buffering"] is not None:
            buffering[_band(BUFFERING_BANDS, r["buffering"])] += 1
    result["bitrate_histogram"] = [{"name": k, "count": v} for k, v in bitrate.items()]
    result["buffering_histogram"] = [{"name": k, "count": v} for k, v in buffering.items()]
    return result


def _band(bands: tuple[tuple[str, float], ...], value: float) -> str:
    label = bands[0][0]
    for name, lower in bands:
        if value >= lower:
            label = name
    return label


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
        **await audience_distributions(session, stream["id"]),
    }


def analytics_csv(analytics: Row) -> str:
    """Summary rows ("metric", name, value), then the timeline ("minute", time, viewers), top emojis,
    and each audience distribution (its key without the plural: "country", "device", ... , name, count)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["section", "name", "value"])
    for key, value in analytics.items():
        if key not in ("viewer_timeline", "top_emojis", *AUDIENCE_KEYS):
            writer.writerow(["metric", key, _cell(value)])
    for point in analytics["viewer_timeline"]:
        writer.writerow(["minute", point["minute"].isoformat(), point["viewers"]])
    for item in analytics["top_emojis"]:
        writer.writerow(["emoji", item["emoji"], item["count"]])
    for key in AUDIENCE_KEYS:
        for item in analytics.get(key, []):
            writer.writerow([CSV_SECTIONS[key], _cell(item["name"]), item["count"]])
    return out.getvalue()


PDF_TITLES = {"countries": "Countries", "devices": "Devices", "operating_systems": "Operating systems",
              "browsers": "Browsers", "renditions": "Renditions (last watched)",
              "bitrate_histogram": "Average playback bitrate", "buffering_histogram": "Buffering ratio"}
PDF_BARS = 12


def analytics_pdf(analytics: Row, title: str | None = None) -> bytes:
    """A report: the summary metrics, then each distribution as ranked bars (its first 12 rows)."""
    pdf = FPDF(format="A4")
    pdf.set_title(_latin(title or f"Stream {analytics['stream_id']} analytics"))
    pdf.set_creator("nchat-live")
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 16)
    pdf.cell(0, 10, _latin(title or "Stream analytics"), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 9)
    pdf.cell(0, 5, _latin(f"stream {analytics['stream_id']} - {analytics['status']}"), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    pdf.set_font("Helvetica", "", 10)
    for key, value in analytics.items():
        if key in ("viewer_timeline", "top_emojis", "stream_id", "status", *AUDIENCE_KEYS):
            continue
        pdf.cell(80, 6, _latin(key.replace("_", " ")), border="B")
        pdf.cell(0, 6, _latin(str(value)), border="B", new_x="LMARGIN", new_y="NEXT")
    for key in AUDIENCE_KEYS:
        items = analytics.get(key, [])[:PDF_BARS]
        if pdf.get_y() > 250:
            pdf.add_page()
        pdf.ln(4)
        pdf.set_font("Helvetica", "B", 12)
        pdf.cell(0, 8, PDF_TITLES[key], new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", "", 9)
        total = sum(i["count"] for i in items) or 1
        top = max((i["count"] for i in items), default=0) or 1
        if not items:
            pdf.cell(0, 5, "no sessions", new_x="LMARGIN", new_y="NEXT")
        for item in items:
            y = pdf.get_y()
            pdf.cell(45, 5, _latin(str(item["name"]))[:28])
            pdf.set_fill_color(70, 110, 200)
            width = 100 * item["count"] / top
            if width > 0:
                pdf.rect(pdf.l_margin + 45, y + 1, width, 3.5, style="F")
            pdf.set_x(pdf.l_margin + 150)
            pdf.cell(0, 5, f"{item['count']} ({100 * item['count'] / total:.0f}%)", new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def _latin(text: str) -> str:
    # The core PDF fonts are Latin-1; anything else (emoji) prints as "?".
    return text.encode("latin-1", "replace").decode("latin-1")


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
