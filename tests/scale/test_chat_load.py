"""Chat under load across two real API processes: every accepted message reaches every subscriber
exactly once, in order per sender.

Two `nchat-live api` subprocesses share the test database and a Redis bus; 100 websocket
subscribers (half on each) follow one live stream's `chatEvents`, and 50 sender users post
`sendChatMessage` over HTTP to both processes at 20 messages a second for 5 s.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.support import JWT_SECRET, NEEDS_REDIS, REDIS_URL

from .harness import (
    ApiProcess,
    Cast,
    Subscriber,
    api_env,
    prepare,
    probe,
    run_subscribers,
    send_load,
    settle,
    tally,
)

SUBSCRIBERS = 100
RATE = 20.0
DURATION = 5.0


async def start_apis(env: dict[str, str], n: int = 2) -> list[ApiProcess]:
    apis = [ApiProcess(env, name=f"api{i}") for i in range(n)]
    for api in apis:
        api.start()
    try:
        await asyncio.gather(*(api.ready() for api in apis))
    except BaseException:
        for api in apis:
            api.kill()
        raise
    return apis


@pytest.fixture
async def apis(database_url: str) -> AsyncIterator[list[ApiProcess]]:
    started = await start_apis(api_env(database_url, REDIS_URL, JWT_SECRET))
    yield started
    for api in started:
        api.stop()


@NEEDS_REDIS
async def test_every_accepted_message_reaches_every_subscriber_once_in_order(
    apis: list[ApiProcess], database_url: str
) -> None:
    cast: Cast = await prepare(database_url, JWT_SECRET, senders=int(RATE / 0.4) + 1)
    ws_urls = [api.ws for api in apis]
    http_urls = [api.http for api in apis]
    subscribers = [Subscriber(i, ws_urls, cast.stream_id) for i in range(SUBSCRIBERS)]
    stop = asyncio.Event()
    tasks = await run_subscribers(subscribers, stop)
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            await probe(client, http_urls, cast.tokens[-1], cast.stream_id, subscribers)
        sent = await send_load(http_urls, cast.tokens[:-1], cast.stream_id, RATE, DURATION)
        await settle(subscribers, sent)
    finally:
        stop.set()
        await asyncio.gather(*tasks)
    result = tally(sent, subscribers)
    print(f"\n2 API processes, redis bus, {RATE:.0f} msg/s for {DURATION:.0f} s: {result.line()}")
    assert result.accepted >= 0.95 * RATE * DURATION, result.line()
    assert not result.refused, result.line()
    assert result.missing == 0, result.worst_missing
    assert result.duplicates == 0 and result.out_of_order == 0 and result.unexpected == 0, result.line()
    assert result.delivered == result.accepted * SUBSCRIBERS
    assert result.subscription_errors == 0 and not any(s.errors for s in subscribers), result.line()
    # Both processes answered and both served subscribers.
    assert {m.url for m in sent} == set(http_urls)
