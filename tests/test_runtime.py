"""Each process role starts only what it serves."""

from __future__ import annotations

import pytest

from nchat_live.config import Settings
from nchat_live.runtime import Runtime


async def test_a_media_worker_starts_the_bus_but_no_graphql_or_live_queries(settings: Settings) -> None:
    runtime = Runtime(settings.model_copy(update={"media_enabled": False}))
    await runtime.start(role="media")
    try:
        assert await runtime.bus.is_ready()
        assert runtime.access is not None
        for part in ("graphql", "live", "shared_feeds", "presence"):
            with pytest.raises(AssertionError, match="not running in this process"):
                getattr(runtime, part)
        assert runtime.scheduler is None
    finally:
        await runtime.stop()
    with pytest.raises(AssertionError, match="not running"):
        runtime.bus  # noqa: B018 - the accessor is the thing tested


async def test_an_api_process_starts_graphql_live_queries_and_the_transport(settings: Settings) -> None:
    runtime = Runtime(settings)
    await runtime.start(role="api")
    try:
        assert runtime.graphql.for_role("anonymous") is not None
        assert runtime.live is not None and runtime.presence is not None
        assert not runtime.shared_feeds.groups
        assert runtime.scheduler is not None
        assert runtime.media is None
        assert runtime.database.publisher == runtime.bus.publish
    finally:
        await runtime.stop()
