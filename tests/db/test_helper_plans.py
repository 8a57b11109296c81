"""Definer helpers keep their cached plans whoever calls them (migration 0023).

A plpgsql function's cached plan is kept only while the search_path in force matches the one it was
planned under. A helper without a path of its own runs under its caller's; on a connection with a
temporary namespace (every pooled connection once `Database.read_text` ran there) a statement's path
(pg_temp first) and a definer trigger's `public, pg_temp` differ, and a chat insert calls
`can_read_stream` from both, so it was planned again on every call (10x its cost)."""

from __future__ import annotations

from nchat_live.db import Database


async def test_every_plpgsql_definer_function_has_its_own_search_path(db: Database) -> None:
    conn = await db.connect_raw()
    try:
        missing = await conn.fetch(
            "SELECT p.oid::regprocedure::text AS f FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
            "JOIN pg_language l ON l.oid = p.prolang "
            "WHERE n.nspname = 'nchat' AND p.prosecdef AND l.lanname = 'plpgsql' "
            "AND NOT EXISTS (SELECT 1 FROM unnest(coalesce(p.proconfig, '{}')) c WHERE c LIKE 'search\\_path=%') "
            "ORDER BY 1")
        # A later CREATE OR REPLACE without `SET search_path = public, pg_temp` drops the clause.
        assert [r["f"] for r in missing] == []
        configured = await conn.fetchval(
            "SELECT proconfig FROM pg_proc WHERE oid = 'nchat.can_read_stream(uuid)'::regprocedure")
        assert configured == ["search_path=public, pg_temp"]
    finally:
        await conn.close()
