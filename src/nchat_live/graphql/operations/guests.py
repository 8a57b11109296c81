"""Guest speakers as GraphQL fields (resolvers/guests.py): `Query.streamGuests`, `myGuestInvitations`;
`Mutation.inviteGuest`, `respondGuestInvitation`, `removeGuest`, `leaveGuest`, `setGuestMuted`,
`setProgramLayout`, `guestPublishToken`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry
from strawberry.types import Info

from ...auth import guest_tokens
from ...resolvers import guests
from ..context import Context
from . import _stream, run
from .types import StreamObject, build

__all__ = ["GuestPublishToken", "Mutation", "Query", "StreamGuest"]


@strawberry.type(description="A user invited to appear on a stream: status invited, accepted, declined (or left), "
                             "revoked (invitation withdrawn) or removed (taken off the stream); muted by a manager.")
class StreamGuest:
    id: strawberry.ID
    stream_id: strawberry.ID
    user_id: strawberry.ID
    invited_by: strawberry.ID
    status: str
    muted: bool
    created_at: datetime
    responded_at: datetime | None
    username: str
    display_name: str | None
    stream_title: str | None
    stream_status: str | None


@strawberry.type(description="A guest's WHIP publish credential: POST the SDP offer to whipUrl with "
                             "`Authorization: Bearer <token>`; it expires at expiresAt (ask again for a new one).")
class GuestPublishToken:
    token: str
    whip_url: str
    guest_id: strawberry.ID
    stream_id: strawberry.ID
    expires_at: datetime


def _guest(data: dict[str, Any]) -> StreamGuest:
    return build(StreamGuest, data)


@strawberry.type
class Query:
    @strawberry.field(description="A stream's guests: all of them for its managers, your own row for a guest.")
    async def stream_guests(self, info: Info[Context, None], stream_id: strawberry.ID) -> list[StreamGuest]:
        return [_guest(r) for r in await run(info, lambda s: guests.list_guests(s, str(stream_id)))]

    @strawberry.field(description="Your pending guest invitations and accepted places, newest first.")
    async def my_guest_invitations(self, info: Info[Context, None]) -> list[StreamGuest]:
        return [_guest(r) for r in await run(info, guests.my_invitations)]


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Invite a user as a guest speaker (the stream's managers; at most "
                                     "NCHAT_MAX_GUESTS invited + accepted per stream).")
    async def invite_guest(
        self, info: Info[Context, None], stream_id: strawberry.ID, user_id: strawberry.ID
    ) -> StreamGuest:
        return _guest(await run(info, lambda s: guests.invite_guest(s, str(stream_id), str(user_id))))

    @strawberry.mutation(description="Accept or decline your invitation.")
    async def respond_guest_invitation(
        self, info: Info[Context, None], guest_id: strawberry.ID, accept: bool
    ) -> StreamGuest:
        return _guest(await run(info, lambda s: guests.respond_invitation(s, str(guest_id), accept)))

    @strawberry.mutation(description="Revoke a pending invitation or remove an accepted guest (the stream's "
                                     "managers); the guest is disconnected at once.")
    async def remove_guest(self, info: Info[Context, None], guest_id: strawberry.ID) -> StreamGuest:
        return _guest(await run(info, lambda s: guests.remove_guest(s, str(guest_id))))

    @strawberry.mutation(description="Leave a stream you are a guest of (status declined; a new invitation is "
                                     "needed to come back).")
    async def leave_guest(self, info: Info[Context, None], guest_id: strawberry.ID) -> StreamGuest:
        return _guest(await run(info, lambda s: guests.leave_guest(s, str(guest_id))))

    @strawberry.mutation(description="Mute or unmute a guest's audio in the program (the stream's managers).")
    async def set_guest_muted(self, info: Info[Context, None], guest_id: strawberry.ID, muted: bool) -> StreamGuest:
        return _guest(await run(info, lambda s: guests.set_guest_muted(s, str(guest_id), muted)))

    @strawberry.mutation(description="The program layout: solo (focusGuestId full-frame, null: the broadcaster), "
                                     "side_by_side or grid (the stream's managers).")
    async def set_program_layout(
        self, info: Info[Context, None], stream_id: strawberry.ID, layout: str,
        focus_guest_id: strawberry.ID | None = None,
    ) -> StreamObject:
        row = await run(info, lambda s: guests.set_program_layout(
            s, str(stream_id), layout, str(focus_guest_id) if focus_guest_id is not None else None))
        return _stream(info, row)

    @strawberry.mutation(description="A WHIP publish token for you as an accepted guest of a preparing or live "
                                     "stream.")
    async def guest_publish_token(self, info: Info[Context, None], stream_id: strawberry.ID) -> GuestPublishToken:
        settings = info.context.runtime.settings
        tokens = guest_tokens(settings.jwt_secret, settings.media_token_secret, settings.guest_token_ttl_seconds)
        return build(GuestPublishToken, await run(info, lambda s: guests.guest_publish_token(
            s, settings, tokens, str(stream_id))))
