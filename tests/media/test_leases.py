"""Media worker leases in PostgreSQL: one owner per stream, takeover after expiry, fencing."""

from __future__ import annotations

import asyncio

from nchat_live.auth import Claims
from nchat_live.db import Database
from nchat_live.media.worker import leases
from tests.support import World


async def test_one_worker_holds_a_stream_until_its_lease_expires(db: Database, world: World) -> None:
    first = await leases.claim(db, world.public_stream, "w1", ttl_seconds=0.5)
    assert first is not None and first.generation == 1
    assert await leases.claim(db, world.public_stream, "w2", ttl_seconds=5) is None
    again = await leases.claim(db, world.public_stream, "w1", ttl_seconds=0.5)
    assert again is not None and again.generation == 1  # re-claiming your own lease is not a takeover
    await asyncio.sleep(0.7)
    taken = await leases.claim(db, world.public_stream, "w2", ttl_seconds=5)
    assert taken is not None and (taken.worker_id, taken.generation) == ("w2", 2)
    assert world.public_stream not in await leases.renew(db, "w1", 5)  # w1 learns it lost the stream
    assert world.public_stream in await leases.renew(db, "w2", 5)


async def test_orphans_are_taken_once_even_with_concurrent_sweepers(db: Database, world: World) -> None:
    await leases.claim(db, world.public_stream, "dead", ttl_seconds=0.2)
    await leases.claim(db, world.private_stream, "dead", ttl_seconds=0.2)
    await asyncio.sleep(0.4)
    got_a, got_b = await asyncio.gather(
        leases.take_orphans(db, "a", ttl_seconds=5, limit=1000), leases.take_orphans(db, "b", ttl_seconds=5, limit=1000)
    )
    mine = {lease.stream_id for lease in got_a + got_b if lease.stream_id in (world.public_stream,
                                                                                world.private_stream)}
    assert mine == {world.public_stream, world.private_stream}
    ids = [lease.stream_id for lease in got_a + got_b]
    assert len(ids) == len(set(ids)), "a stream was taken by two sweepers"


async def test_live_stream_without_a_lease_is_an_orphan(db: Database, world: World) -> None:
    async with db.session(Claims.service()) as s:
        await s.fetchval("UPDATE nchat_streams SET status = 'live' WHERE id = $1 RETURNING 1", world.public_stream)
    taken = await leases.take_orphans(db, "rescuer", ttl_seconds=5, limit=100)
    assert world.public_stream in {lease.stream_id for lease in taken}


async def test_publishers_are_sent_to_the_least_loaded_live_worker(db: Database, world: World) -> None:
    await leases.register_worker(db, "busy", "http://busy:8081", capacity=2)
    await leases.register_worker(db, "idle", "http://idle:8081", capacity=2)
    await leases.claim(db, world.public_stream, "busy", ttl_seconds=30)
    await leases.renew(db, "busy", 30)
    await leases.renew(db, "idle", 30)
    assert await leases.pick_worker(db) == "http://idle:8081"
    await leases.unregister_worker(db, "idle")
    await leases.unregister_worker(db, "busy")
