"""Guest speakers, the domain: invite, accept, decline, revoke, remove, leave, mute, layout, the limit, bans,
and what the media side reads (`read_program`) and admits (`admit_guest`); real Postgres with RLS."""

from __future__ import annotations

from typing import Any

import pytest

from nchat_live.auth import Claims, GuestTokens
from nchat_live.config import Settings
from nchat_live.db import Database
from nchat_live.errors import NchatError
from nchat_live.resolvers import guests, moderation
from nchat_live.resolvers.limits import write_limits
from tests.resolvers.conftest import Events, set_status
from tests.support import World


async def act(db: Database, user: str, work: Any) -> Any:
    async with db.session(Claims.user(user)) as s:
        return await work(s)


async def refused(db: Database, user: str, work: Any) -> NchatError:
    with pytest.raises(NchatError) as info:
        await act(db, user, work)
    return info.value


async def test_invite_accept_mute_layout_remove(db: Database, world: World, events: Events) -> None:
    sid = world.public_stream
    invited = await act(db, world.alice, lambda s: guests.invite_guest(s, sid, world.bob))
    assert (invited["status"], invited["muted"], invited["invited_by"]) == ("invited", False, world.alice)
    gid = invited["id"]
    mine = await act(db, world.bob, guests.my_invitations)
    assert [(r["id"], r["status"], r["stream_title"]) for r in mine] == [(gid, "invited", "public stream")]
    # Not yet accepted: not in the program.
    assert (await guests.read_program(db, sid)).guests == ()

    accepted = await act(db, world.bob, lambda s: guests.respond_invitation(s, gid, True))
    assert accepted["status"] == "accepted" and accepted["responded_at"] is not None
    program = await guests.read_program(db, sid)
    assert program.layout == "grid" and program.focus_guest_id is None
    assert [(g.guest_id, g.user_id, g.display_name, g.muted) for g in program.guests] == [
        (gid, world.bob, "Bob", False)]

    await act(db, world.alice, lambda s: guests.set_guest_muted(s, gid, True))
    stream = await act(db, world.alice, lambda s: guests.set_program_layout(s, sid, "solo", gid))
    assert (stream["program_layout"], stream["program_focus"]) == ("solo", gid)
    program = await guests.read_program(db, sid)
    assert program.layout == "solo" and program.focus_guest_id == gid and program.guests[0].muted

    removed = await act(db, world.alice, lambda s: guests.remove_guest(s, gid))
    assert removed["status"] == "removed"
    program = await guests.read_program(db, sid)
    # The focus goes with the guest (a solo program then shows the broadcaster).
    assert program.guests == () and program.focus_guest_id is None
    assert await act(db, world.bob, guests.my_invitations) == []

    changed = events.of(guests.GUESTS_CHANGED)
    assert [e["guest_id"] for e in changed] == [gid, gid, gid, None, gid]
    assert all(e["stream_id"] == sid and e["channel_id"] == world.public_channel for e in changed)


async def test_decline_revoke_leave_and_invite_again(db: Database, world: World) -> None:
    sid = world.public_stream
    gid = (await act(db, world.alice, lambda s: guests.invite_guest(s, sid, world.bob)))["id"]
    assert (await act(db, world.bob, lambda s: guests.respond_invitation(s, gid, False)))["status"] == "declined"
    error = await refused(db, world.bob, lambda s: guests.respond_invitation(s, gid, True))
    assert error.code == "invitation-not-pending" and "'declined'" in error.message
    # Invited again: the same row, pending again; then revoked before an answer.
    again = await act(db, world.alice, lambda s: guests.invite_guest(s, sid, world.bob))
    assert (again["id"], again["status"], again["responded_at"]) == (gid, "invited", None)
    assert (await act(db, world.alice, lambda s: guests.remove_guest(s, gid)))["status"] == "revoked"
    assert (await refused(db, world.bob, lambda s: guests.respond_invitation(s, gid, True))).code == \
        "invitation-not-pending"
    # Invited, accepted, then the guest leaves (declined: a new invitation is needed to return).
    await act(db, world.alice, lambda s: guests.invite_guest(s, sid, world.bob))
    await act(db, world.bob, lambda s: guests.respond_invitation(s, gid, True))
    error = await refused(db, world.alice, lambda s: guests.leave_guest(s, gid))
    assert error.code == "permission-error"
    assert (await act(db, world.bob, lambda s: guests.leave_guest(s, gid)))["status"] == "declined"
    assert (await refused(db, world.alice, lambda s: guests.remove_guest(s, gid))).code == "guest-not-active"
    # A channel moderator manages guests like the broadcaster.
    assert (await act(db, world.mod, lambda s: guests.invite_guest(s, sid, world.bob)))["status"] == "invited"


