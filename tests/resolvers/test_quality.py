"""Quality reports, the health score formula, streamHealth."""

from __future__ import annotations

import pytest

from nchat_live.auth import Claims
from nchat_live.db import Database
from nchat_live.errors import NchatError
from nchat_live.resolvers import quality
from nchat_live.resolvers.quality import QualityReport, health_score
from tests.support import World

from .conftest import Clock, Events, go_live


@pytest.mark.parametrize(("report", "score"), [
    (QualityReport(bitrate_kbps=2500, fps=30, resolution="1280x720", dropped_frames=0, latency_ms=800,
                   packet_loss_percent=0), 100),
    (QualityReport(bitrate_kbps=1250, fps=30, resolution="720p"), 85),  # half the bitrate: -15
    (QualityReport(fps=15), 90),  # half the frame rate: -10
    (QualityReport(fps=30, dropped_frames=15), 80),  # 10 % dropped: -20
    (QualityReport(packet_loss_percent=2.5), 90),  # -10
    (QualityReport(latency_ms=3000), 95),  # -5
    (QualityReport(bitrate_kbps=0, fps=0, resolution="1080p", dropped_frames=999, packet_loss_percent=100,
                   latency_ms=60000), 0),
    (QualityReport(), 100),
])
def test_health_score_formula(report: QualityReport, score: int) -> None:
    assert health_score(report) == score


async def test_report_and_health(db: Database, world: World, events: Events, clock: Clock) -> None:
    await go_live(db, world.public_stream)
    for loss in (0, 5):
        async with db.session(Claims.user(world.alice)) as s:
            stored = await quality.report_quality_metrics(
                s, world.public_stream, QualityReport(bitrate_kbps=2500, fps=30, resolution="720p",
                                                      packet_loss_percent=loss), now=clock.advance(5))
    assert stored["health_score"] == 80 and stored["health"] == "good"
    update = events.of("quality.update")[-1]
    assert update["stream_id"] == world.public_stream and update["channel_id"] == world.public_channel
    assert update["health_score"] == 80
    async with db.session(Claims.user(world.mod)) as s:
        health = await quality.stream_health(s, world.public_stream)
    assert health["health_score"] == 80 and health["samples_1m"] == 2 and health["average_score_1m"] == 90.0
    assert health["latest"]["packet_loss_percent"] == 5.0


async def test_only_the_broadcaster_reports_and_only_managers_read(db: Database, world: World) -> None:
    await go_live(db, world.public_stream)
    with pytest.raises(NchatError) as info:
        async with db.session(Claims.user(world.mod)) as s:
            await quality.report_quality_metrics(s, world.public_stream, QualityReport(fps=30))
    assert info.value.code == "permission-error"
    with pytest.raises(NchatError) as info:
        async with db.session(Claims.user(world.bob)) as s:
            await quality.stream_health(s, world.public_stream)
    assert info.value.code == "permission-error"
    with pytest.raises(NchatError, match="packetLossPercent 101") as info:
        async with db.session(Claims.user(world.alice)) as s:
            await quality.report_quality_metrics(s, world.public_stream, QualityReport(packet_loss_percent=101))
    assert info.value.code == "validation-failed"
