"""Senders on one stream do not wait for each other's commit (0022: the stream's chat counter is
updated at commit, so the insert takes no lock on the stream's row), and the counter still counts."""

from __future__ import annotations

import asyncio

from nchat_live.auth import Claims
from nchat_live.db import Database
from nchat_live.resolvers import chat
from tests.support import World, fold_chat_tallies

from .conftest import go_live


async def _counter(db: Database, stream: str) -> int:
    await fold_chat_tallies(db)
    async with db.session(Claims.service()) as s:
        return int(await s.fetchval("SELECT total_chat_messages FROM nchat_streams WHERE id = $1", stream))


async def test_a_second_sender_commits_while_the_first_is_still_open(db: Database, world: World) -> None:
    await go_live(db, world.public_stream)
    before = await _counter(db, world.public_stream)
    async with db.session(Claims.user(world.bob)) as first:
        await chat.send_chat_message(first, world.public_stream, "first, committed last")

        async def second() -> None:
            async with db.session(Claims.user(world.carol)) as s:
                await chat.send_chat_message(s, world.public_stream, "second, committed first")

        # With the counter updated at the insert, this waited on the first transaction's row lock.
        await asyncio.wait_for(second(), 5)
        assert await _counter(db, world.public_stream) == before + 1
    assert await _counter(db, world.public_stream) == before + 2
