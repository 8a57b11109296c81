"""Q&A: ask, upvote once, answer/dismiss by managers, listed by votes."""

from __future__ import annotations

import pytest

from nchat_live.auth import Claims
from nchat_live.db import Database
from nchat_live.errors import NchatError
from nchat_live.resolvers import qa
from nchat_live.resolvers.streams import StreamInput, update_stream
from tests.support import World

from .conftest import Events, go_live


async def enable_qa(db: Database, world: World) -> None:
    async with db.session(Claims.user(world.alice)) as s:
        await update_stream(s, world.public_stream, StreamInput(enable_qa=True))


async def test_ask_upvote_answer_dismiss(db: Database, world: World, events: Events) -> None:
    await enable_qa(db, world)
    await go_live(db, world.public_stream)
    async with db.session(Claims.user(world.bob)) as s:
        first = await qa.ask_question(s, world.public_stream, " How? ")
        second = await qa.ask_question(s, world.public_stream, "Why?")
    for user in (world.carol, world.mod):
        async with db.session(Claims.user(user)) as s:
            voted = await qa.upvote_question(s, second["id"])
    assert voted["upvotes"] == 2 and first["content"] == "How?"
    with pytest.raises(NchatError) as info:
        async with db.session(Claims.user(world.carol)) as s:
            await qa.upvote_question(s, second["id"])
    assert info.value.code == "already-voted"
    async with db.session(Claims.anonymous()) as s:
        listed = await qa.list_questions(s, world.public_stream)
    assert [q["id"] for q in listed] == [second["id"], first["id"]]
    with pytest.raises(NchatError) as info:
        async with db.session(Claims.user(world.bob)) as s:
            await qa.answer_question(s, second["id"], "self-answer")
    assert info.value.code == "permission-error"
    async with db.session(Claims.user(world.alice)) as s:
        answered = await qa.answer_question(s, second["id"], "Because.")
        dismissed = await qa.dismiss_question(s, first["id"])
    assert answered["status"] == "answered" and answered["answer"] == "Because."
    assert dismissed["status"] == "dismissed"
    with pytest.raises(NchatError) as info:
        async with db.session(Claims.user(world.bob)) as s:
            await qa.upvote_question(s, first["id"])
    assert info.value.code == "question-closed"
    async with db.session(Claims.anonymous()) as s:
        assert [q["id"] for q in await qa.list_questions(s, world.public_stream, "answered")] == [second["id"]]
    assert [t for t, _ in events if t.startswith("qa.")] == ["qa.question"] * 2 + ["qa.updated"] * 4
    assert all(p["channel_id"] == world.public_channel for t, p in events if t.startswith("qa."))


async def test_questions_need_qa_enabled_and_content(db: Database, world: World) -> None:
    with pytest.raises(NchatError) as info:
        async with db.session(Claims.user(world.bob)) as s:
            await qa.ask_question(s, world.public_stream, "?")
    assert info.value.code == "qa-disabled"
    await enable_qa(db, world)
    with pytest.raises(NchatError) as info:
        async with db.session(Claims.user(world.bob)) as s:
            await qa.ask_question(s, world.public_stream, " \x00 ")
    assert info.value.code == "validation-failed"
    async with db.session(Claims.service()) as s:
        assert await s.fetchval("SELECT count(*) FROM nchat_stream_questions WHERE stream_id = $1",
                                world.public_stream) == 0
