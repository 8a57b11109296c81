"""Per-user quotas and rates on the creating paths (migration 0012): the domain operation and the
table API give the same answer, because Postgres decides."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from nchat_live.app import create_app
from nchat_live.auth import Claims
from nchat_live.config import Settings
from nchat_live.db import Database
from nchat_live.errors import NchatError
from nchat_live.resolvers import lifecycle, qa, streams
from nchat_live.resolvers.limits import limit_values, write_limits
from nchat_live.resolvers.scheduler import StreamScheduler
from nchat_live.resolvers.streams import StreamInput
from tests.support import World

from .conftest import Clock, set_status


@pytest.fixture(scope="module")
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app: Starlette = create_app(settings.model_copy(update={"media_enabled": False}))
    async with app.router.lifespan_context(app), httpx.AsyncClient(
        transport=httpx.ASGITransport(app), base_url="http://test"
    ) as c:
        yield c


@pytest.fixture
async def limits(db: Database, settings: Settings) -> AsyncIterator[Any]:
    """Set some limits for one test; every limit goes back to the settings' figure after it."""

    async def set_limits(**values: float) -> None:
        await write_limits(db, values)

    yield set_limits
    await write_limits(db, limit_values(settings))


class Table:
    """The Hasura-style table API over HTTP, as one user."""

    def __init__(self, client: httpx.AsyncClient, world: World, user: str) -> None:
        self.client, self.headers = client, {"authorization": f"Bearer {world.token(user)}"}

    async def __call__(self, query: str, **variables: Any) -> dict[str, Any]:
        r = await self.client.post("/v1/graphql", json={"query": query, "variables": variables}, headers=self.headers)
        return dict(r.json())

    async def insert_stream(self, channel: str, user: str, **extra: Any) -> str | None:
        """The new id, or the error code."""
        result = await self("mutation ($o: nchat_streams_insert_input!) { "
                            "insert_nchat_streams_one(object: $o) { id } }",
                            o={"channel_id": channel, "broadcaster_id": user, "title": "t", **extra})
        return _code(result)

    async def insert_channel(self, user: str, slug: str) -> str | None:
        result = await self("mutation ($o: nchat_channels_insert_input!) { "
                            "insert_nchat_channels_one(object: $o) { id } }",
                            o={"name": "c", "slug": slug, "owner_id": user})
        return _code(result)


def _code(result: dict[str, Any]) -> str | None:
    errors = result.get("errors")
    return str(errors[0]["extensions"]["code"]) if errors else None


async def domain_create(db: Database, settings: Settings, user: str, channel: str, **fields: Any) -> str | None:
    try:
        async with db.session(Claims.user(user)) as s:
            await streams.create_stream(s, settings, StreamInput(channel_id=channel, title="t", **fields))
    except NchatError as exc:
        return exc.code
    return None


@pytest.fixture
def table(client: httpx.AsyncClient, world: World) -> Iterator[Any]:
    yield lambda user: Table(client, world, user)


async def test_streams_per_hour_same_answer_on_both_paths(
    db: Database, settings: Settings, world: World, limits: Any, table: Any
) -> None:
    await limits(streams_per_hour=2)
    bob = table(world.bob)
    assert await domain_create(db, settings, world.bob, world.public_channel) is None
    assert await bob.insert_stream(world.public_channel, world.bob) is None
    assert await domain_create(db, settings, world.bob, world.public_channel) == "rate-limited"
    assert await bob.insert_stream(world.public_channel, world.bob) == "rate-limited"
    try:
        async with db.session(Claims.user(world.bob)) as s:
            await streams.create_stream(s, settings, StreamInput(channel_id=world.public_channel, title="t"))
    except NchatError as exc:
        assert exc.http_status == 429 and exc.extensions["limit"] == 2 and exc.extensions["retryAfterSeconds"] > 0
        assert "at most 2 new streams per hour" in exc.message
    # The server's own writes (seeds, imports) are not judged.
    async with db.session(Claims.service()) as s:
        await s.fetchval("INSERT INTO nchat_streams (channel_id, broadcaster_id, title) VALUES ($1, $2, 'x') "
                         "RETURNING id", world.public_channel, world.bob)


async def test_scheduled_streams_quota(db: Database, settings: Settings, world: World, limits: Any,
                                       table: Any) -> None:
    await limits(scheduled_streams=1)
    soon = datetime.now(UTC) + timedelta(days=1)
    bob = table(world.bob)
    assert await domain_create(db, settings, world.bob, world.public_channel, scheduled_at=soon) is None
    assert await domain_create(db, settings, world.bob, world.public_channel,
                               scheduled_at=soon + timedelta(hours=1)) == "quota-exceeded"
    assert await bob.insert_stream(world.public_channel, world.bob,
                                   scheduled_at=(soon + timedelta(hours=2)).isoformat()) == "quota-exceeded"
    # Going live now is not a scheduled stream.
    assert await domain_create(db, settings, world.bob, world.public_channel) is None


@pytest.mark.parametrize("when", [datetime(2000, 1, 1, tzinfo=UTC), datetime(9999, 1, 1, tzinfo=UTC),
                                  datetime.now(UTC) - timedelta(hours=1), datetime.now(UTC) + timedelta(days=400)])
