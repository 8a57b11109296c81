"""Property-based fuzzing of every role's GraphQL schema (hypothesis-graphql) over HTTP.

Each example is a valid document of the role's own schema (queries or mutations), with argument
values that mix the cast's real ids, edge values and junk. The server must answer each with JSON
holding `data` or `errors`, never a 5xx; every error carries a known `extensions.code` (never
`unexpected`); and no row RLS hides from the caller shows up: as anonymous, bob, carol or the
moderator nothing of alice's private channel (its id, slug, stream, chat, question) appears in
`data`, and no stream key of alice's streams appears anywhere in the answer.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest
from graphql import build_schema, print_schema
from hypothesis import given, note
from hypothesis import strategies as st
from hypothesis_graphql import mutations, queries
from starlette.applications import Starlette

import nchat_live
from nchat_live.auth import Claims
from nchat_live.db import Database
from tests.support import ADMIN_SECRET, World

from .conftest import EXAMPLES, FUZZ
from .scalars import custom_scalars

# Hasura's codes, then every domain code the project can answer with: the refusals the migrations'
# functions raise (`nchat.refuse(status, 'code', ...)`) and the codes the Python side names
# (`code="..."`). Read from the sources so a new feature's codes count without a list to keep; what
# this rules out is an error the project never meant to give (`unexpected`, a raw database message).
_SRC = Path(nchat_live.__file__).parent
_REFUSAL = re.compile(r"refuse\(\d+, '([a-z][a-z-]*)'")
_CODE_ARG = re.compile(r"\bcode=\"([a-z][a-z-]*)\"")
ALLOWED_CODES = frozenset({
    "validation-failed", "constraint-violation", "permission-error", "invalid-jwt", "access-denied",
    "data-exception", "parse-failed", "not-found", "conflict", "rate-limited", "invalid-transition", "banned",
    "request-too-large", "too-many-operations", "bad-request",
}) | frozenset(
    code
    for path in [*_SRC.rglob("*.sql"), *_SRC.rglob("*.py")]
    for pattern in (_REFUSAL, _CODE_ARG)
    for code in pattern.findall(path.read_text())
) - {"unexpected"}

ROLES = ("anonymous", "user", "moderator", "admin")
# A full-size run (NCHAT_FUZZ_EXAMPLES=2000) takes about 0.15 s an example on two busy cores: past
# the suite's 300 s per test.
pytestmark = pytest.mark.timeout(max(300, EXAMPLES // 2))
_strategies: dict[tuple[str, str, str], st.SearchStrategy[str]] = {}


class Secrets:
    """What RLS hides from everyone but alice and admins, in the world the fuzzer runs against."""

    def __init__(self, world: World, chat_id: str, question_id: str, slug: str) -> None:
        self.in_data = {world.private_channel, world.private_stream, chat_id, question_id, slug,
                        "secret chat fuzz", "secret question fuzz"}
        self.anywhere = {world.public_key, world.private_key}


@pytest.fixture
async def secrets(db: Database, world: World) -> Secrets:
    async with db.session(Claims.service()) as s:
        chat_id = str(await s.fetchval(
            "INSERT INTO nchat_stream_chat_messages (stream_id, user_id, content) VALUES ($1, $2, $3) RETURNING id",
            world.private_stream, world.alice, "secret chat fuzz"))
        question_id = str(await s.fetchval(
            "INSERT INTO nchat_stream_questions (stream_id, user_id, content) VALUES ($1, $2, $3) RETURNING id",
            world.private_stream, world.alice, "secret question fuzz"))
        slug = str(await s.fetchval("SELECT slug FROM nchat_channels WHERE id = $1", world.private_channel))
    return Secrets(world, chat_id, question_id, slug)


def _headers(world: World, role: str, who: str) -> dict[str, str]:
    if role == "admin":
        return {"x-hasura-admin-secret": ADMIN_SECRET}
    if role == "anonymous":
        return {}
    return {"authorization": f"Bearer {world.token(getattr(world, who), role)}"}


def _strategy(app: Starlette, world: World, role: str, kind: str) -> st.SearchStrategy[str]:
    """Documents of one root field each, the field drawn first.

    Drawing whole documents over every root field at once makes documents of kilobytes and costs
    most of the run in generation; one field per document keeps examples small and shrinkable.
    """
    key = (role, kind, world.public_stream)
    if key not in _strategies:
        # The role's schema as a client sees it: printed to SDL and built back.
        schema = build_schema(print_schema(app.state.runtime.graphql.for_role(role)))
        root = schema.query_type if kind == "query" else schema.mutation_type
        assert root is not None
        ids = [world.alice, world.bob, world.carol, world.mod, world.public_channel, world.private_channel,
               world.public_stream, world.private_stream]
        make = queries if kind == "query" else mutations
        scalars = custom_scalars(ids)
        per_field = {name: make(schema, fields=[name], custom_scalars=scalars) for name in sorted(root.fields)}
        _strategies.clear()
        _strategies[key] = st.sampled_from(sorted(per_field)).flatmap(per_field.__getitem__)
    return _strategies[key]


def check_answer(response: httpx.Response, secrets: Secrets, *, keys_hidden: bool, private_rows: bool) -> None:
    """The answer is well-formed and its error codes known; `keys_hidden`: alice's stream keys appear
    nowhere; `private_rows`: nothing of alice's private channel is in `data` (moderators are platform
    staff, who read every channel as admins do, but only admins read stream keys)."""
    assert response.status_code < 500, response.text
    assert response.status_code == 200, response.text
    body = response.json()
    assert isinstance(body, dict) and ("data" in body or "errors" in body), body
    for err in body.get("errors") or []:
        code = (err.get("extensions") or {}).get("code")
        assert code in ALLOWED_CODES, err
        assert isinstance(err.get("message"), str) and err["message"], err
    if keys_hidden:
        for value in secrets.anywhere:
            assert value not in response.text, f"another user's stream key in the answer: {response.text}"
    if private_rows:
        shown = json.dumps(body.get("data"), ensure_ascii=False)
        for value in secrets.in_data:
            assert value not in shown, f"a row RLS hides ({value}) in the answer: {shown}"


@pytest.mark.parametrize("kind", ["query", "mutation"])
@pytest.mark.parametrize("role", ROLES)
@FUZZ
@given(data=st.data())
async def test_schema_fuzz(
    data: st.DataObject, role: str, kind: str, app: Starlette, client: httpx.AsyncClient, world: World,
    secrets: Secrets,
) -> None:
    document = data.draw(_strategy(app, world, role, kind), label="document")
    who = {"user": data.draw(st.sampled_from(["bob", "carol"]), label="user"), "moderator": "mod"}.get(role, "")
    note(document)
    response = await client.post("/v1/graphql", json={"query": document}, headers=_headers(world, role, who))
    note(response.text[:2000])
    check_answer(response, secrets, keys_hidden=role != "admin", private_rows=role in ("anonymous", "user"))
