"""The table metadata the Hasura-style API is generated from, read from the Postgres catalog.

Postgres grants are the single source of truth for what each request role may touch: a column
appears in a role's schema only if the role holds the privilege on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ...db import Session
from ...db.session import PG_ROLES

# Postgres base types that map onto GraphQL's built-in scalars; every other type becomes a scalar
# named after the Postgres type, as Hasura names them (uuid, timestamptz, jsonb, _text, ...).
BUILTIN_SCALARS = {
    "int2": "Int", "int4": "Int", "float4": "Float", "text": "String", "varchar": "String",
    "bpchar": "String", "citext": "String", "name": "String", "bool": "Boolean",
}
# Column types Postgres can order (max/min) besides numbers: strings and date/times.
ORDERABLE_CATEGORIES = {"N", "S", "D"}


@dataclass(frozen=True)
class Column:
    name: str
    sql_type: str  # format_type(): what values are cast to
    pg_type: str  # the type's name: int4, uuid, _text
    category: str  # pg_type.typcategory: N numeric, S string, D date/time, A array, U user (json)...
    nullable: bool
    has_default: bool

    @property
    def scalar(self) -> str:
        return BUILTIN_SCALARS.get(self.pg_type, self.pg_type)

    @property
    def is_array(self) -> bool:
        return self.category == "A"

    @property
    def is_json(self) -> bool:
        return self.pg_type in ("json", "jsonb")

    @property
    def is_numeric(self) -> bool:
        return self.category == "N"

    @property
    def is_orderable(self) -> bool:
        return self.category in ORDERABLE_CATEGORIES


@dataclass(frozen=True)
class Relationship:
    name: str
    kind: Literal["object", "array"]
    table: str
    remote_table: str
    mapping: tuple[tuple[str, str], ...]  # (local column, remote column)


@dataclass
class Table:
    name: str
    columns: dict[str, Column]
    primary_key: tuple[str, ...] = ()
    # constraint name -> columns; the primary key and unique constraints (on_conflict targets)
    unique_constraints: dict[str, tuple[str, ...]] = field(default_factory=dict)
    relationships: dict[str, Relationship] = field(default_factory=dict)

    @property
    def singular(self) -> str:
        base = self.name.removeprefix("nchat_")
        return base[:-1] if base.endswith("s") else base


@dataclass
class TablePermissions:
    select: frozenset[str]
    insert: frozenset[str]
    update: frozenset[str]
    delete: bool


@dataclass
class Catalog:
    tables: dict[str, Table]
    # role ("user") -> table -> permissions; tables the role cannot read at all are absent
    permissions: dict[str, dict[str, TablePermissions]]


_TABLES = r"""
SELECT c.oid, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition
  AND c.relname LIKE 'nchat\_%' AND c.relname <> 'nchat_schema_migrations'
ORDER BY c.relname
"""

_COLUMNS = """
SELECT a.attrelid, a.attnum, a.attname, format_type(a.atttypid, a.atttypmod) AS sql_type,
       t.typname AS pg_type, t.typcategory::text AS category, NOT a.attnotnull AS nullable,
       a.atthasdef OR a.attidentity <> '' OR a.attgenerated <> '' AS has_default,
       array(SELECT p.role FROM unnest($2::text[]) AS p(role)
             WHERE has_column_privilege(p.role, a.attrelid, a.attnum, 'SELECT')) AS can_select,
       array(SELECT p.role FROM unnest($2::text[]) AS p(role)
             WHERE has_column_privilege(p.role, a.attrelid, a.attnum, 'INSERT')) AS can_insert,
       array(SELECT p.role FROM unnest($2::text[]) AS p(role)
             WHERE has_column_privilege(p.role, a.attrelid, a.attnum, 'UPDATE')) AS can_update
FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
WHERE a.attrelid = ANY($1::oid[]) AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attrelid, a.attnum
"""

_DELETE = """
SELECT c.oid, array(SELECT p.role FROM unnest($2::text[]) AS p(role)
                    WHERE has_table_privilege(p.role, c.oid, 'DELETE')) AS can_delete
