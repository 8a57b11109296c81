"""Live polls: the stream's managers create, open and close them; signed-in viewers vote (and change
their vote while the poll is open); results go out as `poll.results` events, batched by the subscription.

The rules are Postgres's (migration 0015): who may create (managers, live stream), one vote row per
voter and poll, choices within the options, closed polls refuse votes (`poll-closed`, also once the
duration has run out), counts written only by the vote trigger. A poll whose duration has run out is
closed on the next read or vote of its stream (`nchat.poll_close_due`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ..db import Session
from ..errors import NotFound, ValidationFailed
from ._common import Row, event_base, iso, load_stream, parse_uuid, require_user, row, set_rule_context

POLL_COLUMNS = (
    "id, stream_id, created_by, question, options, allow_multiple, duration_seconds, status, opened_at, closes_at, "
    "closed_at, vote_counts, voters, revision, created_at, updated_at"
)


def results_event(stream: Row, poll: Row) -> dict[str, Any]:
    return {
        **event_base(stream), "id": poll["id"], "question": poll["question"], "options": list(poll["options"]),
        "vote_counts": list(poll["vote_counts"]), "voters": poll["voters"], "status": poll["status"],
        "allow_multiple": poll["allow_multiple"], "closes_at": iso(poll["closes_at"]), "revision": poll["revision"],
    }


async def _close_due(session: Session, stream: Row) -> None:
    for record in await session.fetch(f"SELECT {POLL_COLUMNS} FROM nchat.poll_close_due($1)", stream["id"]):
        session.emit("poll.results", results_event(stream, row(record)))


async def close_due_polls(session: Session, now: datetime) -> int:
    """The scheduler's sweep (as the server): closes every open poll whose duration has run out and
    publishes its final results, so subscribers see the close without anyone reading or voting."""
    await set_rule_context(session, now)
    closed = 0
    for sid in await session.fetch("SELECT DISTINCT stream_id FROM nchat_stream_polls WHERE status = 'open' "
                                   "AND closes_at <= $1 LIMIT 100", now):
        stream = await load_stream(session, str(sid["stream_id"]))
        for record in await session.fetch(f"SELECT {POLL_COLUMNS} FROM nchat.poll_close_due($1)", stream["id"]):
            session.emit("poll.results", results_event(stream, row(record)))
            closed += 1
    return closed


async def create_poll(
    session: Session, stream_id: str, question: str, options: list[str], *, allow_multiple: bool = False,
    duration_seconds: int | None = None, open_now: bool = True, now: datetime | None = None,
) -> Row:
    """A poll on a live stream (broadcaster or channel moderator); opened at once unless `open_now` is false."""
    require_user(session, "create polls")
    if not isinstance(options, list) or not 2 <= len(options) <= 10:
        raise ValidationFailed(f"a poll has 2 to 10 options, not {len(options) if isinstance(options, list) else 0}")
    stream = await load_stream(session, stream_id)
    await set_rule_context(session, now)
    record = await session.fetchrow(
        f"INSERT INTO nchat_stream_polls (stream_id, question, options, allow_multiple, duration_seconds) "
        f"VALUES ($1, $2, $3, $4, $5) RETURNING {POLL_COLUMNS}",
        stream["id"], question.replace("\x00", ""), [o.replace("\x00", "") for o in options], allow_multiple,
        duration_seconds,
    )
    poll = row(record)
    if open_now:
        return await set_poll_status(session, poll["id"], "open", now=now)
    return poll


async def set_poll_status(session: Session, poll_id: str, status: str, *, now: datetime | None = None) -> Row:
    """Open (a draft) or close a poll; the closing results go to every subscriber."""
    require_user(session, "run polls")
    pid = parse_uuid(poll_id, field="pollId")
    await set_rule_context(session, now)
    record = await session.fetchrow(f"SELECT {POLL_COLUMNS} FROM nchat.poll_set_status($1, $2)", pid, status)
    poll = row(record)
    stream = await load_stream(session, poll["stream_id"])
    session.emit("poll.results", results_event(stream, poll))
    return poll


async def vote(session: Session, poll_id: str, choices: list[int], *, now: datetime | None = None) -> Row:
    """Vote as the caller, or change the vote while the poll is open; returns the poll with its counts."""
    user_id = require_user(session, "vote")
    pid = parse_uuid(poll_id, field="pollId")
    stream_id = await session.fetchval("SELECT stream_id FROM nchat_stream_polls WHERE id = $1", pid)
    if stream_id is None:
        raise NotFound(f"poll '{poll_id}' not found", code="poll-not-found")
    stream = await load_stream(session, str(stream_id))
    await set_rule_context(session, now)
    await _close_due(session, stream)
    await session.fetchval(
        "INSERT INTO nchat_stream_poll_votes (poll_id, user_id, choices) VALUES ($1, $2, $3) "
        "ON CONFLICT (poll_id, user_id) DO UPDATE SET choices = EXCLUDED.choices RETURNING poll_id",
        pid, user_id, choices,
    )
    poll = row(await session.fetchrow(f"SELECT {POLL_COLUMNS} FROM nchat_stream_polls WHERE id = $1", pid))
    session.emit("poll.results", results_event(stream, poll))
    return poll


async def polls(session: Session, stream_id: str, *, now: datetime | None = None) -> list[Row]:
    """The stream's polls, newest first, with their counts (during the stream and after, with the recording)."""
    stream = await load_stream(session, stream_id)
    await set_rule_context(session, now)
    await _close_due(session, stream)
    records = await session.fetch(
        f"SELECT {POLL_COLUMNS} FROM nchat_stream_polls WHERE stream_id = $1 ORDER BY created_at DESC", stream["id"])
    return [row(r) for r in records]


async def poll_votes(session: Session, poll_id: str) -> list[Row]:
    """Who voted for what: the broadcaster (and staff) see every row, others only their own (RLS)."""
    require_user(session, "see votes")
    records = await session.fetch(
        "SELECT poll_id, user_id, choices, created_at, updated_at FROM nchat_stream_poll_votes WHERE poll_id = $1 "
        "ORDER BY created_at", parse_uuid(poll_id, field="pollId"))
    return [{**row(r), "choices": [int(c) for c in r["choices"]]} for r in records]
