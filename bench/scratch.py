"""What the media benches share: a scratch database (created from NCHAT_TEST_PG, dropped after) and a
bench user, channel and stream in it."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg


@asynccontextmanager
async def scratch_database() -> AsyncIterator[str]:
    """The URL of a new empty database next to NCHAT_TEST_PG's, dropped (WITH FORCE) on exit."""
    admin = os.environ.get("NCHAT_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
    name = f"nchat_bench_{secrets.token_hex(4)}"
    conn = await asyncpg.connect(admin)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    try:
        yield admin.rsplit("/", 1)[0] + "/" + name
    finally:
        conn = await asyncpg.connect(admin)
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


async def bench_user_and_channel(db: asyncpg.Connection) -> tuple[object, object]:
    user = await db.fetchval("INSERT INTO nchat_users (username, display_name, email) "
                             "VALUES ('bench', 'Bench', 'bench@example.com') RETURNING id")
    channel = await db.fetchval("INSERT INTO nchat_channels (name, slug, owner_id) "
                                "VALUES ('Bench', 'bench', $1) RETURNING id", user)
    return user, channel


async def bench_stream(db: asyncpg.Connection, max_resolution: str) -> asyncpg.Record:
    """A stream of a new bench user's channel: its row's id and stream_key."""
    user, channel = await bench_user_and_channel(db)
    row = await db.fetchrow("INSERT INTO nchat_streams (channel_id, broadcaster_id, title, max_resolution) "
                            "VALUES ($1, $2, 'bench', $3) RETURNING id, stream_key", channel, user, max_resolution)
    assert row is not None
    return row
