"""Chat load, full size: N websocket subscribers on one stream, R chat messages a second for D seconds.

Real `nchat-live api` processes (default 2) share a scratch database and a Redis (or PostgreSQL)
bus; subscribers are spread over both and over a few client processes (one Python process cannot
read 100,000 frames a second); sender users post `sendChatMessage` over HTTP to both, each user
within the chat limit. Loopback only; sizes are bounded. Prints accepted, delivered, duplicates,
out-of-order and p50/p99 delivery latency (request start to arrival, wall clock of this machine).

    .venv/bin/python bench/load_chat.py                      # 1,000 subscribers, 100 msg/s, 60 s
    .venv/bin/python bench/load_chat.py -n 300 --rate 50 --duration 30

Needs PostgreSQL (NCHAT_TEST_PG; a scratch database is created and dropped) and Redis
(NCHAT_TEST_REDIS).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import resource
import secrets
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncpg
import httpx
from tests.scale.harness import (
    LANE_RATE,
    PROBE_LANE,
    ApiProcess,
    Subscriber,
    api_env,
    prepare,
    run_subscribers,
    send_load,
    send_one,
    tally,
)
from tests.support import JWT_SECRET, with_database

from nchat_live.db import Database

PG = os.environ.get("NCHAT_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS = os.environ.get("NCHAT_TEST_REDIS", "redis://127.0.0.1:6379/0")


# -- client processes ----------------------------------------------------------------------------

def client_main(first: int, count: int, urls: list[str], stream_id: str, ready: Any, stop: Any, out: Any) -> None:
    """Run `count` subscribers; say when all have seen a probe; hand their records back at stop."""

    async def main() -> None:
        subs = [Subscriber(first + i, urls, stream_id) for i in range(count)]
        halt = asyncio.Event()
        tasks = await run_subscribers(subs, halt, connect_per_s=100)
        await asyncio.gather(*(s.synced.wait() for s in subs))
        ready.put(first)
        await asyncio.to_thread(stop.wait)
        halt.set()
        await asyncio.gather(*tasks)
        out.put([{"index": s.index, "received": s.received, "latencies": s.latencies,
                  "subscribed_at": s.subscribed_at, "errors": s.errors} for s in subs])

    asyncio.run(main())


# -- the run -------------------------------------------------------------------------------------

async def run(args: argparse.Namespace) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 4 * args.subscribers + 1024)), hard))
    name = f"nchat_load_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(PG)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    url = with_database(PG, name)
    apis: list[ApiProcess] = []
    children: list[mp.process.BaseProcess] = []
    try:
        db = Database(url)
        await db.migrate()
        await db.close()
        cast = await prepare(url, JWT_SECRET, senders=int(args.rate / LANE_RATE + 0.999) + 1)
        bus = REDIS if args.bus == "redis" else "postgres://"
        apis = [ApiProcess(api_env(url, bus, JWT_SECRET), name=f"api{i}") for i in range(args.apis)]
        for api in apis:
            api.start()
        await asyncio.gather(*(api.ready() for api in apis))
        ws_urls, http_urls = [a.ws for a in apis], [a.http for a in apis]

        ctx = mp.get_context("spawn")
        ready, out, stop = ctx.Queue(), ctx.Queue(), ctx.Event()
        share = -(-args.subscribers // args.client_procs)
        for first in range(0, args.subscribers, share):
            child = ctx.Process(target=client_main, args=(first, min(share, args.subscribers - first), ws_urls,
                                                          cast.stream_id, ready, stop, out))
            child.start()
            children.append(child)
        began = time.monotonic()
        print(f"{args.subscribers} subscribers over {len(apis)} API processes ({args.bus} bus), "
              f"{len(children)} client processes; connecting...", flush=True)
        async with httpx.AsyncClient(timeout=10) as client:
            synced, n = 0, 0
            while synced < len(children):
                if time.monotonic() - began > 180:
                    raise SystemExit(f"only {synced} of {len(children)} client processes subscribed within 180 s")
                await send_one(client, http_urls[n % len(http_urls)], cast.tokens[-1], cast.stream_id, PROBE_LANE, n)
                n += 1
                await asyncio.sleep(2.5)  # the probe user keeps to the chat limit
                while not ready.empty():
                    ready.get()
                    synced += 1
        print(f"all subscribed in {time.monotonic() - began:.1f}s; sending {args.rate:g} msg/s for "
              f"{args.duration:g}s...", flush=True)
        sent = await send_load(http_urls, cast.tokens[:-1], cast.stream_id, args.rate, args.duration)
        await asyncio.sleep(args.drain)
        stop.set()
        records: list[dict[str, Any]] = []
        for _ in children:
            records.extend(await asyncio.to_thread(out.get, True, 120))
        subs = [Subscriber(r["index"], ws_urls, cast.stream_id, received=[tuple(x) for x in r["received"]],
                           latencies=r["latencies"], subscribed_at=r["subscribed_at"], errors=r["errors"])
                for r in records]
        result = tally(sent, subs)
        late = [m for m in sent if m.accepted and m.finished - m.started > 1.0]
        print(f"\nsubscribers {args.subscribers}, rate {args.rate:g}/s, duration {args.duration:g}s, "
              f"API processes {len(apis)}, bus {args.bus}")
        print(f"accepted      {result.accepted} of {len(sent)} sent (refused: {dict(result.refused) or 'none'})")
        print(f"delivered     {result.delivered} of {result.expected} expected "
              f"({result.accepted} x {result.subscribers})")
        print(f"missing       {result.missing}")
        print(f"duplicates    {result.duplicates}")
        print(f"out-of-order  {result.out_of_order}")
        print(f"sub. errors   {result.subscription_errors} (reconnects "
              f"{sum(len(s.subscribed_at) - 1 for s in subs)})")
        print(f"latency       p50 {result.p50_ms:.1f} ms, p99 {result.p99_ms:.1f} ms (request start to arrival)")
        print(f"mutations     {len(late)} took over 1 s")
        for line in result.worst_missing:
            print(f"  {line}")
    finally:
        for child in children:
            child.join(10)
            if child.is_alive():
                child.kill()
        for api in apis:
            api.stop()
        admin = await asyncpg.connect(PG)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--subscribers", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=100.0, help="chat messages a second, over all senders")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of sending")
    parser.add_argument("--apis", type=int, default=2, help="API processes")
    parser.add_argument("--client-procs", type=int, default=4, help="processes holding the subscribers")
    parser.add_argument("--bus", choices=["redis", "postgres"], default="redis")
    parser.add_argument("--drain", type=float, default=5.0, help="seconds to wait for deliveries after sending")
    args = parser.parse_args()
    # Bounded: this is a loopback benchmark, not a load generator for other hosts.
    if not (1 <= args.subscribers <= 5000 and 0 < args.rate <= 500 and 0 < args.duration <= 600
            and 1 <= args.apis <= 8 and 1 <= args.client_procs <= 16):
        parser.error("out of bounds: subscribers 1..5000, rate ..500, duration ..600, apis 1..8, client-procs 1..16")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
