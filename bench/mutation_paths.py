"""sendChatMessage's statement under other ways of running it, against the server's own way, in one run.

The server's way (`session`, ratio 1.00): `Database.session`'s set-up batch (reset, BEGIN, role and claims),
sendChatMessage's one statement (`resolvers.chat._SEND`) and COMMIT: three round trips, as `nchat_user`.
Against it, on the same database, each measured in turn for --rounds rounds (best kept):

- `session, pg_temp`: the same on connections that have a temporary namespace, as every pooled
  connection of the server has once `Database.read_text` ran a fast-path read there (migration 0023);

- `function` (connections of its own): the same statement as the body of a plpgsql function in the
  connection's pg_temp that sets the role and the claims transaction-locally (as `Database.read_text`
  runs reads), called outside a transaction block: one round trip, the implicit transaction commits
  with the call;
- `session, no NOTIFY`: the server's way with the live-query change triggers (migration 0004's
  `nchat_live_changes`, a NOTIFY at commit per changed table) disabled on the tables a chat insert writes
  (a commit that NOTIFYs takes a database-wide lock until its commit record is flushed);
- `superuser insert`: graphql_bench.py's SQL column (one INSERT as the superuser, whom the chat rules skip).

--functions: each trigger and helper's time per insert (pg_stat_user_functions, track_functions = all)
over the `session` rounds. A scratch database is created and dropped.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import secrets
import time
from collections.abc import Awaitable, Callable

import asyncpg

from graphql_bench import _INSERT_CHAT, seed
from nchat_live.auth import Claims
from nchat_live.db.database import setup_batch
from nchat_live.resolvers._common import rule_context
from nchat_live.resolvers.chat import _SEND

# The tables a chat insert writes (the message, the stream's and the viewer's counters).
CHANGE_TABLES = ("nchat_stream_chat_messages", "nchat_streams", "nchat_stream_viewers")
FUNCTION = (
    "CREATE OR REPLACE FUNCTION pg_temp.bench_send(uuid, uuid, text, text[], text[], text, text) RETURNS text "
    "LANGUAGE plpgsql AS $f$ DECLARE r record; BEGIN "
    "PERFORM set_config('role', $6, true), set_config('hasura.user', $7, true); "
    f"{_SEND} INTO r; RETURN row_to_json(r)::text; END $f$"
)
Op = Callable[[asyncpg.Connection, str, str, str], Awaitable[None]]


async def run(args: argparse.Namespace) -> None:
    name = f"nchat_mutation_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(args.pg)
    await admin.execute(f'CREATE DATABASE "{name}"')
    if args.functions:
        await admin.execute(f"ALTER DATABASE \"{name}\" SET track_functions = 'all'")
    url = args.pg.rsplit("/", 1)[0] + "/" + name
    try:
        ids = await seed(url)
        pairs = itertools.cycle([(s, c) for c in ids["chatters"].split(",") for s in ids["chat_streams"].split(",")])
        seq = itertools.count()
        names, values = rule_context(None, chat_max=5, chat_window_s=10.0)
        with_function: set[int] = set()

        async def session(conn: asyncpg.Connection, stream: str, user: str, content: str) -> None:
            await conn.execute(setup_batch("nchat_user", Claims.user(user).as_setting(), None))
            await conn.fetchrow(_SEND, stream, user, content, names, values)
            await conn.execute("COMMIT")

        async def function(conn: asyncpg.Connection, stream: str, user: str, content: str) -> None:
            if id(conn) not in with_function:
                await conn.execute(FUNCTION)
                with_function.add(id(conn))
            await conn.fetchval("SELECT pg_temp.bench_send($1, $2, $3, $4, $5, $6, $7)", stream, user, content,
                                names, values, "nchat_user", Claims.user(user).as_setting())

        async def superuser(conn: asyncpg.Connection, stream: str, user: str, content: str) -> None:
            await conn.execute(_INSERT_CHAT, stream, user, content)

        width = max(args.concurrency)
        conns = [await asyncpg.connect(url) for _ in range(width)]
        # A temporary namespace, as read_text's pg_temp functions leave on a pooled connection.
        temp_conns = [await asyncpg.connect(url) for _ in range(width)]
        for conn in temp_conns:
            await conn.execute("CREATE FUNCTION pg_temp.bench_nop() RETURNS integer LANGUAGE sql AS 'SELECT 1'")
        function_conns = [await asyncpg.connect(url) for _ in range(width)]
        pools = {"plain": conns, "temp": temp_conns, "function": function_conns}

        async def measure(op: Op, n_conns: int, pool: str = "plain") -> float:
            done = 0
            stop = time.perf_counter() + args.seconds

            async def worker(conn: asyncpg.Connection) -> None:
                nonlocal done
                while time.perf_counter() < stop:
                    stream, user = next(pairs)
                    await op(conn, stream, user, f"m{next(seq)}")
                    done += 1

            started = time.perf_counter()
            await asyncio.gather(*(worker(c) for c in pools[pool][:n_conns]))
            return done / (time.perf_counter() - started)

        async def triggers(enable: bool) -> None:
            for table in CHANGE_TABLES:
                state = "ENABLE" if enable else "DISABLE"
                await conns[0].execute(f"ALTER TABLE {table} {state} TRIGGER nchat_live_changes")

        columns: list[tuple[str, Op, bool, str]] = [
            ("session", session, True, "plain"), ("session, pg_temp", session, True, "temp"),
            ("function", function, True, "function"), ("session, no NOTIFY", session, False, "plain"),
            ("superuser insert", superuser, True, "plain")]
        best: dict[tuple[str, int], float] = {}
        for _ in range(args.rounds):
            for n_conns in args.concurrency:
                for label, op, notify, pool in columns:
                    if not notify:
                        await triggers(False)
                    try:
                        rps = await measure(op, n_conns, pool)
                    finally:
                        if not notify:
                            await triggers(True)
                    best[label, n_conns] = max(best.get((label, n_conns), 0.0), rps)
        print(f"chat inserts/s, {args.seconds:g} s per measurement, best of {args.rounds} rounds; "
              "ratio to `session` (the server's way) at the same concurrency")
        print(f"{'way':24s}" + "".join(f"{f'{n} conn':>20s}" for n in args.concurrency))
        for label, *_ in columns:
            cells = [f"{best[label, n]:8.0f} ({best[label, n] / best['session', n]:4.2f})" for n in args.concurrency]
            print(f"{label:24s}" + "".join(f"{c:>20s}" for c in cells))
        if args.functions:
            # One connection (no lock waits, no other backend on the CPU): where an insert's time goes, on
            # a connection with a temporary namespace (the server's case).
            # The rounds' backends report their statistics when idle: let them, then start from zero.
            await asyncio.sleep(1.2)
            for conn in [*conns, *temp_conns, *function_conns]:
                await conn.execute("SELECT 1")
            await conns[1].execute("SELECT pg_stat_reset()")
            before = next(seq)
            await measure(session, 1, "temp")
            n = next(seq) - before - 1
            # Statistics reach the shared view once a backend has been idle for a moment.
            await asyncio.sleep(1.2)
            await temp_conns[0].execute("SELECT 1")
            await asyncio.sleep(1.2)
            print(f"\n`session, pg_temp`, 1 connection, {n} inserts: each function's time per insert "
                  "(track_functions), µs")
            print(f"  {'function':36s} {'self':>7s} {'total':>7s} {'calls':>6s}")
            for r in await conns[1].fetch(
                    "SELECT schemaname || '.' || funcname AS f, calls, self_time, total_time "
                    "FROM pg_stat_user_functions WHERE calls > 0 ORDER BY total_time DESC LIMIT 20"):
                print(f"  {r['f']:36s} {r['self_time'] * 1000 / n:7.1f} {r['total_time'] * 1000 / n:7.1f} "
                      f"{r['calls'] / n:6.2f}")
        for conn in [*conns, *temp_conns, *function_conns]:
            await conn.close()
    finally:
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", default="1,8", help="connections, comma-separated")
    parser.add_argument("--functions", action="store_true")
    args = parser.parse_args()
    args.concurrency = [int(n) for n in args.concurrency.split(",")]
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