async def test_invitation_rules(db: Database, world: World) -> None:
    sid = world.public_stream
    assert (await refused(db, world.alice, lambda s: guests.invite_guest(s, sid, world.alice))).code == \
        "validation-failed"
    # The broadcaster cannot be invited by a moderator either.
    assert (await refused(db, world.mod, lambda s: guests.invite_guest(s, sid, world.alice))).code == \
        "validation-failed"
    unknown = "00000000-0000-4000-8000-000000000000"
    assert (await refused(db, world.alice, lambda s: guests.invite_guest(s, sid, unknown))).code == "user-not-found"
    assert (await refused(db, world.alice, lambda s: guests.invite_guest(s, sid, "x"))).code == "validation-failed"
    # A private channel's stream: only its members may be guests.
    error = await refused(db, world.alice, lambda s: guests.invite_guest(s, world.private_stream, world.bob))
    assert error.code == "guest-not-member"
    # Layout checks.
    assert (await refused(db, world.alice, lambda s: guests.set_program_layout(s, sid, "mosaic", None))).code == \
        "validation-failed"
    gid = (await act(db, world.alice, lambda s: guests.invite_guest(s, sid, world.bob)))["id"]
    error = await refused(db, world.alice, lambda s: guests.set_program_layout(s, sid, "solo", gid))
    assert error.code == "validation-failed" and "not an accepted guest" in error.message
    # An ended stream takes no guests and no answers.
    await set_status(db, sid, "ended")
    assert (await refused(db, world.alice, lambda s: guests.invite_guest(s, sid, world.carol))).code == "stream-ended"
    assert (await refused(db, world.bob, lambda s: guests.respond_invitation(s, gid, True))).code == "stream-ended"


async def test_at_most_max_guests_invited_or_accepted(db: Database, world: World, settings: Settings) -> None:
    sid = world.public_stream
    await write_limits(db, {"max_guests": 2})
    try:
        first = await act(db, world.alice, lambda s: guests.invite_guest(s, sid, world.bob))
        await act(db, world.alice, lambda s: guests.invite_guest(s, sid, world.carol))
        error = await refused(db, world.alice, lambda s: guests.invite_guest(s, sid, world.mod))
        assert error.code == "quota-exceeded" and error.extensions == {"limit": 2} and error.http_status == 429
        # Inviting someone already invited is not a new place.
        assert (await act(db, world.alice, lambda s: guests.invite_guest(s, sid, world.bob)))["id"] == first["id"]
        # A declined invitation frees its place.
        await act(db, world.bob, lambda s: guests.respond_invitation(s, first["id"], False))
        assert (await act(db, world.alice, lambda s: guests.invite_guest(s, sid, world.mod)))["status"] == "invited"
    finally:
        await write_limits(db, {"max_guests": float(settings.max_guests)})


async def test_a_banned_user_is_neither_invited_nor_admitted(db: Database, world: World,
                                                            tokens: GuestTokens) -> None:
    sid = world.public_stream
    gid = (await act(db, world.alice, lambda s: guests.invite_guest(s, sid, world.bob)))["id"]
    await act(db, world.bob, lambda s: guests.respond_invitation(s, gid, True))
    await set_status(db, sid, "live")
    token = (await act(db, world.bob, lambda s: guests.guest_publish_token(
        s, Settings(), tokens, sid)))["token"]
    assert (await guests.admit_guest(db, tokens, sid, token)).guest_id == gid

    await act(db, world.alice, lambda s: moderation.ban_user(s, sid, world.bob, "spam", channel_wide=True))
    with pytest.raises(guests.GuestBanned):
        await guests.admit_guest(db, tokens, sid, token)
    assert (await guests.read_program(db, sid)).guests == ()
    error = await refused(db, world.bob, lambda s: guests.guest_publish_token(s, Settings(), tokens, sid))
    assert error.code == "guest-banned"
    # Invited again while banned (even with the row accepted): refused.
    assert (await refused(db, world.alice, lambda s: guests.invite_guest(s, sid, world.bob))).code == "guest-banned"


async def test_a_banned_user_cannot_be_invited(db: Database, world: World) -> None:
    sid = world.public_stream
    await act(db, world.alice, lambda s: moderation.timeout_user(s, sid, world.carol, 600, "cool down"))
    error = await refused(db, world.alice, lambda s: guests.invite_guest(s, sid, world.carol))
    assert error.code == "guest-banned" and error.http_status == 403
