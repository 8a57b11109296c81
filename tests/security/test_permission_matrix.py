"""The permission matrix, derived from the model (src/nchat_live/db/permissions.py): every request role x
table x column x operation (select, insert, update) is checked against the live catalog, plus delete per
table, so the model and migration 0011 cannot drift; and every server-owned stream/message column is
refused to its own broadcaster/author when written directly."""

from __future__ import annotations

import pytest

from nchat_live.auth import Claims
from nchat_live.db import Database
from nchat_live.db.permissions import (
    MESSAGE_SERVER_OWNED,
    MODEL,
    PG_ROLE,
    POLL_SERVER_OWNED,
    ROLES,
    SERVER_ONLY_FUNCTIONS,
    SERVER_ONLY_TABLES,
    STREAM_SERVER_OWNED,
    VIEWER_ADMIN_ONLY,
    rule,
)
from nchat_live.errors import NchatError
from tests.support import World, set_live

TABLES = sorted({t for role in MODEL.values() for t in role} | {"nchat_stream_viewers", *SERVER_ONLY_TABLES})
OPS = ("select", "insert", "update")


# Columns no request role touches at all (admin only); with the model's columns, every column of every table.
ADMIN_ONLY: dict[str, frozenset[str]] = {
    "nchat_stream_viewers": VIEWER_ADMIN_ONLY,
    "nchat_streams": frozenset(),
    # Yours through nchat.my_email() (GraphQL myEmail); admins read all (migration 0013).
    "nchat_users": frozenset({"email"}),
    "nchat_stream_reminders_sent": frozenset({"stream_id", "lead_minutes", "recipients", "sent_at"}),
    "nchat_media_workers": frozenset({"worker_id", "url", "started_at", "heartbeat_at", "streams", "capacity"}),
    "nchat_media_leases": frozenset({"stream_id", "worker_id", "generation", "acquired_at", "heartbeat_at",
                                     "expires_at"}),
}


def universe(table: str) -> list[str]:
    named = set().union(*(getattr(rule(r, table), op) for r in ROLES for op in OPS))
    return sorted(named | ADMIN_ONLY.get(table, frozenset()) | ({"stream_key"} if table == "nchat_streams" else set()))


CELLS = [(role, table, column, op) for role in ROLES for table in TABLES for column in universe(table) for op in OPS]
PAIRS = [(role, table) for role in ROLES for table in TABLES]


@pytest.fixture(scope="module")
async def privileges(db: Database) -> dict[tuple[str, str, str, str], bool]:
    async with db.session(Claims.service()) as s:
        rows = await s.fetch(
            "SELECT r.role, c.relname AS tbl, a.attname AS col, "
            "has_column_privilege(r.role, c.oid, a.attnum, 'SELECT') AS sel, "
            "has_column_privilege(r.role, c.oid, a.attnum, 'INSERT') AS ins, "
            "has_column_privilege(r.role, c.oid, a.attnum, 'UPDATE') AS upd "
            "FROM unnest($1::text[]) AS r(role), pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
            "WHERE n.nspname = 'public' AND c.relname = ANY($2::text[])",
            list(PG_ROLE.values()), TABLES)
    out: dict[tuple[str, str, str, str], bool] = {}
    for r in rows:
        for op, key in (("select", "sel"), ("insert", "ins"), ("update", "upd")):
            out[(r["role"], r["tbl"], r["col"], op)] = bool(r[key])
    return out


@pytest.mark.parametrize("cell", CELLS, ids=["-".join(c) for c in CELLS])
async def test_catalog_matches_the_model(cell: tuple[str, str, str, str],
                                         privileges: dict[tuple[str, str, str, str], bool]) -> None:
    role, table, column, op = cell
    expected = column in getattr(rule(role, table), op)
    actual = privileges[(PG_ROLE[role], table, column, op)]
    assert actual == expected, f"{role} {op} {table}.{column}: catalog {actual}, model {expected}"


@pytest.mark.parametrize("table_role", PAIRS, ids=["-".join(p) for p in PAIRS])
async def test_delete_matches_the_model(table_role: tuple[str, str], db: Database) -> None:
    role, table = table_role
    async with db.session(Claims.service()) as s:
        actual = await s.fetchval("SELECT has_table_privilege($1, $2::regclass, 'DELETE')", PG_ROLE[role], table)
    assert actual == rule(role, table).delete


