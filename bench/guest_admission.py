"""What admitting a WHIP guest costs the media side, against what it already does for the host.

`admit_guest` (verify the guest token, then nchat.guest_admission in a service session) and `read_program`
(on every stream.guests_changed) are timed against `read_stream_info` (the host's WHIP admission read, one
service-session query), in the same process on a scratch database. Prints median milliseconds and the ratio.

    NCHAT_TEST_PG=postgresql://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/guest_admission.py
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.scratch import bench_stream, scratch_database

from nchat_live.auth import Claims, guest_tokens
from nchat_live.db import Database
from nchat_live.media.worker.streams import read_stream_info
from nchat_live.resolvers import guests

ROUNDS = 300
SECRET = '{"type": "HS256", "key": "bench-secret-key-that-is-long-enough-for-hs256"}'


async def timed(work: Callable[[], Awaitable[object]]) -> float:
    samples = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        await work()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1000


async def main() -> None:
    async with scratch_database() as url:
        db = Database(url)
        try:
            await db.migrate()
            conn = await asyncpg.connect(url)
            try:
                stream = await bench_stream(conn, "720p")
                sid = str(stream["id"])
                broadcaster = str(await conn.fetchval("SELECT broadcaster_id FROM nchat_streams WHERE id = $1", sid))
                guest = str(await conn.fetchval("INSERT INTO nchat_users (username, display_name, email) "
                                                "VALUES ('guest', 'Guest', 'g@example.com') RETURNING id"))
            finally:
                await conn.close()
            async with db.session(Claims.user(broadcaster)) as s:
                gid = (await guests.invite_guest(s, sid, guest))["id"]
            async with db.session(Claims.user(guest)) as s:
                await guests.respond_invitation(s, gid, True)
            async with db.session(Claims.service()) as s:
                await s.fetchval("UPDATE nchat_streams SET status = 'live' WHERE id = $1 RETURNING id", sid)
            tokens = guest_tokens(SECRET, None, 600)
            token, _ = tokens.mint(sid, guest, gid)
            for _ in range(20):  # warm the pool and the plans
                await read_stream_info(db, sid)
                await guests.admit_guest(db, tokens, sid, token)
            base = await timed(lambda: read_stream_info(db, sid))
            admit = await timed(lambda: guests.admit_guest(db, tokens, sid, token))
            program = await timed(lambda: guests.read_program(db, sid))
            print(f"read_stream_info (baseline) {base:.3f} ms; admit_guest {admit:.3f} ms ({admit / base:.2f}x); "
                  f"read_program {program:.3f} ms ({program / base:.2f}x); median of {ROUNDS}")
        finally:
            await db.close()


if __name__ == "__main__":
    asyncio.run(main())