async def test_schedule_window_on_every_path(db: Database, settings: Settings, world: World, table: Any,
                                             when: datetime) -> None:
    alice = table(world.alice)
    assert await domain_create(db, settings, world.alice, world.public_channel, scheduled_at=when) == "invalid-schedule"
    assert await alice.insert_stream(world.public_channel, world.alice,
                                     scheduled_at=when.isoformat()) == "invalid-schedule"
    with pytest.raises(NchatError) as info:
        async with db.session(Claims.user(world.alice)) as s:
            await streams.update_stream(s, world.public_stream, StreamInput(scheduled_at=when))
    assert info.value.code == "invalid-schedule"
    result = await alice("mutation ($id: uuid!, $at: timestamptz!) { update_nchat_streams_by_pk("
                         "pk_columns: {id: $id}, _set: {scheduled_at: $at}) { id } }",
                         id=world.public_stream, at=when.isoformat())
    assert _code(result) == "invalid-schedule"
    # A sane time passes on both paths.
    fine = datetime.now(UTC) + timedelta(days=30)
    assert await domain_create(db, settings, world.alice, world.public_channel, scheduled_at=fine) is None
    assert await alice.insert_stream(world.public_channel, world.alice, scheduled_at=fine.isoformat()) is None


async def test_channels_owned_and_per_hour(world: World, limits: Any, table: Any) -> None:
    carol = table(world.carol)
    await limits(channels_per_hour=2)
    assert await carol.insert_channel(world.carol, f"c1-{world.carol}") is None
    assert await carol.insert_channel(world.carol, f"c2-{world.carol}") is None
    assert await carol.insert_channel(world.carol, f"c3-{world.carol}") == "rate-limited"
    await limits(channels_per_hour=100, channels_per_user=2)
    assert await carol.insert_channel(world.carol, f"c4-{world.carol}") == "quota-exceeded"


async def test_concurrent_live_streams(db: Database, world: World, limits: Any) -> None:
    await limits(live_streams=1)
    async with db.session(Claims.user(world.alice)) as s:
        await streams.start_stream(s, world.public_stream)
    with pytest.raises(NchatError) as info:
        async with db.session(Claims.user(world.alice)) as s:
            await streams.start_stream(s, world.private_stream)
    assert info.value.code == "quota-exceeded" and info.value.extensions["limit"] == 1
    # The media pipeline (the server, when a publisher's frames arrive) gets the same answer.
    with pytest.raises(NchatError) as info:
        async with db.session(Claims.service()) as s:
            await lifecycle.transition(s, world.private_stream, lifecycle.LIVE)
    assert info.value.code == "quota-exceeded"
    await set_status(db, world.public_stream, "ended")
    async with db.session(Claims.user(world.alice)) as s:
        await streams.start_stream(s, world.private_stream)


async def test_clips_per_hour(db: Database, world: World, limits: Any, table: Any) -> None:
    await limits(clips_per_hour=1)
    clip = ("INSERT INTO nchat_stream_recordings (stream_id, kind, status, created_by) "
            "VALUES ($1, 'clip', 'ready', $2) RETURNING created_by")
    # The statement media/clips.py runs in the caller's session (the URL is set by the server, 0013).
    async with db.session(Claims.user(world.alice)) as s:
        assert str(await s.fetchval(clip, world.public_stream, world.alice)) == world.alice
    with pytest.raises(NchatError) as info:
        async with db.session(Claims.user(world.alice)) as s:
            await s.fetchval(clip, world.public_stream, None)  # no owner given: still the caller's
    assert info.value.code == "rate-limited"
    result = await table(world.alice)(
        "mutation ($o: nchat_stream_recordings_insert_input!) { insert_nchat_stream_recordings_one(object: $o) "
        "{ id } }", o={"stream_id": world.public_stream, "kind": "clip"})
    assert _code(result) == "rate-limited"


async def test_question_rate(db: Database, world: World, limits: Any, table: Any, clock: Clock) -> None:
    await limits(questions_max=2, questions_window_s=60)
    async with db.session(Claims.service()) as s:
        await s.fetchval("UPDATE nchat_streams SET enable_qa = true WHERE id = $1 RETURNING id", world.public_stream)

    async def ask(text: str) -> str | None:
        try:
            async with db.session(Claims.user(world.bob)) as s:
                await qa.ask_question(s, world.public_stream, text, now=clock())
        except NchatError as exc:
            return exc.code
        return None

    assert await ask("one?") is None
    assert await ask("two?") is None
    assert await ask("three?") == "rate-limited"
    result = await table(world.bob)(
        "mutation ($o: nchat_stream_questions_insert_input!) { insert_nchat_stream_questions_one(object: $o) "
        "{ id } }", o={"stream_id": world.public_stream, "user_id": world.bob, "content": "four?"})
    assert _code(result) == "rate-limited"
    clock.advance(61)
    assert await ask("later?") is None


async def test_a_stream_whose_time_passed_does_not_stay_preparing(db: Database, world: World) -> None:
    at = datetime.now(UTC) - timedelta(hours=2)
    async with db.session(Claims.service()) as s:
        sid = str(await s.fetchval(
            "INSERT INTO nchat_streams (channel_id, broadcaster_id, title, scheduled_at, status) "
            "VALUES ($1, $2, 'old', $3, 'preparing') RETURNING id", world.public_channel, world.alice, at))
    report = await StreamScheduler(db, grace=timedelta(minutes=30)).run_once(datetime.now(UTC))
    assert sid in report.expired_streams
    async with db.session(Claims.service()) as s:
        assert await s.fetchval("SELECT status FROM nchat_streams WHERE id = $1", sid) == "cancelled"
