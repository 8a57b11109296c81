"""Q&A: viewers ask and upvote (once each); the broadcaster or a moderator answers or dismisses."""

from __future__ import annotations

from datetime import datetime

from ..db import Session
from ..errors import Conflict, NotFound, ValidationFailed
from ._common import (
    Row,
    clean_text,
    event_base,
    load_stream,
    parse_uuid,
    require_manager,
    require_user,
    row,
    set_rule_context,
    strip_nul,
    utcnow,
)

STATUSES = ("open", "answered", "dismissed")
_COLUMNS = "id, stream_id, user_id, content, status, upvotes, answer, answered_at, answered_by, created_at"


def _event(stream: Row, question: Row) -> dict[str, object]:
    return {**event_base(stream), "id": question["id"], "user_id": question["user_id"],
            "content": question["content"], "status": question["status"], "upvotes": question["upvotes"],
            "answer": question["answer"]}


async def _load(session: Session, question_id: str) -> tuple[Row, Row]:
    qid = parse_uuid(question_id, field="questionId")
    record = await session.fetchrow(f"SELECT {_COLUMNS} FROM nchat_stream_questions WHERE id = $1", qid)
    if record is None:
        raise NotFound(f"question '{question_id}' not found", code="question-not-found")
    question = row(record)
    return question, await load_stream(session, question["stream_id"])


async def ask_question(session: Session, stream_id: str, content: str, *, now: datetime | None = None) -> Row:
    """Ask as the caller. The rules (content 1..500 cleaned, Q&A enabled, the stream not over, bans)
    are the insert trigger's (migration 0009); a refusal arrives as NchatError with its code."""
    user_id = require_user(session, "ask questions")
    stream = await load_stream(session, stream_id)
    await set_rule_context(session, now)
    record = await session.fetchrow(
        f"INSERT INTO nchat_stream_questions (stream_id, user_id, content) VALUES ($1, $2, $3) RETURNING {_COLUMNS}",
        stream["id"], user_id, strip_nul(content),
    )
    question = row(record)
    session.emit("qa.question", _event(stream, question))
    return question


async def upvote_question(session: Session, question_id: str) -> Row:
    user_id = require_user(session, "upvote questions")
    question, stream = await _load(session, question_id)
    if question["status"] != "open":
        raise ValidationFailed(f"the question is '{question['status']}'; only open questions take votes",
                               code="question-closed")
    inserted = await session.fetchval(
        "INSERT INTO nchat_stream_question_votes (question_id, user_id) VALUES ($1, $2) "
        "ON CONFLICT DO NOTHING RETURNING question_id",
        question["id"], user_id,
    )
    if inserted is None:
        raise Conflict("you have already upvoted this question", code="already-voted")
    question["upvotes"] = int(await session.fetchval(
        "SELECT upvotes FROM nchat_stream_questions WHERE id = $1", question["id"]))
    session.emit("qa.updated", _event(stream, question))
    return question


async def _close(session: Session, question_id: str, status: str, answer: str | None, now: datetime | None) -> Row:
    user_id = require_user(session, f"mark questions {status}")
    question, stream = await _load(session, question_id)
    await require_manager(session, stream["id"], f"mark questions {status}")
    text = clean_text(answer, field="answer", max_length=2000) if answer and answer.strip() else None
    record = await session.fetchrow(
        f"UPDATE nchat_stream_questions SET status = $2, answer = coalesce($3, answer), answered_at = $4, "
        f"answered_by = $5 WHERE id = $1 RETURNING {_COLUMNS}",
        question["id"], status, text, now or utcnow(), user_id,
    )
    closed = row(record)
    session.emit("qa.updated", _event(stream, closed))
    return closed


async def answer_question(session: Session, question_id: str, answer: str | None = None,
                          *, now: datetime | None = None) -> Row:
    return await _close(session, question_id, "answered", answer, now)


async def dismiss_question(session: Session, question_id: str, *, now: datetime | None = None) -> Row:
    return await _close(session, question_id, "dismissed", None, now)


async def list_questions(session: Session, stream_id: str, status: str | None = None, *, limit: int = 100) -> list[Row]:
    """Most upvoted first, then oldest first."""
    if status is not None and status not in STATUSES:
        raise ValidationFailed(f"status '{status}' is not one of {', '.join(STATUSES)}")
    stream = await load_stream(session, stream_id)
    records = await session.fetch(
        f"SELECT {_COLUMNS} FROM nchat_stream_questions WHERE stream_id = $1 AND ($2::text IS NULL OR status = $2) "
        f"ORDER BY upvotes DESC, created_at, id LIMIT $3",
        stream["id"], status, max(1, min(limit, 500)),
    )
    return [row(r) for r in records]
