"""The fast path (graphql/hasura/fast.py): Postgres's JSON text as the response, a plan cache.

Every document is answered both ways, the normal path (graphql-core executing the resolvers) and
the fast path (one statement, its text sent as it is): the answers must be equal, key order
included. Documents the fast path does not take, and errors, must come back as the normal path's.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from starlette.applications import Starlette

from nchat_live.auth import Claims
from nchat_live.db import Database
from nchat_live.db.database import setup_batch
from nchat_live.graphql.context import Context
from nchat_live.graphql.execution import execute, execute_json
from nchat_live.graphql.hasura.fast import Stats
from tests.graphql.conftest import GQL, data
from tests.support import World

pytestmark = pytest.mark.usefixtures("chat")

NOBODY = "00000000-0000-0000-0000-000000000000"

DOCUMENTS: list[tuple[str, str, dict[str, Any] | None]] = [
    ("aliases, nested relationships", """query($s: uuid!) {
      first: nchat_streams(where: {id: {_eq: $s}}) {
        t: title id status
        channel { name slug }
        broadcaster { username }
        msgs: chat_messages(order_by: {created_at: asc}, limit: 3) { content author: user { username } }
        chat_messages_aggregate { aggregate { count } }
      }
      again: nchat_streams(where: {id: {_eq: $s}}) { id }
    }""", {"s": "public"}),
    ("aggregates", """query($s: uuid!) {
      nchat_stream_chat_messages_aggregate(where: {stream_id: {_eq: $s}}) {
        aggregate { count users: count(columns: user_id, distinct: true) max { created_at content } min { content } }
        nodes { content }
      }
    }""", {"s": "public"}),
    ("variables, order_by object, limit", """query($s: uuid!, $o: [nchat_stream_chat_messages_order_by!], $n: Int) {
      nchat_stream_chat_messages(where: {stream_id: {_eq: $s}}, order_by: $o, limit: $n) { content created_at }
    }""", {"s": "public", "o": [{"content": "desc"}], "n": 2}),
    ("fragments and inline fragments", """query Q($s: uuid!) { ...Root }
      fragment Root on query_root { nchat_streams_by_pk(id: $s) { ...S ... on nchat_streams { status } } }
      fragment S on nchat_streams { id title channel { ...C } }
      fragment C on nchat_channels { name }""", {"s": "public"}),
    ("null results", f"""{{ nchat_streams_by_pk(id: "{NOBODY}") {{ id }}
      nchat_streams(where: {{id: {{_eq: "{NOBODY}"}}}}) {{ id }}
      nchat_users_aggregate(where: {{id: {{_eq: "{NOBODY}"}}}}) {{ aggregate {{ count max {{ username }} }} }} }}""",
     None),
    ("skip and include", """query($yes: Boolean!, $s: uuid!) {
      nchat_streams_by_pk(id: $s) { id title @include(if: $yes) status @skip(if: $yes) }
    }""", {"yes": True, "s": "public"}),
    ("a nested list with a limit", """query($s: uuid!) {
      nchat_streams_by_pk(id: $s) { title chat_messages(limit: 1, order_by: {created_at: desc}) { content } }
    }""", {"s": "public"}),
]

# The fast path does not take these (the normal path answers), or answers with the normal path's error.
OTHERS: list[tuple[str, str, dict[str, Any] | None]] = [
    ("__typename", "{ nchat_streams(limit: 1) { __typename id } }", None),
    ("a domain field beside a table field", "{ liveStreams { id } nchat_streams(limit: 1) { id } }", None),
    ("a bad uuid (Postgres refuses it)", "query($s: uuid!) { nchat_streams_by_pk(id: $s) { id } }", {"s": "nope"}),
    ("a bad variable type", "query($n: Int) { nchat_streams(limit: $n) { id } }", {"n": "x"}),
    ("an unknown field", "{ nchat_streams { nope } }", None),
    ("a negative limit", "{ nchat_streams(limit: -1) { id } }", None),
]


def pairs(value: Any) -> Any:
    """A JSON value with every object as a list of (key, value): equality includes key order."""
    if isinstance(value, dict):
        return [(k, pairs(v)) for k, v in value.items()]
    if isinstance(value, list):
        return [pairs(v) for v in value]
    return value


def ctx_of(app: Starlette, user: str) -> Context:
    return Context(app.state.runtime, Claims.user(user))


def resolve(variables: dict[str, Any] | None, cast: World) -> dict[str, Any] | None:
    if variables is None:
        return None
    return {k: cast.public_stream if v == "public" else v for k, v in variables.items()}


async def both(app: Starlette, cast: World, query: str, variables: dict[str, Any] | None) -> tuple[Any, Any]:
    normal = await execute(ctx_of(app, cast.bob), query, variables)
    fast = json.loads(await execute_json(ctx_of(app, cast.bob), query, variables),
                      object_pairs_hook=lambda items: dict(items))
    return pairs(json.loads(json.dumps(normal))), pairs(fast)


@pytest.mark.parametrize(("label", "query", "variables"), DOCUMENTS, ids=[d[0] for d in DOCUMENTS])
async def test_fast_path_answers_as_the_normal_path(app: Starlette, cast: World, label: str, query: str,
                                                   variables: dict[str, Any] | None) -> None:
    values = resolve(variables, cast)
    compiled, hits = Stats.compiled, Stats.hits
    normal, fast = await both(app, cast, query, values)
    assert Stats.compiled + Stats.hits > compiled + hits, "the fast path did not take the document"
    assert "errors" not in dict(normal), normal
    assert fast == normal


@pytest.mark.parametrize(("label", "query", "variables"), OTHERS, ids=[d[0] for d in OTHERS])
async def test_other_documents_and_errors_answer_as_the_normal_path(
        app: Starlette, cast: World, label: str, query: str, variables: dict[str, Any] | None) -> None:
    normal, fast = await both(app, cast, query, resolve(variables, cast))
    assert fast == normal


async def test_plan_cache_compiles_once_per_document_and_role(app: Starlette, cast: World, gql: GQL) -> None:
    query = "query($s: uuid!) { nchat_streams_by_pk(id: $s) { id title channel { name } } }"
    compiled, hits = Stats.compiled, Stats.hits
    first = data(await gql(query, {"s": cast.public_stream}, as_="bob"))
    assert first["nchat_streams_by_pk"]["id"] == cast.public_stream
    # Another value of a string variable: the same plan, the same SQL (a prepared statement).
    assert data(await gql(query, {"s": NOBODY}, as_="bob")) == {"nchat_streams_by_pk": None}
    assert data(await gql(query, {"s": cast.public_stream}, as_="carol")) == first
    assert (Stats.compiled - compiled, Stats.hits - hits) == (1, 2)
    # Another role compiles its own plan (its schema, its columns).
    await gql(query, {"s": cast.public_stream}, as_="mod", role="moderator")
    assert Stats.compiled - compiled == 2
    # A variable that shapes the SQL (a limit) is part of the key.
    limited = "query($n: Int) { nchat_users(limit: $n, order_by: {id: asc}) { id } }"
    for n in (1, 2, 1):
        assert len(data(await gql(limited, {"n": n}, as_="bob"))["nchat_users"]) == n
    assert Stats.compiled - compiled == 4


async def test_http_answers_fast_path_bytes(gql: GQL, cast: World) -> None:
    response = await gql.client.post(
        "/v1/graphql", json={"query": "query($s: uuid!) { nchat_streams_by_pk(id: $s) { id } }",
                             "variables": {"s": cast.public_stream}},
        headers={"authorization": f"Bearer {cast.token(cast.bob)}"})
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"data": {"nchat_streams_by_pk": {"id": cast.public_stream}}}
    batch = await gql.client.post(
        "/v1/graphql", json=[{"query": f"{{ nchat_streams_by_pk(id: \"{NOBODY}\") {{ id }} }}"},
                             {"query": "{ nope }"}],
        headers={"authorization": f"Bearer {cast.token(cast.bob)}"})
    answers = batch.json()
    assert answers[0] == {"data": {"nchat_streams_by_pk": None}}
    assert answers[1]["errors"][0]["extensions"]["code"] == "validation-failed"


async def test_session_setup_is_one_batch_that_quotes_the_claims(db: Database, cast: World) -> None:
    """The claims travel as a dollar-quoted literal in the set-up batch: whatever a session variable
    holds (quotes, the quoting tag itself), Postgres reads back exactly the claims."""
    odd = "x'); SELECT 1; -- $nchat$ $$ \\ \u00e9"
    claims = Claims("user", cast.bob, session_variables={"x-hasura-odd": odd})
    async with db.session(claims, statement_timeout_ms=1234) as session:
        setting, role, timeout = await session.fetchrow(
            "SELECT current_setting('hasura.user'), current_user, current_setting('statement_timeout')")
    assert json.loads(setting) == json.loads(claims.as_setting())
    assert (role, timeout) == ("nchat_user", "1234ms")
    # A setting holding the usual tag is quoted with another: the tag occurs once, inside the value.
    assert setup_batch("nchat_user", '{"a": "$nchat$"}', None).count("$nchat$") == 1
