"""A private channel's stream media (HLS, thumbnails, recordings) needs a token that may read it;
a public stream's media needs none."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from nchat_live.app import create_app
from nchat_live.config import Settings
from tests.support import World


@pytest.fixture
async def client(settings: Settings, tmp_path: Path, world: World) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings.model_copy(update={"media_dir": tmp_path / "live",
                                                 "recording_dir": tmp_path / "recordings"}))
    async with app.router.lifespan_context(app):
        storage = app.state.runtime.media.storage
        for stream in (world.public_stream, world.private_stream):
            storage.write(f"{stream}/master.m3u8", b"#EXTM3U\n")
            (tmp_path / "recordings" / stream).mkdir(parents=True)
            (tmp_path / "recordings" / stream / "master.m3u8").write_text("#EXTM3U\n")
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            yield c


async def test_public_stream_media_needs_no_token(client: httpx.AsyncClient, world: World) -> None:
    assert (await client.get(f"/hls/{world.public_stream}/master.m3u8")).status_code == 200
    assert (await client.get(f"/recordings/{world.public_stream}/master.m3u8")).status_code == 200


async def test_private_stream_media_needs_a_token_that_may_read_it(client: httpx.AsyncClient, world: World) -> None:
    # Issue 12 changed three expectations: no credential answers 404 like an unknown stream (it was 401,
    # which told a prober the id exists), and a login token in `?token=` is refused (URLs reach logs);
    # `?token=` takes a stream-scoped media token (tests/security/test_media_access.py).
    master = f"/hls/{world.private_stream}/master.m3u8"
    anonymous = await client.get(master)
    assert anonymous.status_code == 404 and anonymous.json()["error"]["code"] == "not-found"
    outsider = await client.get(master, headers={"Authorization": f"Bearer {world.token(world.carol)}"})
    assert outsider.status_code == 404  # not readable looks like not there
    member_of_other_channel = await client.get(master, headers={"Authorization": f"Bearer {world.token(world.bob)}"})
    assert member_of_other_channel.status_code == 404
    owner = await client.get(master, headers={"Authorization": f"Bearer {world.token(world.alice)}"})
    assert owner.status_code == 200 and owner.text.startswith("#EXTM3U")
    login_in_query = await client.get(master, params={"token": world.token(world.alice)})
    assert login_in_query.status_code == 401 and login_in_query.json()["error"]["code"] == "invalid-jwt"
    forged = await client.get(master, params={"token": "not-a-jwt"})
    assert forged.status_code == 401 and forged.json()["error"]["code"] == "invalid-jwt"
    recording = f"/recordings/{world.private_stream}/master.m3u8"
    assert (await client.get(recording)).status_code == 404
    owner_auth = {"Authorization": f"Bearer {world.token(world.alice)}"}
    assert (await client.get(recording, headers=owner_auth)).status_code == 200
    assert (await client.get(f"/hls/{world.private_stream}/thumbnail.jpg")).status_code == 404
