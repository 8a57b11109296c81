"""Broadcast quality: metrics reported every 5 s, a health score, and the stream's health summary.

Health score (0..100) = 100 minus these penalties, each capped, missing metrics costing nothing:

- bitrate (up to 30): 30 x (1 - bitrate / target), target by resolution height
  (1080p 4500, 720p 2500, 480p 1000, 360p 600 kbps; other heights scale from the nearest);
- frame rate (up to 20): 20 x (1 - fps / expected fps), expected = the stream's fps or 30;
- dropped frames (up to 20): 200 x dropped / frames in the 5 s window (10 % dropped costs all 20);
- packet loss (up to 20): 4 points per percent (5 % costs all 20);
- latency (up to 10): 1 point per 400 ms above 1 s (5 s costs all 10).

The result is rounded to an integer. >= 90 is "excellent", >= 70 "good", >= 50 "fair", else "poor".
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from ..db import Session
from ..errors import PermissionDenied, ValidationFailed
from ._common import Row, StreamNotLive, event_base, load_stream, require_manager, row, utcnow

REPORT_INTERVAL_SECONDS = 5
BITRATE_TARGETS = {1080: 4500, 720: 2500, 480: 1000, 360: 600}


@dataclass
class QualityReport:
    bitrate_kbps: int | None = None
    upload_bitrate_kbps: int | None = None
    fps: float | None = None
    resolution: str | None = None
    dropped_frames: int | None = None
    latency_ms: int | None = None
    packet_loss_percent: float | None = None
    jitter_ms: float | None = None
    rtt_ms: float | None = None
    encoder_speed: float | None = None

    def validate(self) -> None:
        for name in ("bitrate_kbps", "upload_bitrate_kbps", "fps", "dropped_frames", "latency_ms", "jitter_ms",
                     "rtt_ms", "encoder_speed"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValidationFailed(f"{name} {value} is negative")
        if self.fps is not None and self.fps > 240:
            raise ValidationFailed(f"fps {self.fps} is above 240")
        if self.packet_loss_percent is not None and not 0 <= self.packet_loss_percent <= 100:
            raise ValidationFailed(f"packetLossPercent {self.packet_loss_percent} is outside 0..100")
        if self.resolution is not None and _height(self.resolution) is None:
            raise ValidationFailed(f"resolution '{self.resolution}' is not WIDTHxHEIGHT or e.g. 720p")


def _height(resolution: str) -> int | None:
    text = resolution.strip().lower()
    try:
        if text.endswith("p"):
            return int(text[:-1])
        if "x" in text:
            return int(text.split("x", 1)[1])
    except ValueError:
        return None
    return None


def bitrate_target(resolution: str | None) -> int | None:
    height = _height(resolution) if resolution else None
    if not height:
        return None
    nearest = min(BITRATE_TARGETS, key=lambda h: abs(h - height))
    return round(BITRATE_TARGETS[nearest] * height / nearest)


def health_score(report: QualityReport, expected_fps: float | None = None) -> int:
    """The documented formula (see the module docstring)."""
    penalty = 0.0
    target = bitrate_target(report.resolution)
    if report.bitrate_kbps is not None and target:
        penalty += 30 * max(0.0, 1 - report.bitrate_kbps / target)
    fps_goal = expected_fps or 30
    if report.fps is not None:
        penalty += 20 * max(0.0, 1 - report.fps / fps_goal)
    if report.dropped_frames is not None:
        frames = (report.fps or fps_goal) * REPORT_INTERVAL_SECONDS
        penalty += min(20.0, 200 * report.dropped_frames / frames) if frames else 0
    if report.packet_loss_percent is not None:
        penalty += min(20.0, 4 * report.packet_loss_percent)
    if report.latency_ms is not None:
        penalty += min(10.0, max(0, report.latency_ms - 1000) / 400)
    return max(0, min(100, round(100 - penalty)))


def health_label(score: int | None) -> str:
    if score is None:
        return "unknown"
    return "excellent" if score >= 90 else "good" if score >= 70 else "fair" if score >= 50 else "poor"


async def report_quality_metrics(
    session: Session, stream_id: str, report: QualityReport, *, now: datetime | None = None
) -> Row:
    """Store one report from the broadcaster (or the media server as the service) and publish it."""
    report.validate()
    stream = await load_stream(session, stream_id)
    if not session.claims.is_admin and not await session.fetchval("SELECT nchat.is_broadcaster($1)", stream["id"]):
        raise PermissionDenied("only the broadcaster reports quality metrics")
    if stream["status"] not in ("preparing", "live", "ending"):
        raise StreamNotLive(f"the stream is '{stream['status']}'; quality is reported while it is live")
    score = health_score(report, stream["fps"])
    values: dict[str, Any] = asdict(report)
    record = await session.fetchrow(
        "INSERT INTO nchat_stream_quality_metrics (stream_id, recorded_at, current_viewer_count, bitrate_kbps, "
        "upload_bitrate_kbps, fps, resolution, dropped_frames, latency_ms, packet_loss_percent, jitter_ms, rtt_ms, "
        "encoder_speed, health_score) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) "
        "RETURNING id, recorded_at",
        stream["id"], now or utcnow(), stream["current_viewers"], *values.values(), score,
    )
    assert record is not None  # INSERT ... RETURNING returns the row it inserted
    metrics = {**values, "id": str(record["id"]), "stream_id": stream["id"], "recorded_at": record["recorded_at"],
               "current_viewer_count": stream["current_viewers"], "health_score": score,
               "health": health_label(score)}
    session.emit("quality.update", {**event_base(stream), **{k: v for k, v in metrics.items() if k != "recorded_at"},
                                    "recorded_at": metrics["recorded_at"].isoformat()})
    return metrics


async def stream_health(session: Session, stream_id: str, *, now: datetime | None = None) -> Row:
    """Latest report, the average score over the last minute and the sample count (managers only)."""
    stream = await load_stream(session, stream_id)
    await require_manager(session, stream["id"], "see stream health")
    latest = await session.fetchrow(
        "SELECT * FROM nchat_stream_quality_metrics WHERE stream_id = $1 ORDER BY recorded_at DESC LIMIT 1",
        stream["id"],
    )
    since = (latest["recorded_at"] if latest else (now or utcnow())) - timedelta(minutes=1)
    agg = await session.fetchrow(
        "SELECT avg(health_score)::float AS avg_score, count(*)::int AS samples FROM nchat_stream_quality_metrics "
        "WHERE stream_id = $1 AND recorded_at > $2",
        stream["id"], since,
    )
    score = latest["health_score"] if latest else None
    return {
        "stream_id": stream["id"], "status": stream["status"], "health_score": score, "health": health_label(score),
        "average_score_1m": round(agg["avg_score"], 1) if agg and agg["avg_score"] is not None else None,
        "samples_1m": agg["samples"] if agg else 0,
        "latest": {k: (float(v) if k in ("fps", "packet_loss_percent", "jitter_ms", "rtt_ms", "encoder_speed")
                       and v is not None else v) for k, v in row(latest).items()} if latest else None,
        "current_viewers": stream["current_viewers"],
    }
