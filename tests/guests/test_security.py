"""Guest speakers, who may do what: the domain operations and the generated table API refuse the same acts
and show the same rows (real Postgres with RLS, over HTTP /v1/graphql)."""

from __future__ import annotations

from typing import Any

from tests.support import World

from .conftest import GUESTS, INVITE, LAYOUT, MINE, MUTE, REMOVE, RESPOND, TABLE, Caller, code

TABLE_INSERT = ("mutation($s: uuid!, $u: uuid!, $by: uuid!) { insert_nchat_stream_guests_one("
                "object: {stream_id: $s, user_id: $u, invited_by: $by, status: \"accepted\"}) { id } }")
TABLE_MUTE = ("mutation($g: uuid!) { update_nchat_stream_guests_by_pk(pk_columns: {id: $g}, "
              "_set: {muted: true, status: \"accepted\"}) { id } }")
TABLE_DELETE = "mutation($g: uuid!) { delete_nchat_stream_guests_by_pk(id: $g) { id } }"
TABLE_LAYOUT = ("mutation($s: uuid!) { update_nchat_streams_by_pk(pk_columns: {id: $s}, "
                "_set: {program_layout: \"solo\"}) { id } }")


async def _two_guests(gql: Caller, world: World) -> tuple[str, str]:
    """bob accepted, mod invited, on alice's public stream."""
    sid = world.public_stream
    bob = (await gql(world.alice, INVITE, s=sid, u=world.bob))["data"]["inviteGuest"]["id"]
    mod = (await gql(world.alice, INVITE, s=sid, u=world.mod))["data"]["inviteGuest"]["id"]
    assert (await gql(world.bob, RESPOND, g=bob, a=True))["data"]["respondGuestInvitation"]["status"] == "accepted"
    return bob, mod


async def _rows(gql: Caller, world: World, user: str) -> tuple[set[str], set[str]]:
    """The guest ids `user` reads through the domain operation and through the table API."""
    domain = await gql(user, GUESTS, s=world.public_stream)
    table = await gql(user, TABLE, s=world.public_stream)
    return ({r["id"] for r in domain["data"]["streamGuests"]}, {r["id"] for r in table["data"]["nchat_stream_guests"]})


async def _state(gql: Caller, world: World) -> list[tuple[Any, ...]]:
    rows = (await gql(world.alice, GUESTS, s=world.public_stream))["data"]["streamGuests"]
    return sorted((r["id"], r["userId"], r["status"], r["muted"]) for r in rows)


async def test_reads_are_the_same_on_both_paths(gql: Caller, world: World) -> None:
    bob, mod = await _two_guests(gql, world)
    assert await _rows(gql, world, world.alice) == ({bob, mod}, {bob, mod})
    assert await _rows(gql, world, world.bob) == ({bob}, {bob})
    # An outsider (owns nothing, invited to nothing) reads nothing on either path.
    assert await _rows(gql, world, world.carol) == (set(), set())
    assert (await gql(world.carol, MINE))["data"]["myGuestInvitations"] == []
    mine = (await gql(world.bob, MINE))["data"]["myGuestInvitations"]
    assert [(r["id"], r["status"]) for r in mine] == [(bob, "accepted")]
    # Anonymous: refused by the operation, and the table is not in its schema.
    assert code(await gql(None, GUESTS, s=world.public_stream)) == "access-denied"
    assert code(await gql(None, TABLE, s=world.public_stream)) == "validation-failed"
    assert code(await gql(None, MINE)) == "access-denied"


async def test_an_outsider_cannot_invite_mute_remove_or_switch_on_either_path(gql: Caller, world: World) -> None:
    bob, mod = await _two_guests(gql, world)
    before = await _state(gql, world)
    sid, carol = world.public_stream, world.carol

    assert code(await gql(carol, INVITE, s=sid, u=carol)) == "permission-error"
    assert code(await gql(carol, TABLE_INSERT, s=sid, u=carol, by=world.alice)) == "validation-failed"
    # Someone else's guest row: the same answer as an unknown id.
    assert code(await gql(carol, MUTE, g=bob, m=True)) == "guest-not-found"
    assert code(await gql(carol, REMOVE, g=bob)) == "guest-not-found"
    assert code(await gql(carol, RESPOND, g=mod, a=True)) == "guest-not-found"
    assert code(await gql(carol, TABLE_MUTE, g=bob)) == "validation-failed"
    assert code(await gql(carol, TABLE_DELETE, g=bob)) == "validation-failed"
    assert code(await gql(carol, LAYOUT, s=sid, l="solo", f=bob)) == "permission-error"
    assert code(await gql(carol, TABLE_LAYOUT, s=sid)) == "validation-failed"
    assert await _state(gql, world) == before


async def test_a_guest_cannot_manage_guests_or_answer_for_another(gql: Caller, world: World) -> None:
    bob, mod = await _two_guests(gql, world)
    before = await _state(gql, world)
    sid = world.public_stream
    assert code(await gql(world.bob, MUTE, g=bob, m=True)) == "permission-error"
    assert code(await gql(world.bob, REMOVE, g=bob)) == "permission-error"
    assert code(await gql(world.bob, INVITE, s=sid, u=world.carol)) == "permission-error"
    assert code(await gql(world.bob, LAYOUT, s=sid, l="grid", f=None)) == "permission-error"
    assert code(await gql(world.bob, RESPOND, g=mod, a=False)) == "guest-not-found"
    # The broadcaster cannot answer for the invited user.
    assert code(await gql(world.alice, RESPOND, g=mod, a=True)) == "permission-error"
    assert code(await gql(world.bob, TABLE_MUTE, g=bob)) == "validation-failed"
    assert await _state(gql, world) == before


async def test_the_broadcaster_manages_over_graphql(gql: Caller, world: World) -> None:
    bob, mod = await _two_guests(gql, world)
    sid = world.public_stream
    assert (await gql(world.alice, MUTE, g=bob, m=True))["data"]["setGuestMuted"] == {"id": bob, "muted": True}
    switched = (await gql(world.alice, LAYOUT, s=sid, l="solo", f=bob))["data"]["setProgramLayout"]
    assert switched == {"id": sid, "programLayout": "solo", "programFocus": bob}
    read = await gql(None, "query($s: uuid!) { nchat_streams_by_pk(id: $s) { program_layout program_focus } }", s=sid)
    assert read["data"]["nchat_streams_by_pk"] == {"program_layout": "solo", "program_focus": bob}
    assert (await gql(world.alice, REMOVE, g=mod))["data"]["removeGuest"]["status"] == "revoked"
    assert (await gql(world.alice, REMOVE, g=bob))["data"]["removeGuest"]["status"] == "removed"
    assert code(await gql(world.alice, LAYOUT, s=sid, l="tiles", f=None)) == "validation-failed"
