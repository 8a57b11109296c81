"""The session API: role and claims per transaction, events only after commit."""

from __future__ import annotations

import asyncpg
import pytest

from nchat_live.auth import Claims
from nchat_live.db import Database
from nchat_live.errors import ConstraintViolation, PermissionDenied
from tests.support import World


async def test_session_runs_as_the_request_role_with_its_claims(db: Database, world: World) -> None:
    async with db.session(Claims.user(world.bob)) as s:
        assert await s.fetchval("SELECT current_user") == "nchat_user"
        assert str(await s.fetchval("SELECT nchat.user_id()")) == world.bob
    async with db.session(Claims.anonymous()) as s:
        assert await s.fetchval("SELECT current_user") == "nchat_anonymous"
        assert await s.fetchval("SELECT nchat.user_id()") is None


async def test_claims_do_not_leak_to_the_next_transaction_on_the_same_pool(db: Database, world: World) -> None:
    async with db.session(Claims.user(world.bob)):
        pass
    async with db.session(Claims.anonymous()) as s:
        assert await s.fetchval("SELECT current_setting('hasura.user', true)") in ("", '{"x-hasura-role": "anonymous"}')
        assert await s.fetchval("SELECT current_user") == "nchat_anonymous"


async def test_events_publish_after_commit_and_never_after_rollback(db: Database, world: World) -> None:
    published: list[tuple[str, dict]] = []

    async def publisher(topic: str, payload: dict) -> None:
        published.append((topic, payload))

    db.publisher = publisher
    try:
        async with db.session(Claims.user(world.alice)) as s:
            s.emit("chat.message", {"n": 1})
            assert published == []
        assert published == [("chat.message", {"n": 1})]
        with pytest.raises(RuntimeError):
            async with db.session(Claims.user(world.alice)) as s:
                s.emit("chat.message", {"n": 2})
                raise RuntimeError("body failed")
        assert published == [("chat.message", {"n": 1})]
    finally:
        db.publisher = None


async def test_postgres_errors_become_domain_errors(db: Database, world: World) -> None:
    with pytest.raises(ConstraintViolation, match="Uniqueness violation"):
        async with db.session(Claims.service()) as s:
            await s.fetchval(
                "INSERT INTO nchat_channel_members (channel_id, user_id) VALUES ($1, $2) RETURNING id",
                world.public_channel, world.bob,
            )
    with pytest.raises(PermissionDenied):
        async with db.session(Claims.user(world.bob)) as s:
            await s.fetchval(
                "INSERT INTO nchat_stream_chat_messages (stream_id, user_id, content) VALUES ($1, $2, 'x')",
                world.public_stream, world.alice,
            )


async def test_a_client_side_mistake_is_not_reported_as_an_outage(db: Database, world: World) -> None:
    with pytest.raises(asyncpg.InterfaceError, match="argument"):
        async with db.session(Claims.service()) as s:
            await s.fetchval("SELECT $1::int", 1, 2)
