"""jsonb update operators (_append _prepend _delete_key _delete_elem _delete_at_path) on update roots."""

from __future__ import annotations

from starlette.applications import Starlette

from nchat_live.auth import Claims
from nchat_live.graphql.context import Context
from nchat_live.graphql.execution import execute
from tests.graphql.conftest import GQL, code, data
from tests.support import World

BY_PK = """mutation($id: uuid!, $set: nchat_users_set_input, $a: nchat_users_append_input,
    $p: nchat_users_prepend_input, $k: nchat_users_delete_key_input, $e: nchat_users_delete_elem_input,
    $path: nchat_users_delete_at_path_input) {
  update_nchat_users_by_pk(pk_columns: {id: $id}, _set: $set, _append: $a, _prepend: $p, _delete_key: $k,
                           _delete_elem: $e, _delete_at_path: $path) { metadata display_name }
}"""


async def test_each_operator_by_pk_in_one_statement(app: Starlette, cast: World) -> None:
    async def run(**variables: object) -> object:
        ctx = Context(app.state.runtime, Claims.user(cast.bob))
        result = await execute(ctx, BY_PK, {"id": cast.bob, **variables})
        assert ctx.statements == 1
        return data(result)["update_nchat_users_by_pk"]["metadata"]

    assert await run(set={"metadata": {"x": 1, "k": [1, 2, 3], "gone": True}}) == {
        "x": 1, "k": [1, 2, 3], "gone": True}
    # Several operators on different columns/values go into the same UPDATE.
    assert await run(a={"metadata": {"y": 2}}, set={"display_name": "Bobby"}) == {
        "x": 1, "k": [1, 2, 3], "gone": True, "y": 2}
    # prepend: on equal keys the existing (right-hand) value wins, as jsonb || does.
    assert await run(p={"metadata": {"x": 0, "z": 3}}) == {"x": 1, "k": [1, 2, 3], "gone": True, "y": 2, "z": 3}
    assert await run(k={"metadata": "gone"}) == {"x": 1, "k": [1, 2, 3], "y": 2, "z": 3}
    assert await run(path={"metadata": ["k", "0"]}) == {"x": 1, "k": [2, 3], "y": 2, "z": 3}
    assert await run(set={"metadata": [1, 2, 3]}) == [1, 2, 3]
    assert await run(e={"metadata": -1}) == [1, 2]
    assert await run(a={"metadata": 9}) == [1, 2, 9]
    assert await run(p={"metadata": [0]}) == [0, 1, 2, 9]


async def test_update_where_and_many(gql: GQL, cast: World) -> None:
    q = """mutation($s: uuid!) { update_nchat_streams(where: {id: {_eq: $s}}, _set: {metadata: {a: 1}}) {
      affected_rows } }"""
    assert data(await gql(q, {"s": cast.public_stream}, as_="alice")) == {"update_nchat_streams": {"affected_rows": 1}}
    many = """mutation($s: uuid!) { update_nchat_streams_many(updates: [
        {where: {id: {_eq: $s}}, _append: {metadata: {b: 2}}},
        {where: {id: {_eq: $s}}, _delete_key: {metadata: "a"}, _inc: {slow_mode_seconds: 1}}]) {
      affected_rows returning { metadata } } }"""
    got = data(await gql(many, {"s": cast.public_stream}, as_="alice"))["update_nchat_streams_many"]
    assert got == [{"affected_rows": 1, "returning": [{"metadata": {"a": 1, "b": 2}}]},
                   {"affected_rows": 1, "returning": [{"metadata": {"b": 2}}]}]


async def test_rls_still_decides(gql: GQL, cast: World) -> None:
    """bob may update only himself: appending to alice's metadata touches nothing."""
    q = """mutation($id: uuid!) { update_nchat_users(where: {id: {_eq: $id}}, _append: {metadata: {pwned: true}}) {
      affected_rows } }"""
    assert data(await gql(q, {"id": cast.alice}, as_="bob")) == {"update_nchat_users": {"affected_rows": 0}}
    read = data(await gql("query($id: uuid!) { nchat_users_by_pk(id: $id) { metadata } }", {"id": cast.alice},
                          as_="admin"))
    assert "pwned" not in read["nchat_users_by_pk"]["metadata"]


async def test_refusals(gql: GQL, cast: World) -> None:
    both = await gql(BY_PK, {"id": cast.bob, "set": {"metadata": {}}, "a": {"metadata": {"x": 1}}}, as_="bob")
    assert code(both) == "validation-failed" and "metadata" in both["errors"][0]["message"]
    # Questions have no jsonb column the user may update: no jsonb operators there (as Hasura).
    q = """mutation($id: uuid!) { update_nchat_stream_questions(where: {id: {_eq: $id}},
      _append: {answer: "x"}) { affected_rows } }"""
    assert code(await gql(q, {"id": cast.bob}, as_="bob")) == "validation-failed"
    # delete_elem on an object is Postgres' "cannot delete from object using integer index".
    await gql(BY_PK, {"id": cast.bob, "set": {"metadata": {"x": 1}}}, as_="bob")
    assert code(await gql(BY_PK, {"id": cast.bob, "e": {"metadata": 0}}, as_="bob")) == "data-exception"
