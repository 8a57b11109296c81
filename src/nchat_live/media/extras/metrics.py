"""Ingest quality every few seconds: transport figures from the publisher, encoder figures from the pipeline.

`QualitySampler` is a `StreamObserver` the runtime attaches to the worker: a sampling task per
ingest session, from its start to its end.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from ...auth import Claims
from ...db import Database
from ..worker.observers import StreamObserver
from ..worker.streams import IngestSession

log = logging.getLogger(__name__)


def health_score(fps: float | None, target_fps: float, loss: float | None, speed: float | None,
                 rtt_ms: float | None) -> int:
    """0-100: full marks for steady frame rate, no loss, real-time encoding and a short round trip."""
    score = 100.0
    if fps is not None and target_fps:
        score -= max(0.0, 1 - fps / target_fps) * 40
    if loss:
        score -= min(30.0, loss * 6)
    if speed is not None and speed < 1.0:
        score -= min(20.0, (1.0 - speed) * 40)
    if rtt_ms is not None and rtt_ms > 150:
        score -= min(10.0, (rtt_ms - 150) / 50)
    return max(0, min(100, round(score)))


async def collect_and_store(database: Database, live: IngestSession, previous: dict[str, Any]) -> dict[str, Any]:
    """One sample: insert into nchat_stream_quality_metrics and publish `quality.update`."""
    now = time.monotonic()
    stats = live.pipeline.stats
    elapsed = max(now - previous["at"], 1e-3)
    fps = (stats.frames_in - previous["frames"]) / elapsed
    dropped = stats.frames_dropped - previous["dropped"]
    previous.update(at=now, frames=stats.frames_in, dropped=stats.frames_dropped)
    transport: dict[str, Any] = {}
    if live.publisher is not None:
        try:
            transport = await live.publisher.stats()
        except Exception:
            transport = {}
    renditions = live.pipeline.renditions
    target_fps = renditions[0].fps if renditions else 30
    bitrate = sum(r.video_kbps + r.audio_kbps for r in renditions) or None
    resolution = f"{stats.source_width}x{stats.source_height}" if stats.source_width else None
    speed = round(stats.speed, 3) if stats.speed else None
    sample = {
        "stream_id": live.stream_id,
        "channel_id": live.info.channel_id,
        "bitrate_kbps": bitrate,
        "upload_bitrate_kbps": transport.get("upload_bitrate_kbps"),
        "fps": round(fps, 2),
        "resolution": resolution,
        "dropped_frames": dropped,
        "packet_loss_percent": transport.get("packet_loss_percent"),
        "jitter_ms": transport.get("jitter_ms"),
        "rtt_ms": transport.get("rtt_ms"),
        "encoder_speed": speed,
        "health_score": health_score(fps, target_fps, transport.get("packet_loss_percent"), speed,
                                     transport.get("rtt_ms")),
        "renditions": [r.name for r in renditions],
        "trimmed_renditions": list(stats.trimmed),
        "ingest": live.publisher.kind if live.publisher is not None else None,
    }
    metadata = {"renditions": sample["renditions"], "trimmed_renditions": sample["trimmed_renditions"],
                "ingest": sample["ingest"]}
    async with database.session(Claims.service()) as session:
        viewers = await session.fetchval("SELECT current_viewers FROM nchat_streams WHERE id = $1", live.stream_id)
        row = await session.fetchrow(
            "INSERT INTO nchat_stream_quality_metrics (stream_id, current_viewer_count, bitrate_kbps, "
            "upload_bitrate_kbps, fps, resolution, dropped_frames, packet_loss_percent, jitter_ms, rtt_ms, "
            "encoder_speed, health_score, metadata) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13::jsonb) RETURNING id, recorded_at",
            live.stream_id, viewers or 0, sample["bitrate_kbps"], sample["upload_bitrate_kbps"], sample["fps"],
            resolution, dropped, sample["packet_loss_percent"], sample["jitter_ms"], sample["rtt_ms"], speed,
            sample["health_score"], json.dumps(metadata),
        )
        assert row is not None
        sample["id"] = str(row["id"])
        sample["recorded_at"] = row["recorded_at"].isoformat()
        sample["current_viewer_count"] = viewers or 0
        session.emit("quality.update", sample)
    return sample


class QualitySampler(StreamObserver):
    """Samples every live ingest session each `interval` seconds (`nchat_stream_quality_metrics`)."""

    def __init__(self, database: Database, interval: float) -> None:
        self.database = database
        self.interval = interval
        self._tasks: dict[int, asyncio.Task[None]] = {}

    def on_started(self, session: IngestSession) -> None:
        self._tasks[id(session)] = asyncio.create_task(self._loop(session), name=f"metrics-{session.stream_id[:8]}")

    def on_ended(self, session: IngestSession, reason: str) -> None:
        task = self._tasks.pop(id(session), None)
        if task is not None:
            task.cancel()

    def stop(self) -> None:
        for task in self._tasks.values():
            task.cancel()
        self._tasks.clear()

    async def _loop(self, live: IngestSession) -> None:
        previous: dict[str, Any] = {"at": time.monotonic(), "frames": 0, "dropped": 0}
        while True:
            await asyncio.sleep(self.interval)
            if not live.went_live:
                continue
            try:
                await collect_and_store(self.database, live, previous)
            except Exception:
                log.exception("stream %s: metrics failed", live.stream_id)