async def test_the_model_names_every_column_of_every_table(db: Database) -> None:
    """A column added later without a place in the model fails here (and so is not silently granted)."""
    async with db.session(Claims.service()) as s:
        rows = await s.fetch("SELECT table_name, column_name FROM information_schema.columns "
                             "WHERE table_schema = 'public' AND table_name = ANY($1::text[])", TABLES)
    missing = sorted(f"{r['table_name']}.{r['column_name']}" for r in rows
                     if r["column_name"] not in universe(r["table_name"]))
    assert not missing


async def test_every_model_table_has_forced_rls_and_every_rule_names_a_check(db: Database) -> None:
    async with db.session(Claims.service()) as s:
        rows = await s.fetch("SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class "
                             "WHERE relname = ANY($1::text[]) AND relkind IN ('r', 'p')", TABLES)
    assert {r["relname"] for r in rows} == set(TABLES)
    assert all(r["relrowsecurity"] and r["relforcerowsecurity"] for r in rows)
    assert all(r.check for role in MODEL.values() for r in role.values())


def test_server_owned_columns_are_granted_to_no_request_role() -> None:
    for role in ROLES:
        assert not (STREAM_SERVER_OWNED - {"stream_key", "channel_id", "broadcaster_id"}) & (
            rule(role, "nchat_streams").insert | rule(role, "nchat_streams").update)
        assert not STREAM_SERVER_OWNED & rule(role, "nchat_streams").update
        assert not MESSAGE_SERVER_OWNED & (rule(role, "nchat_stream_chat_messages").insert
                                           | rule(role, "nchat_stream_chat_messages").update)
        assert not VIEWER_ADMIN_ONLY & rule(role, "nchat_stream_viewers").select
        assert not POLL_SERVER_OWNED & (rule(role, "nchat_stream_polls").insert
                                        | rule(role, "nchat_stream_polls").update)
        assert not rule(role, "nchat_moderation_log").insert and not rule(role, "nchat_moderation_log").update
        v = rule(role, "nchat_stream_viewers")
        assert not v.insert and not v.update and not v.delete


# Behaviour, derived from the same model: the row's own broadcaster/author (who passes every row check)
# writing a server-owned column directly is refused.
DIRECT = [("nchat_streams", c) for c in sorted(STREAM_SERVER_OWNED)] + \
         [("nchat_stream_chat_messages", c) for c in sorted(MESSAGE_SERVER_OWNED)]


@pytest.mark.parametrize(("table", "column"), DIRECT, ids=[f"{t}.{c}" for t, c in DIRECT])
async def test_the_owner_cannot_write_server_owned_columns(table: str, column: str, db: Database,
                                                           world: World) -> None:
    await set_live(db, world.public_stream)
    async with db.session(Claims.user(world.alice)) as s:
        message = await s.fetchval("INSERT INTO nchat_stream_chat_messages (stream_id, user_id, content) "
                                   "VALUES ($1, $2, 'mine') RETURNING id", world.public_stream, world.alice)
    row_id = world.public_stream if table == "nchat_streams" else message
    with pytest.raises(NchatError) as info:
        async with db.session(Claims.user(world.alice)) as s:
            await s.fetch(f"UPDATE {table} SET {column} = {column} WHERE id = $1 RETURNING id", row_id)
    assert info.value.code == "permission-error"


@pytest.mark.parametrize("function", SERVER_ONLY_FUNCTIONS)
@pytest.mark.parametrize("role", ROLES)
async def test_request_roles_cannot_execute_server_only_functions(db: Database, role: str, function: str) -> None:
    async with db.session(Claims.service()) as s:
        allowed = await s.fetchval("SELECT has_function_privilege($1, $2, 'EXECUTE')", PG_ROLE[role],
                                   f"nchat.{function}")
        admin = await s.fetchval("SELECT has_function_privilege('nchat_admin', $1, 'EXECUTE')", f"nchat.{function}")
    assert allowed is False, f"{role} may execute nchat.{function}"
    assert admin is True or function == "ensure_change_triggers()"
