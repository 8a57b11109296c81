"""Guest speakers: a stream's managers invite signed-in users to appear on the stream (issue 19).

The broadcaster (or a channel owner/admin/moderator, or staff) invites a user; the invited user accepts or
declines while signed in; managers revoke a pending invitation or remove an accepted guest (`removeGuest`),
mute a guest and switch the program layout (solo with a focus, side by side, grid); a guest withdraws with
`leaveGuest` (status 'declined'; a new invitation is needed to come back). An accepted guest of a preparing
or live stream gets a publish token (auth.GuestTokens, typ "nchat-guest", scoped to the stream) for WHIP.

Every rule lives in the definer functions of migration 0019 (request roles cannot write the table), so the
table API and these operations refuse the same acts; this module parses input, calls them, reads the
result back under the caller's RLS and publishes `stream.guests_changed` {stream_id, channel_id, guest_id}.

The media side calls `admit_guest` (a WHIP guest publisher) and `read_program` (what to compose), both
with the server's rights, like media/worker/streams.read_stream_info.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from ..auth import Claims, GuestTokens
from ..config import Settings
from ..db import Database, Session
from ..errors import NchatError, NotFound
from ._common import Row, StreamNotLive, event_base, load_stream, parse_uuid, require_user, row
from .streams import stream_urls

GUESTS_CHANGED = "stream.guests_changed"
LAYOUTS = ("solo", "side_by_side", "grid")
GUEST_COLUMNS = (
    "g.id, g.stream_id, g.user_id, g.invited_by, g.status, g.muted, g.created_at, g.responded_at, "
    "u.username, u.display_name, s.title AS stream_title, s.status AS stream_status"
)
_GUEST_FROM = (
    "FROM nchat_stream_guests g JOIN nchat_users u ON u.id = g.user_id LEFT JOIN nchat_streams s ON s.id = g.stream_id"
)


class InvalidGuestToken(NchatError):
    code = "invalid-guest-token"
    http_status = 401


class GuestNotAccepted(NchatError):
    code = "guest-not-accepted"
    http_status = 403


class GuestBanned(NchatError):
    code = "guest-banned"
    http_status = 403


# nchat.guest_admission's refusals as this module's classes (the media side may match on either).
_ADMISSION_ERRORS: dict[str, type[NchatError]] = {
    InvalidGuestToken.code: InvalidGuestToken, GuestNotAccepted.code: GuestNotAccepted,
    GuestBanned.code: GuestBanned, StreamNotLive.code: StreamNotLive}


@dataclass(frozen=True)
class GuestAdmission:
    guest_id: str
    user_id: str
    stream_id: str


@dataclass(frozen=True)
class ProgramGuest:
    guest_id: str
    user_id: str
    display_name: str
    muted: bool


@dataclass(frozen=True)
class ProgramState:
    layout: str  # 'solo' | 'side_by_side' | 'grid'
    focus_guest_id: str | None
    guests: tuple[ProgramGuest, ...]  # accepted guests only, in invitation order


# -- reading ----------------------------------------------------------------------------------------

async def _read_guest(session: Session, guest_id: str) -> Row:
    record = await session.fetchrow(f"SELECT {GUEST_COLUMNS} {_GUEST_FROM} WHERE g.id = $1", guest_id)
    if record is None:
        raise NotFound(f"guest '{guest_id}' not found", code="guest-not-found")
    return row(record)


async def list_guests(session: Session, stream_id: str) -> list[Row]:
    """The stream's guest rows the caller may read: all of them for its managers, their own for a guest,
    none for anyone else (the same rows the table API gives)."""
    require_user(session, "see a stream's guests")
    stream = await load_stream(session, stream_id)
    records = await session.fetch(
        f"SELECT {GUEST_COLUMNS} {_GUEST_FROM} WHERE g.stream_id = $1 ORDER BY g.created_at, g.id", stream["id"])
    return [row(r) for r in records]


async def my_invitations(session: Session) -> list[Row]:
    """The caller's pending invitations and accepted places, newest first."""
    me = require_user(session, "see your guest invitations")
    records = await session.fetch(
        f"SELECT {GUEST_COLUMNS} {_GUEST_FROM} WHERE g.user_id = $1 AND g.status IN ('invited', 'accepted') "
        "ORDER BY g.created_at DESC, g.id", me)
    return [row(r) for r in records]


# -- the domain's acts (definer functions of migration 0019) ------------------------------------------

async def _changed(session: Session, guest: Row) -> Row:
    stream = await load_stream(session, str(guest["stream_id"]))
    session.emit(GUESTS_CHANGED, {**event_base(stream), "guest_id": str(guest["id"])})
    return guest


async def invite_guest(session: Session, stream_id: str, user_id: str) -> Row:
    require_user(session, "invite guests")
    sid = parse_uuid(stream_id, field="streamId")
    uid = parse_uuid(user_id, field="userId")
    before = await session.fetchval(
        "SELECT status FROM nchat_stream_guests WHERE stream_id = $1 AND user_id = $2", sid, uid)
    gid = await session.fetchval("SELECT id FROM nchat.guest_invite($1, $2)", sid, uid)
    guest = await _read_guest(session, str(gid))
    # Inviting someone already invited or accepted changes nothing: no event.
    return guest if before in ("invited", "accepted") else await _changed(session, guest)


