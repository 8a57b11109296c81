"""An unwritable recording path ends that stream as failed, with a reason and an event; others go on."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from nchat_live.auth import Claims
from nchat_live.config import Settings
from nchat_live.db import Database
from nchat_live.runtime import Runtime
from tests.support import World

from .rtmp_client import run_publisher
from .test_recording import eventually


@pytest.fixture(scope="module")
async def broken_disk(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Runtime]:
    root = tmp_path_factory.mktemp("media2-broken")
    blocker = root / "not-a-folder"
    blocker.write_text("a file where the recording folder should be")
    runtime = Runtime(settings.model_copy(update={
        "media_dir": root / "live", "recording_dir": blocker / "recordings", "rtmp_port": 0,
        "publisher_grace_seconds": 1.0, "media_cleanup_delay_seconds": 0.2,
    }))
    await runtime.start()
    yield runtime
    await runtime.stop()


async def test_unwritable_recording_path_fails_only_that_stream(
    broken_disk: Runtime, world: World, db: Database
) -> None:
    assert broken_disk.rtmp is not None
    port = broken_disk.rtmp.port
    async with db.session(Claims.service()) as s:
        await s.fetchval(
            "UPDATE nchat_streams SET is_recorded = false WHERE id = $1 RETURNING id", world.private_stream
        )
    with broken_disk.bus.listen(streams=[world.public_stream], types=["stream.failed"]) as listener:
        _, unrecorded = await asyncio.gather(
            run_publisher(port, world.public_key, "--seconds", "4", "--realtime"),
            run_publisher(port, world.private_key, "--seconds", "4", "--realtime"),
        )
        assert unrecorded[0] == 0, unrecorded[1]

        async def status(stream_id: str, wanted: str) -> dict[str, Any] | None:
            async with db.session(Claims.service()) as s:
                row = await s.fetchrow("SELECT status, end_reason FROM nchat_streams WHERE id = $1", stream_id)
            return dict(row) if row is not None and row["status"] == wanted else None

        failed = await eventually(lambda: status(world.public_stream, "failed"), 15)
        assert "recording to" in failed["end_reason"] and "Not a directory" in failed["end_reason"]
        ended = await eventually(lambda: status(world.private_stream, "ended"), 15)
        assert ended["end_reason"] == "publisher-left"
        event = await asyncio.wait_for(listener.get(), 5)
        assert event.payload["reason"] == failed["end_reason"]
        async with db.session(Claims.service()) as s:
            rows = await s.fetch(
                "SELECT status, metadata FROM nchat_stream_recordings WHERE stream_id = $1", world.public_stream
            )
        assert rows == [] or rows[0]["status"] == "failed"
