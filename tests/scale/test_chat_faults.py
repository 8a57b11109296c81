"""Chat load under faults: a PostgreSQL restart, and an API process killed with SIGKILL.

Same harness as test_chat_load: real `nchat-live api` subprocesses, websocket subscribers and
paced HTTP senders. The restart uses a private embedded cluster so nothing else on the machine
is disturbed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.support import JWT_SECRET, NEEDS_REDIS, REDIS_URL, private_cluster, restart_cluster

from .harness import Sent, Subscriber, api_env, prepare, probe, run_subscribers, send_load, settle, tally
from .test_chat_load import start_apis

SUBSCRIBERS = 100
RATE = 20.0


@pytest.fixture
async def own_cluster() -> AsyncIterator[tuple[object, str]]:
    async with private_cluster("nchat-scale-pg-") as cluster:
        yield cluster


@pytest.mark.parametrize("bus", [pytest.param("redis", marks=NEEDS_REDIS), "postgres"])
async def test_postgres_restart_mid_load_loses_no_accepted_message(
    own_cluster: tuple[object, str], bus: str
) -> None:
    server, url = own_cluster
    apis = await start_apis(api_env(url, REDIS_URL if bus == "redis" else "postgres://", JWT_SECRET))
    try:
        cast = await prepare(url, JWT_SECRET, senders=int(RATE / 0.4) + 1)
        ws_urls, http_urls = [a.ws for a in apis], [a.http for a in apis]
        subscribers = [Subscriber(i, ws_urls, cast.stream_id) for i in range(SUBSCRIBERS)]
        stop = asyncio.Event()
        tasks = await run_subscribers(subscribers, stop)
        try:
            async with httpx.AsyncClient(timeout=10) as client:
                await probe(client, http_urls, cast.tokens[-1], cast.stream_id, subscribers)
            load = asyncio.create_task(send_load(http_urls, cast.tokens[:-1], cast.stream_id, RATE, 9.0))
            await asyncio.sleep(2.5)
            began = time.monotonic()
            await asyncio.to_thread(restart_cluster, server, 1.5)
            outage = time.monotonic() - began
            sent = await load
            await settle(subscribers, sent)
        finally:
            stop.set()
            await asyncio.gather(*tasks)
    finally:
        for api in apis:
            api.stop()
    result = tally(sent, subscribers)
    refused = [m for m in sent if not m.accepted]
    slowest = max((m.finished - m.started for m in refused), default=0.0)
    print(f"\nPostgreSQL restart ({outage:.1f}s) under {RATE:.0f} msg/s, {bus} bus: {result.line()}; "
          f"slowest refusal {slowest:.2f}s")
    assert refused, "no message was refused while PostgreSQL was down"
    assert set(result.refused) == {"database-unavailable"}, result.refused
    assert slowest < 6, "a refused mutation hung instead of failing fast"
    # Sending resumed after the restart.
    assert any(m.accepted and m.started > max(r.started for r in refused) for m in sent)
    assert result.missing == 0, result.worst_missing
    assert result.duplicates == 0 and result.out_of_order == 0, result.line()
    assert result.delivered == result.accepted * SUBSCRIBERS, result.line()
    assert result.subscription_errors == 0, [s.errors for s in subscribers if s.errors][:3]


@NEEDS_REDIS
async def test_api_process_killed_mid_load_survivor_delivers_everything(database_url: str) -> None:
    apis = await start_apis(api_env(database_url, REDIS_URL, JWT_SECRET))
    victim, survivor = apis
    try:
        cast = await prepare(database_url, JWT_SECRET, senders=int(RATE / 0.4) + 1)
        ws_urls, http_urls = [a.ws for a in apis], [a.http for a in apis]
        subscribers = [Subscriber(i, ws_urls, cast.stream_id) for i in range(SUBSCRIBERS)]
        stop = asyncio.Event()
        tasks = await run_subscribers(subscribers, stop)
        try:
            async with httpx.AsyncClient(timeout=10) as client:
                await probe(client, http_urls, cast.tokens[-1], cast.stream_id, subscribers)
            load = asyncio.create_task(send_load(http_urls, cast.tokens[:-1], cast.stream_id, RATE, 6.0))
            await asyncio.sleep(2.0)
            killed_at = time.time()
            victim.kill()
            sent = await load
            await settle(subscribers, sent)
        finally:
            stop.set()
            await asyncio.gather(*tasks)
    finally:
        for api in apis:
            api.stop()

    survivor_ws = ws_urls.index(survivor.ws)

    def must_receive(sub: Subscriber, m: Sent) -> bool:
        if all(url == survivor_ws for _, url in sub.subscribed_at):
            return True  # never disconnected: everything accepted by either process
        # Moved over: everything the survivor accepted once the new subscription had a moment to register.
        resubscribed = sub.subscribed_at[-1][0]
        return m.url == survivor.http and m.started >= resubscribed + 1.0

    result = tally(sent, subscribers, must_receive)
    moved = [s for s in subscribers if len(s.subscribed_at) > 1]
    gap = max((s.subscribed_at[-1][0] - killed_at for s in moved), default=0.0)
    print(f"\nAPI process killed under {RATE:.0f} msg/s: {len(moved)} subscribers moved (last resubscribed "
          f"{gap:.2f}s after the kill); {result.line()}")
    assert len(moved) == SUBSCRIBERS // 2
    assert all(s.subscribed_at[-1][1] == survivor_ws for s in subscribers)
    assert set(result.refused) <= {"transport:ConnectError", "transport:RemoteProtocolError",
                                   "transport:ReadError"}, result.refused
    assert result.missing == 0, result.worst_missing
    assert result.duplicates == 0 and result.out_of_order == 0, result.line()
    assert result.subscription_errors == 0, result.line()
    assert sum(m.accepted and m.url == survivor.http and m.started > killed_at for m in sent) > RATE * 2
