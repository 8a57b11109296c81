"""The media metrics on /metrics move: encoder speed per rendition, segment latency, streams ingested."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from prometheus_client import REGISTRY

from nchat_live.auth import Claims
from nchat_live.config import Settings
from nchat_live.media.storage.local import LocalStorage
from nchat_live.media.transcode.pipeline import StreamPipeline
from nchat_live.runtime import Runtime
from tests.media.test_control import FakePublisher
from tests.media.test_pipeline import frames
from tests.support import World


def _value(name: str, labels: dict[str, str] | None = None) -> float | None:
    return REGISTRY.get_sample_value(name, labels or {})


def test_pipeline_exports_encoder_speed_per_rendition_and_segment_latency(tmp_path: Path) -> None:
    segments_before = _value("nchat_segment_latency_seconds_count") or 0.0
    pipeline = StreamPipeline("metrics-1", LocalStorage(tmp_path), max_resolution="480p",
                              max_backlog_seconds=float("inf"))
    for frame in frames(854, 480, 150):  # 5 s at 30 fps: segments at 0, 2 and 4 s
        pipeline.push_video(frame)
    deadline = time.monotonic() + 30
    speeds: dict[str, float | None] = {}
    while time.monotonic() < deadline:
        speeds = {name: _value("nchat_encoder_speed", {"stream_id": "metrics-1", "rendition": name})
                  for name in ("480p", "360p")}
        if all(v is not None for v in speeds.values()):
            break
        time.sleep(0.02)
    assert all(v is not None and v > 0 for v in speeds.values()), speeds
    pipeline.close()
    # Each rendition's segments were observed; a closed pipeline leaves no encoder speed behind.
    assert (_value("nchat_segment_latency_seconds_count") or 0.0) - segments_before >= 4
    assert _value("nchat_encoder_speed", {"stream_id": "metrics-1", "rendition": "480p"}) is None


async def test_live_streams_counts_streams_ingested_here(settings: Settings, world: World, tmp_path: Path) -> None:
    runtime = Runtime(settings.model_copy(update={"media_dir": tmp_path / "live"}))
    await runtime.start()
    try:
        assert runtime.media is not None
        before = _value("nchat_live_streams") or 0.0
        async with runtime.database.session(Claims.service()) as s:
            await s.fetchval("UPDATE nchat_streams SET status = 'live', started_at = now() WHERE id = $1 RETURNING 1",
                             world.public_stream)
        info = await runtime.media.stream_info(world.public_stream)
        await runtime.media.publisher_connected(info, FakePublisher())
        assert _value("nchat_live_streams") == before + 1
        await runtime.media.end_stream(world.public_stream)
        for _ in range(50):
            if world.public_stream not in runtime.media.streams:
                break
            await asyncio.sleep(0.1)
        assert _value("nchat_live_streams") == before
    finally:
        await runtime.stop()