async def respond_invitation(session: Session, guest_id: str, accept: bool) -> Row:
    require_user(session, "answer an invitation")
    gid = parse_uuid(guest_id, field="guestId")
    await session.fetchval("SELECT id FROM nchat.guest_respond($1, $2)", gid, accept)
    return await _changed(session, await _read_guest(session, gid))


async def remove_guest(session: Session, guest_id: str) -> Row:
    """A manager revokes a pending invitation ('revoked') or removes an accepted guest ('removed')."""
    require_user(session, "remove guests")
    gid = parse_uuid(guest_id, field="guestId")
    await session.fetchval("SELECT id FROM nchat.guest_remove($1, false)", gid)
    return await _changed(session, await _read_guest(session, gid))


async def leave_guest(session: Session, guest_id: str) -> Row:
    """The guest withdraws (status 'declined'); the media worker disconnects them on the event."""
    require_user(session, "leave")
    gid = parse_uuid(guest_id, field="guestId")
    await session.fetchval("SELECT id FROM nchat.guest_remove($1, true)", gid)
    return await _changed(session, await _read_guest(session, gid))


async def set_guest_muted(session: Session, guest_id: str, muted: bool) -> Row:
    require_user(session, "mute guests")
    gid = parse_uuid(guest_id, field="guestId")
    await session.fetchval("SELECT id FROM nchat.guest_set_muted($1, $2)", gid, muted)
    return await _changed(session, await _read_guest(session, gid))


async def set_program_layout(session: Session, stream_id: str, layout: str, focus_guest_id: str | None) -> Row:
    """The program's layout and the guest a solo frame shows (None: the broadcaster); the stream row."""
    require_user(session, "switch the program layout")
    sid = parse_uuid(stream_id, field="streamId")
    focus = parse_uuid(focus_guest_id, field="focusGuestId") if focus_guest_id else None
    await session.fetchval("SELECT program_layout FROM nchat.stream_set_program($1, $2, $3)", sid, layout, focus)
    stream = await load_stream(session, sid)
    session.emit(GUESTS_CHANGED, {**event_base(stream), "guest_id": None})
    return stream


async def guest_publish_token(session: Session, settings: Settings, tokens: GuestTokens, stream_id: str) -> Row:
    """A publish token for the caller, an accepted guest of a preparing or live stream, and its WHIP URL."""
    me = require_user(session, "publish as a guest")
    sid = parse_uuid(stream_id, field="streamId")
    gid = await session.fetchval("SELECT nchat.guest_publish_grant($1)", sid)
    token, expires = tokens.mint(sid, me, str(gid))
    return {"token": token, "whip_url": stream_urls(settings, sid)["whip_url"], "guest_id": str(gid),
            "stream_id": sid, "expires_at": datetime.fromtimestamp(expires, tz=UTC)}


# -- the media side (server rights) -------------------------------------------------------------------

async def admit_guest(database: Database, tokens: GuestTokens, stream_id: str, token: str) -> GuestAdmission:
    """Admit a WHIP guest publisher: the token must be a valid guest token for this stream, and its guest
    still accepted, not banned, on a preparing or live stream (nchat.guest_admission)."""
    try:
        grant = tokens.verify(token, stream_id)
        sid = parse_uuid(stream_id, field="streamId")
        gid = parse_uuid(grant.guest_id, field="gid")
        uid = parse_uuid(grant.user_id, field="sub")
    except NchatError as exc:  # InvalidJWT too
        raise InvalidGuestToken(f"invalid guest token: {exc}") from exc
    try:
        async with database.session(Claims.service()) as session:
            await session.fetchval("SELECT nchat.guest_admission($1, $2, $3)", sid, gid, uid)
    except NchatError as exc:
        kind = _ADMISSION_ERRORS.get(exc.code)
        if kind is None:
            raise
        raise kind(exc.message, extensions=exc.extensions) from exc
    return GuestAdmission(guest_id=gid, user_id=uid, stream_id=sid)


async def read_program(database: Database, stream_id: str) -> ProgramState:
    """What the compositor draws: the layout, the focus, and the accepted guests not banned (in
    invitation order); NotFound for an unknown stream."""
    sid = parse_uuid(stream_id, field="streamId")
    async with database.session(Claims.service()) as session:
        stream = await session.fetchrow(
            "SELECT program_layout, program_focus FROM nchat_streams WHERE id = $1", sid)
        if stream is None:
            raise NotFound(f"stream '{stream_id}' not found", code="stream-not-found")
        records = await session.fetch(
            "SELECT g.id, g.user_id, coalesce(nullif(u.display_name, ''), u.username) AS name, g.muted "
            "FROM nchat_stream_guests g JOIN nchat_users u ON u.id = g.user_id "
            "WHERE g.stream_id = $1 AND g.status = 'accepted' AND NOT nchat.guest_banned($1, g.user_id) "
            "ORDER BY g.created_at, g.id", sid)
    guests = tuple(ProgramGuest(guest_id=str(r["id"]), user_id=str(r["user_id"]), display_name=str(r["name"]),
                                muted=bool(r["muted"])) for r in records)
    focus = str(stream["program_focus"]) if stream["program_focus"] is not None else None
    return ProgramState(layout=str(stream["program_layout"]), focus_guest_id=focus, guests=guests)
