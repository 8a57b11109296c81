"""The guest credential: guestPublishToken mints it for an accepted guest of a preparing/live stream;
admit_guest (the media side's check) takes it for that stream only, while the guest is still accepted; it
is neither a media token nor a login token, and those are not guest tokens."""

from __future__ import annotations

import pytest

from nchat_live.auth import GuestTokens, MediaTokens, media_tokens
from nchat_live.config import Settings
from nchat_live.db import Database
from nchat_live.errors import InvalidJWT
from nchat_live.resolvers import guests
from tests.resolvers.conftest import set_status
from tests.support import JWT_SECRET, World

from .conftest import INVITE, REMOVE, RESPOND, TOKEN, Caller, code


async def _accepted(gql: Caller, world: World, stream_id: str) -> str:
    gid: str = (await gql(world.alice, INVITE, s=stream_id, u=world.bob))["data"]["inviteGuest"]["id"]
    await gql(world.bob, RESPOND, g=gid, a=True)
    return gid


async def test_an_accepted_guest_of_a_live_stream_gets_a_token_the_media_side_admits(
        gql: Caller, world: World, db: Database, tokens: GuestTokens) -> None:
    sid = world.public_stream
    gid = await _accepted(gql, world, sid)
    # Scheduled: nothing to publish to yet.
    assert code(await gql(world.bob, TOKEN, s=sid)) == "stream-not-live"
    await set_status(db, sid, "live")
    minted = (await gql(world.bob, TOKEN, s=sid))["data"]["guestPublishToken"]
    assert minted["whipUrl"] == f"http://testserver/whip/{sid}"
    assert (minted["guestId"], minted["streamId"]) == (gid, sid)
    assert GuestTokens.is_token(minted["token"]) and not MediaTokens.is_media_token(minted["token"])
    admission = await guests.admit_guest(db, tokens, sid, minted["token"])
    assert admission == guests.GuestAdmission(guest_id=gid, user_id=world.bob, stream_id=sid)
    # Nobody else gets one: not invited, anonymous, or only invited.
    assert code(await gql(world.carol, TOKEN, s=sid)) == "guest-not-accepted"
    assert code(await gql(None, TOKEN, s=sid)) == "access-denied"
    await gql(world.alice, INVITE, s=sid, u=world.mod)
    assert code(await gql(world.mod, TOKEN, s=sid)) == "guest-not-accepted"


async def test_a_token_for_one_stream_is_refused_for_another(
        gql: Caller, world: World, db: Database, tokens: GuestTokens) -> None:
    await set_status(db, world.public_stream, "live")
    await set_status(db, world.private_stream, "live")
    await _accepted(gql, world, world.public_stream)
    token = (await gql(world.bob, TOKEN, s=world.public_stream))["data"]["guestPublishToken"]["token"]
    with pytest.raises(guests.InvalidGuestToken) as info:
        await guests.admit_guest(db, tokens, world.private_stream, token)
    assert info.value.http_status == 401 and "another stream" in info.value.message
    # Malformed ids answer the same.
    with pytest.raises(guests.InvalidGuestToken):
        await guests.admit_guest(db, tokens, "not-a-uuid", token)


async def test_a_revoked_or_removed_guests_unexpired_token_is_refused(
        gql: Caller, world: World, db: Database, tokens: GuestTokens) -> None:
    sid = world.public_stream
    await set_status(db, sid, "live")
    gid = await _accepted(gql, world, sid)
    token = (await gql(world.bob, TOKEN, s=sid))["data"]["guestPublishToken"]["token"]
    assert (await gql(world.alice, REMOVE, g=gid))["data"]["removeGuest"]["status"] == "removed"
    with pytest.raises(guests.GuestNotAccepted) as info:
        await guests.admit_guest(db, tokens, sid, token)
    assert info.value.http_status == 403 and "'removed'" in info.value.message
    assert code(await gql(world.bob, TOKEN, s=sid)) == "guest-not-accepted"
    # An ended stream admits nobody, even an accepted guest with a valid token.
    gid = (await gql(world.alice, INVITE, s=sid, u=world.bob))["data"]["inviteGuest"]["id"]
    await gql(world.bob, RESPOND, g=gid, a=True)
    token = (await gql(world.bob, TOKEN, s=sid))["data"]["guestPublishToken"]["token"]
    await set_status(db, sid, "ended")
    with pytest.raises(guests.StreamNotLive):
        await guests.admit_guest(db, tokens, sid, token)


async def test_media_and_login_tokens_are_not_guest_tokens_and_back(
        gql: Caller, world: World, db: Database, tokens: GuestTokens, settings: Settings) -> None:
    sid = world.public_stream
    await set_status(db, sid, "live")
    await _accepted(gql, world, sid)
    media = (await gql(world.bob, "mutation($s: ID!) { mediaToken(streamId: $s) { token } }", s=sid))
    media_token = media["data"]["mediaToken"]["token"]
    for wrong in (media_token, world.token(world.bob), "", "x.y.z"):
        with pytest.raises(guests.InvalidGuestToken):
            await guests.admit_guest(db, tokens, sid, wrong)
    guest = (await gql(world.bob, TOKEN, s=sid))["data"]["guestPublishToken"]["token"]
    with pytest.raises(InvalidJWT):
        media_tokens(settings.jwt_secret, settings.media_token_secret, settings.media_token_ttl_seconds).verify(
            guest, sid)
    response = await gql.client.post("/v1/graphql", json={"query": "{ myGuestInvitations { id } }"},
                                     headers={"authorization": f"Bearer {guest}"})
    assert response.json()["errors"][0]["extensions"]["code"] == "invalid-jwt"


async def test_forged_expired_and_tampered_tokens_are_refused(
        gql: Caller, world: World, db: Database, tokens: GuestTokens) -> None:
    sid = world.public_stream
    await set_status(db, sid, "live")
    gid = await _accepted(gql, world, sid)
    # Signed with the real key but naming bob's guest row for carol: the row is not hers.
    forged, _ = tokens.mint(sid, world.carol, gid)
    with pytest.raises(guests.InvalidGuestToken):
        await guests.admit_guest(db, tokens, sid, forged)
    expired, _ = GuestTokens.from_secrets(JWT_SECRET, None, -30).mint(sid, world.bob, gid)
    with pytest.raises(guests.InvalidGuestToken) as info:
        await guests.admit_guest(db, tokens, sid, expired)
    assert "expired" in info.value.message
    good, _ = tokens.mint(sid, world.bob, gid)
    head, payload, signature = good.split(".")
    tampered = ".".join((head, payload, signature[:-2] + ("AA" if signature[-2:] != "AA" else "BB")))
    with pytest.raises(guests.InvalidGuestToken):
        await guests.admit_guest(db, tokens, sid, tampered)
    assert (await guests.admit_guest(db, tokens, sid, good)).user_id == world.bob
