"""Ordered SQL migrations (NNNN_name.up.sql / .down.sql) applied under an advisory lock."""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

import asyncpg

# Any constant works; it only has to be the same in every process of the deployment.
ADVISORY_LOCK_KEY = 0x6E636861746C  # "nchatl"
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.(up|down)\.sql$")


class MigrationError(Exception):
    """A migration could not be applied; the message says which and why."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    up: str
    down: str


@dataclass(frozen=True)
class MigrationStatus:
    applied: list[int]
    pending: list[int]
    unknown: list[int]

    @property
    def current(self) -> bool:
        return not self.pending and not self.unknown


def available() -> list[Migration]:
    folder = resources.files("nchat_live.db") / "migrations"
    ups: dict[int, tuple[str, str]] = {}
    downs: dict[int, str] = {}
    for entry in folder.iterdir():
        match = _NAME.match(entry.name)
        if not match:
            continue
        version, name, direction = int(match[1]), match[2], match[3]
        if direction == "up":
            ups[version] = (name, entry.read_text(encoding="utf-8"))
        else:
            downs[version] = entry.read_text(encoding="utf-8")
    return [Migration(v, ups[v][0], ups[v][1], downs.get(v, "")) for v in sorted(ups)]


async def _ensure_table(conn: asyncpg.Connection) -> None:
    await conn.execute(
        """CREATE TABLE IF NOT EXISTS nchat_schema_migrations (
             version integer PRIMARY KEY,
             name text NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now())"""
    )


async def _applied(conn: asyncpg.Connection, *, create: bool = True) -> list[int]:
    if create:
        await _ensure_table(conn)
    elif await conn.fetchval("SELECT to_regclass('nchat_schema_migrations')") is None:
        return []
    return [r["version"] for r in await conn.fetch("SELECT version FROM nchat_schema_migrations ORDER BY version")]


async def status(conn: asyncpg.Connection) -> MigrationStatus:
    known = {m.version for m in available()}
    applied = await _applied(conn, create=False)
    return MigrationStatus(
        applied=applied,
        pending=sorted(known - set(applied)),
        unknown=[v for v in applied if v not in known],
    )


async def upgrade(conn: asyncpg.Connection, target: int | None = None) -> list[int]:
    """Apply every pending migration (up to `target`, when given), each in its own transaction.

    Returns what was applied."""
    done: list[int] = []
    await conn.execute("SELECT pg_advisory_lock($1)", ADVISORY_LOCK_KEY)
    try:
        await _ensure_table(conn)
        state = await status(conn)
        if state.unknown:
            raise MigrationError(
                f"the database has migrations {state.unknown} that this version of nchat-live does not know; "
                "it was migrated by a newer release: upgrade nchat-live or restore a matching backup"
            )
        for migration in available():
            if migration.version not in state.pending or (target is not None and migration.version > target):
                continue
            try:
                async with conn.transaction():
                    await conn.execute(migration.up)
                    await conn.execute(
                        "INSERT INTO nchat_schema_migrations (version, name) VALUES ($1, $2)",
                        migration.version, migration.name,
                    )
            except asyncpg.PostgresError as exc:
                raise MigrationError(
                    f"migration {migration.version:04d}_{migration.name} failed and was rolled back: {exc}"
                ) from exc
            done.append(migration.version)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", ADVISORY_LOCK_KEY)
    return done


async def downgrade(conn: asyncpg.Connection, steps: int = 1) -> list[int]:
    """Revert the newest `steps` applied migrations."""
    reverted: list[int] = []
    by_version = {m.version: m for m in available()}
    await conn.execute("SELECT pg_advisory_lock($1)", ADVISORY_LOCK_KEY)
    try:
        applied = await _applied(conn)
        for version in list(reversed(applied))[:steps]:
            migration = by_version.get(version)
            if migration is None:
                raise MigrationError(f"migration {version} is not known to this version; cannot revert it")
            async with conn.transaction():
                if migration.down:
                    await conn.execute(migration.down)
                await conn.execute("DELETE FROM nchat_schema_migrations WHERE version = $1", version)
            reverted.append(version)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", ADVISORY_LOCK_KEY)
    return reverted