FROM pg_class c WHERE c.oid = ANY($1::oid[])
"""

_CONSTRAINTS = """
SELECT conrelid, conname, contype::text AS contype, conkey, confrelid, confkey FROM pg_constraint
WHERE conrelid = ANY($1::oid[]) AND contype IN ('p', 'u', 'f')
ORDER BY conrelid, contype, conname
"""


async def load_catalog(session: Session) -> Catalog:
    """Read tables, columns, keys, relationships and per-role column privileges."""
    rows = await session.fetch(_TABLES)
    names = {r["oid"]: r["relname"] for r in rows}
    oids = list(names)
    pg_roles = list(PG_ROLES.values())
    by_pg_role = {v: k for k, v in PG_ROLES.items()}
    tables = {name: Table(name, {}) for name in names.values()}
    attnames: dict[tuple[int, int], str] = {}
    grants: dict[str, dict[str, dict[str, set[str]]]] = {
        role: {t: {"select": set(), "insert": set(), "update": set()} for t in tables} for role in PG_ROLES
    }
    for r in await session.fetch(_COLUMNS, oids, pg_roles):
        table = names[r["attrelid"]]
        attnames[(r["attrelid"], r["attnum"])] = r["attname"]
        tables[table].columns[r["attname"]] = Column(
            r["attname"], r["sql_type"], r["pg_type"], r["category"], r["nullable"], r["has_default"]
        )
        for privilege in ("select", "insert", "update"):
            for pg_role in r[f"can_{privilege}"]:
                grants[by_pg_role[pg_role]][table][privilege].add(r["attname"])
    deletes = {names[r["oid"]]: {by_pg_role[p] for p in r["can_delete"]}
               for r in await session.fetch(_DELETE, oids, pg_roles)}
    foreign: list[tuple[str, str, tuple[str, ...], str, tuple[str, ...]]] = []
    for r in await session.fetch(_CONSTRAINTS, oids):
        table = tables[names[r["conrelid"]]]
        cols = tuple(attnames[(r["conrelid"], n)] for n in r["conkey"])
        if r["contype"] == "p":
            table.primary_key = cols
            table.unique_constraints[r["conname"]] = cols
        elif r["contype"] == "u":
            table.unique_constraints[r["conname"]] = cols
        elif r["confrelid"] in names:
            remote = names[r["confrelid"]]
            remote_cols = tuple(attnames[(r["confrelid"], n)] for n in r["confkey"])
            foreign.append((table.name, r["conname"], cols, remote, remote_cols))
    _add_relationships(tables, foreign)
    permissions: dict[str, dict[str, TablePermissions]] = {}
    for role in PG_ROLES:
        permissions[role] = {}
        for name in tables:
            g = grants[role][name]
            if g["select"]:
                permissions[role][name] = TablePermissions(
                    frozenset(g["select"]), frozenset(g["insert"]), frozenset(g["update"]),
                    role in deletes.get(name, set()),
                )
    return Catalog(tables, permissions)


def _add_relationships(
    tables: dict[str, Table], foreign: list[tuple[str, str, tuple[str, ...], str, tuple[str, ...]]]
) -> None:
    """Name relationships the way the nchat app does: stream.channel, stream.chat_messages, ...

    Object side: the foreign-key column without `_id` (broadcaster_id -> broadcaster), or
    `<column>_<remote singular>` for columns without the suffix (pinned_by -> pinned_by_user).
    Array side: the remote table without `nchat_` and without the local table's singular prefix
    (nchat_stream_chat_messages from nchat_streams -> chat_messages); when one table points at
    another through several keys, the ones not named after the target get `_by_<column>`.
    """
    per_pair: dict[tuple[str, str], int] = {}
    for local, _, _, remote, _ in foreign:
        per_pair[(local, remote)] = per_pair.get((local, remote), 0) + 1
    for local, _, cols, remote, remote_cols in foreign:
        source, target = tables[local], tables[remote]
        col = cols[0]
        stem = col.removesuffix("_id") if col.endswith("_id") else f"{col}_{target.singular}"
        if len(cols) > 1:
            stem = target.singular
        pairs = tuple(zip(cols, remote_cols, strict=True))
        _put(source, Relationship(_free(source, stem), "object", local, remote, pairs))
        base = local.removeprefix("nchat_")
        base = base.removeprefix(target.singular + "_")
        if per_pair[(local, remote)] > 1 and col.removesuffix("_id") != target.singular:
            base = f"{base}_by_{col.removesuffix('_id')}"
        _put(target, Relationship(_free(target, base), "array", remote, local, tuple((r, lc) for lc, r in pairs)))


def _free(table: Table, name: str) -> str:
    while name in table.columns or name in table.relationships:
        name += "_rel"
    return name


def _put(table: Table, rel: Relationship) -> None:
    table.relationships[rel.name] = rel
