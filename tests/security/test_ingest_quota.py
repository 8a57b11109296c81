"""Going live over the live-stream quota through WHIP or RTMP: a clear refusal before any media (WHIP
429 with a JSON body and code quota-exceeded; RTMP NetStream.Publish.Failed naming the quota), never a
201 followed by a stream that cannot go live."""

from __future__ import annotations

import pytest

from nchat_live.auth import Claims
from nchat_live.db import Database
from nchat_live.resolvers.limits import limit_values, write_limits
from tests.media.media_client import SyntheticVideo, WhipClient
from tests.media.rtmp_client import RtmpTestClient
from tests.support import World, set_live

from .test_ingest_takeover import Stack, new_stream, stack  # noqa: F401 - fixture

pytestmark = pytest.mark.slow


async def over_quota(db: Database, world: World) -> tuple[str, str]:
    """alice may have one live stream and has one: a new stream of hers is over the quota."""
    await write_limits(db, {"live_streams": 1})
    await set_live(db, world.private_stream)
    return await new_stream(db, world)


async def status_of(db: Database, stream_id: str) -> str:
    async with db.session(Claims.service()) as s:
        return str(await s.fetchval("SELECT status FROM nchat_streams WHERE id = $1", stream_id))


async def test_whip_publish_over_the_live_quota_is_a_429(stack: Stack, world: World) -> None:  # noqa: F811
    db = stack.runtime.database
    try:
        stream_id, key = await over_quota(db, world)
        client = WhipClient(stack.http, stream_id, key, SyntheticVideo(320, 240, 15), audio=False)
        try:
            response = await client.start()
            assert response.status_code == 429, response.text
            assert response.headers["content-type"].startswith("application/json")
            assert response.json()["error"]["code"] == "quota-exceeded"
            assert "at most 1" in response.json()["error"]["message"]
        finally:
            await client.stop()
        assert stream_id not in stack.media.streams
        assert await status_of(db, stream_id) == "scheduled"
    finally:
        await write_limits(db, limit_values(stack.runtime.settings))


async def test_rtmp_publish_over_the_live_quota_is_refused(stack: Stack, world: World) -> None:  # noqa: F811
    db = stack.runtime.database
    try:
        stream_id, key = await over_quota(db, world)
        client = await RtmpTestClient.connect(stack.rtmp_port)
        try:
            reply = await client.start_publish(key)
            assert reply[3]["level"] == "error" and reply[3]["code"] == "NetStream.Publish.Failed", reply
            assert "at most 1" in reply[3]["description"]
            assert await client.closed_by_server()
        finally:
            await client.close()
        assert stream_id not in stack.media.streams
        assert await status_of(db, stream_id) == "scheduled"
    finally:
        await write_limits(db, limit_values(stack.runtime.settings))
