"""Migrations: up from empty, down, up again; status; a newer database is refused; failures roll back."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import asyncpg
import pytest

from nchat_live.db import migrations
from tests.support import with_database


@pytest.fixture
async def empty_db(pg_server: str) -> AsyncIterator[asyncpg.Connection]:
    name = f"nchat_mig_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(pg_server)
    await admin.execute(f'CREATE DATABASE "{name}"')
    conn = await asyncpg.connect(with_database(pg_server, name))
    try:
        yield conn
    finally:
        await conn.close()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def _tables(conn: asyncpg.Connection) -> set[str]:
    rows = await conn.fetch(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename LIKE 'nchat%'"
    )
    return {r["tablename"] for r in rows}


async def test_up_down_up(empty_db: asyncpg.Connection) -> None:
    versions = [m.version for m in migrations.available()]
    before = await migrations.status(empty_db)
    assert before.applied == [] and before.pending == versions and not before.current

    assert await migrations.upgrade(empty_db) == versions
    assert "nchat_streams" in await _tables(empty_db)
    assert (await migrations.status(empty_db)).current
    assert await migrations.upgrade(empty_db) == []  # idempotent

    reverted = await migrations.downgrade(empty_db, steps=len(versions))
    assert reverted == list(reversed(versions))
    assert await _tables(empty_db) == {"nchat_schema_migrations"}
    assert (await migrations.status(empty_db)).pending == versions

    assert await migrations.upgrade(empty_db) == versions
    assert "nchat_stream_chat_messages" in await _tables(empty_db)


async def test_database_newer_than_the_code_is_refused(empty_db: asyncpg.Connection) -> None:
    await migrations.upgrade(empty_db)
    await empty_db.execute("INSERT INTO nchat_schema_migrations (version, name) VALUES (9999, 'from_the_future')")
    state = await migrations.status(empty_db)
    assert state.unknown == [9999] and not state.current
    with pytest.raises(migrations.MigrationError, match="newer release"):
        await migrations.upgrade(empty_db)


async def test_a_failed_migration_rolls_back_and_keeps_data(
    empty_db: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    await migrations.upgrade(empty_db)
    await empty_db.execute("INSERT INTO nchat_users (username) VALUES ('keeper')")
    broken = migrations.Migration(
        version=9000, name="broken", up="DELETE FROM nchat_users; SELECT 1/0;", down=""
    )
    real = migrations.available()
    monkeypatch.setattr(migrations, "available", lambda: [*real, broken])
    with pytest.raises(migrations.MigrationError, match="9000_broken failed and was rolled back"):
        await migrations.upgrade(empty_db)
    assert await empty_db.fetchval("SELECT count(*) FROM nchat_users WHERE username = 'keeper'") == 1
    assert 9000 not in (await migrations.status(empty_db)).applied
