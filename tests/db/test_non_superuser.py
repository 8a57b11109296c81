"""On a managed PostgreSQL the app logs in as an ordinary role: migrations and RLS still hold.

The SECURITY DEFINER helpers run as that owner, and FORCE ROW LEVEL SECURITY applies to it too; they
still see every row because the owner is a member of nchat_admin (it must be, to SET ROLE to it), and
the `admin_all` policies apply to members of nchat_admin.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import asyncpg
import pytest

from nchat_live.auth import Claims
from nchat_live.db import Database
from nchat_live.errors import PermissionDenied
from tests.support import make_world, set_live, with_database


@pytest.fixture
async def owner_db(pg_server: str) -> AsyncIterator[Database]:
    """A database owned by a fresh LOGIN role that is neither superuser nor BYPASSRLS; the request
    roles are granted to it by an administrator beforehand, as a DBA would."""
    role = f"nchat_owner_{secrets.token_hex(3)}"
    name = f"nchat_nosu_{secrets.token_hex(3)}"
    admin = await asyncpg.connect(pg_server)
    await admin.execute(f"CREATE ROLE {role} LOGIN NOSUPERUSER NOBYPASSRLS")
    await admin.execute(f'CREATE DATABASE "{name}" OWNER {role}')
    for request_role in ("nchat_anonymous", "nchat_user", "nchat_moderator", "nchat_admin"):
        if not await admin.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", request_role):
            await admin.execute(f"CREATE ROLE {request_role} NOLOGIN")
        await admin.execute(f"GRANT {request_role} TO {role}")
    url = with_database(pg_server, name).replace("://postgres@", f"://{role}@", 1)
    db = Database(url)
    try:
        yield db
    finally:
        await db.close()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f"DROP ROLE IF EXISTS {role}")
        await admin.close()


async def test_migrations_and_rls_work_for_an_ordinary_login_role(owner_db: Database) -> None:
    await owner_db.migrate()
    world = await make_world(owner_db)
    await set_live(owner_db, world.public_stream)
    async with owner_db.session(Claims.user(world.bob)) as s:
        msg = await s.fetchval(
            "INSERT INTO nchat_stream_chat_messages (stream_id, user_id, content) VALUES ($1, $2, 'hi') RETURNING id",
            world.public_stream, world.bob,
        )
        assert msg is not None
        assert await s.fetchval("SELECT count(*) FROM nchat_streams WHERE id = $1", world.private_stream) == 0
    async with owner_db.session(Claims.user(world.alice)) as s:
        assert await s.fetchval("SELECT count(*) FROM nchat_streams WHERE id = $1", world.private_stream) == 1
        assert await s.fetchval("SELECT nchat.stream_key($1)", world.public_stream) == world.public_key
    with pytest.raises(PermissionDenied):
        async with owner_db.session(Claims.user(world.carol)) as s:
            await s.fetchval(
                "INSERT INTO nchat_stream_chat_messages (stream_id, user_id, content) VALUES ($1, $2, 'x')",
                world.private_stream, world.carol,
            )
