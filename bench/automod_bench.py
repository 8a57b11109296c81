"""What the auto-moderation rules cost a chat message (migration 0015): sendChatMessage as a viewer, one
transaction per message as the API does it, on a channel with no rules (the baseline, in the same run) and
with a full rule set (link filter with allowed domains, minimum account age, --terms blocked words half
of them held, --patterns regular expressions); also votePoll against a baseline of sendReaction.

Creates a scratch database on the given server (dropped at the end). Prints the median and p95 per
operation and the ratios.

    .venv/bin/python bench/automod_bench.py [--messages 300] [--terms 50] [--patterns 10]
        [--pg postgresql://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncpg
from tests.support import make_world, set_live, with_database

from nchat_live.auth import Claims
from nchat_live.db import Database
from nchat_live.resolvers import automod, chat, polls, reactions
from nchat_live.resolvers.chat import ChatLimits
from nchat_live.resolvers.reactions import ReactionLimits

NO_LIMIT = ChatLimits(messages=1_000_000)


async def timed(n: int, work: Callable[[int], Awaitable[object]]) -> list[float]:
    out = []
    for i in range(n):
        start = time.perf_counter()
        await work(i)
        out.append((time.perf_counter() - start) * 1000)
    return out


def summary(label: str, ms: list[float]) -> float:
    ms = sorted(ms)
    median = statistics.median(ms)
    print(f"{label:<48} median {median:6.2f} ms   p95 {ms[int(len(ms) * 0.95) - 1]:6.2f} ms")
    return median


async def run(pg: str, messages: int, terms: int, patterns: int) -> None:
    name = f"nchat_bench_{secrets.token_hex(4)}"
    conn = await asyncpg.connect(pg)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    db = Database(with_database(pg, name))
    try:
        await db.migrate()
        world = await make_world(db)
        await set_live(db, world.public_stream)
        await set_live(db, world.private_stream)

        async def send(stream: str, i: int) -> None:
            async with db.session(Claims.user(world.bob if stream == world.public_stream else world.alice)) as s:
                await chat.send_chat_message(s, stream, f"message number {i} see docs.example.com/x", limits=NO_LIMIT)

        # Warm both paths, then alternate blocks so drift hits both alike.
        await timed(20, lambda i: send(world.public_stream, i))
        base = await timed(messages, lambda i: send(world.public_stream, i))
        async with db.session(Claims.user(world.alice)) as s:
            await automod.update_chat_settings(s, world.public_channel, automod.ChatSettings(
                link_filter=True, allowed_domains=["example.com", "example.org"], min_account_age_seconds=1))
            for t in range(terms):
                await automod.add_blocked_term(s, world.public_channel, f"badterm{t}",
                                               action="hold" if t % 2 else "block")
            for p in range(patterns):
                await automod.add_blocked_term(s, world.public_channel, rf"\bforbidden{p}\d+", is_pattern=True)
        await asyncio.sleep(1.1)  # past the minimum account age
        ruled = await timed(messages, lambda i: send(world.public_stream, i))
        b = summary("sendChatMessage, no rules (baseline)", base)
        r = summary(f"sendChatMessage, {terms} terms + {patterns} patterns + links", ruled)
        print(f"ratio with rules / without: {r / b:.2f}")

        async with db.session(Claims.user(world.alice)) as s:
            poll = await polls.create_poll(s, world.public_stream, "Which?", ["a", "b", "c", "d"])
        users = []
        async with db.session(Claims.service()) as s:
            for i in range(messages):
                users.append(str(await s.fetchval(
                    "INSERT INTO nchat_users (username, display_name, email) VALUES ($1, $1, $1 || '@x.test') "
                    "RETURNING id", f"voter_{name}_{i}")))

        async def vote(i: int) -> None:
            async with db.session(Claims.user(users[i])) as s:
                await polls.vote(s, poll["id"], [i % 4])

        async def react(i: int) -> None:
            async with db.session(Claims.user(users[i])) as s:
                await reactions.send_reaction(s, world.public_stream, "🔥", limits=ReactionLimits(reactions=10**6))

        react_ms = await timed(messages, react)
        vote_ms = await timed(messages, vote)
        a = summary("sendReaction (baseline)", react_ms)
        v = summary("votePoll (one row per voter, counts by trigger)", vote_ms)
        print(f"ratio votePoll / sendReaction: {v / a:.2f}")
    finally:
        await db.close()
        conn = await asyncpg.connect(pg)
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--terms", type=int, default=50)
    parser.add_argument("--patterns", type=int, default=10)
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    asyncio.run(run(args.pg, args.messages, args.terms, args.patterns))


if __name__ == "__main__":
    main()
