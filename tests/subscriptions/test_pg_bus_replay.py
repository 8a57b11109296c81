"""The PostgreSQL bus loses nothing when a process's LISTEN connection drops (a database restart, a
killed backend): events notified while it was down are replayed from the log, each exactly once. A
publish that meets a restart waits for the database and sends once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import asyncpg

from nchat_live.subscriptions.bus import EventBus, Listener
from nchat_live.subscriptions.bus.backends.postgres import PUBLISH_AGAIN
from tests.support import private_cluster, start_cluster

Publish = Callable[[int], Awaitable[None]]


@asynccontextmanager
async def two_processes(url: str, stream: str) -> AsyncIterator[tuple[EventBus, EventBus, Listener, Publish]]:
    """Two processes' buses on one database: the first publishes event n, the second listens. Event 0
    has gone through."""
    publisher = EventBus("postgres://", database_url=url)
    receiver = EventBus("postgres://", database_url=url)
    await publisher.start()
    await receiver.start()
    try:
        with receiver.listen(streams=[stream]) as listener:
            async def publish(n: int) -> None:
                await publisher.publish("chat.message", {"stream_id": stream, "channel_id": "c", "n": n})

            await publish(0)
            assert (await asyncio.wait_for(listener.get(), 10)).payload["n"] == 0
            yield publisher, receiver, listener, publish
    finally:
        await receiver.stop()
        await publisher.stop()


async def test_events_sent_while_listen_is_down_are_replayed_once(database_url: str) -> None:
    async with two_processes(database_url, "00000000-0000-0000-0000-00000000beef") as (_, receiver, listener,
                                                                                        publish):
        backend = receiver._broadcast._backend  # type: ignore[attr-defined]
        pid = backend._listen.get_server_pid()
        admin = await asyncpg.connect(database_url)
        try:
            await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
        finally:
            await admin.close()
        # Published while the receiver's LISTEN connection is gone: these notifications are lost
        # to it, and only the replay can bring them.
        for n in range(1, 21):
            await publish(n)
        for n in range(21, 26):
            await publish(n)
        got = []
        while len(got) < 25:
            got.append((await asyncio.wait_for(listener.get(), 15)).payload["n"])
        assert sorted(got) == list(range(1, 26)), got
        await asyncio.sleep(0.5)
        assert listener.get_nowait() is None, "an event was delivered twice"
        assert backend.replayed > 0, "nothing was replayed: the test did not exercise the gap"


async def test_a_publish_while_the_database_restarts_waits_for_it_and_arrives_once() -> None:
    """An event follows a committed write: a database restart between the two must not lose it (it
    did: the publish failed once and the accepted chat message never reached a subscriber)."""
    async with private_cluster("nchat-bus-pg-") as (server, url), two_processes(
        url, "00000000-0000-0000-0000-00000000beef"
    ) as (publisher, _, listener, publish):
        await asyncio.to_thread(server.stop)
        sending = asyncio.create_task(publish(1))
        await asyncio.sleep(1.5)
        assert not sending.done(), f"the publish gave up while the database was down: {sending}"
        await asyncio.to_thread(start_cluster, server)
        await asyncio.wait_for(sending, 20)
        assert (await asyncio.wait_for(listener.get(), 15)).payload["n"] == 1
        await asyncio.sleep(0.5)
        assert listener.get_nowait() is None, "the event was delivered twice"
        assert publisher.stats.publish_errors == 0


async def test_a_second_try_of_a_publish_that_committed_sends_nothing(database_url: str) -> None:
    """A try whose answer was lost may have committed: the next try logs and notifies only if it did not."""
    admin = await asyncpg.connect(database_url)
    try:
        async with two_processes(database_url, "00000000-0000-0000-0000-00000000cafe") as (_, _, listener, _):
            channel, body = await admin.fetchrow(
                "SELECT channel, body FROM nchat.bus_payloads ORDER BY id DESC LIMIT 1")
            logged = await admin.fetchval("SELECT count(*) FROM nchat.bus_payloads")
            await admin.execute(PUBLISH_AGAIN, channel, body, True)
            await asyncio.sleep(0.5)
            assert listener.get_nowait() is None, "a second try of a committed publish was delivered"
            assert await admin.fetchval("SELECT count(*) FROM nchat.bus_payloads") == logged
            # A body that was not logged goes out on the second try as on the first.
            await admin.execute(PUBLISH_AGAIN, channel, body.replace('"n":0', '"n":1'), True)
            assert (await asyncio.wait_for(listener.get(), 10)).payload["n"] == 1
    finally:
        await admin.close()
