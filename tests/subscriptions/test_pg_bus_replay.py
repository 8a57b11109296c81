"""The PostgreSQL bus loses nothing when a process's LISTEN connection drops (a database restart, a
killed backend): events notified while it was down are replayed from the log, each exactly once."""

from __future__ import annotations

import asyncio

import asyncpg

from nchat_live.subscriptions.bus import EventBus


async def test_events_sent_while_listen_is_down_are_replayed_once(database_url: str) -> None:
    publisher = EventBus("postgres://", database_url=database_url)
    receiver = EventBus("postgres://", database_url=database_url)
    await publisher.start()
    await receiver.start()
    stream = "00000000-0000-0000-0000-00000000beef"
    try:
        with receiver.listen(streams=[stream]) as listener:
            async def publish(n: int) -> None:
                await publisher.publish("chat.message", {"stream_id": stream, "channel_id": "c", "n": n})

            await publish(0)
            assert (await asyncio.wait_for(listener.get(), 10)).payload["n"] == 0

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
    finally:
        await receiver.stop()
        await publisher.stop()
