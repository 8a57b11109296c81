"""Media worker leases in PostgreSQL: one owner per stream, takeover after expiry, fencing."""

from __future__ import annotations

import asyncio
from pathlib import Path

from nchat_live.auth import Claims
from nchat_live.config import Settings
from nchat_live.db import Database
from nchat_live.media.storage.local import LocalStorage
from nchat_live.media.worker import leases
from nchat_live.media.worker.leases import LeaseKeeper
from nchat_live.media.worker.observers import StreamObservers
from nchat_live.media.worker.streams import StreamInfo
from nchat_live.media.worker.sweep import OrphanSweep
from nchat_live.media.worker.tasks import BackgroundTasks
from nchat_live.resolvers.streams import start_stream
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


async def test_a_stream_started_by_the_api_waits_for_its_publisher(db: Database, world: World,
                                                                    settings: Settings) -> None:
    """startStream before any publisher: no worker ingested it, so the sweep never takes it over (it used
    to adopt it as an orphan and end it "worker-lost" ~12 s later); it ends only after the scheduling grace."""
    async with db.session(Claims.user(world.alice)) as s:
        await start_stream(s, world.public_stream)
    for _ in range(2):  # two sweeps, past a lease TTL: still nothing to take over
        taken = await leases.take_orphans(db, "rescuer", ttl_seconds=0.1, limit=1000)
        assert world.public_stream not in {lease.stream_id for lease in taken}
        await asyncio.sleep(0.15)
    sweep = OrphanSweep(settings, db, LocalStorage(Path(settings.media_dir)),
                        LeaseKeeper(db, "rescuer", 5, on_lost=lambda _: None), StreamObservers(),
                        BackgroundTasks("test"), stream_info=_no_info, is_ingesting=lambda _: False)
    assert world.public_stream not in await sweep.end_unpublished()  # within the grace: it waits
    async with db.session(Claims.service()) as s:
        assert await s.fetchval("SELECT status FROM nchat_streams WHERE id = $1", world.public_stream) == "live"
        await s.fetchval("UPDATE nchat_streams SET started_at = now() - interval '31 minutes' WHERE id = $1 "
                         "RETURNING 1", world.public_stream)
    assert world.public_stream in await sweep.end_unpublished()
    async with db.session(Claims.service()) as s:
        row = await s.fetchrow("SELECT status, end_reason FROM nchat_streams WHERE id = $1", world.public_stream)
    assert row is not None and (row["status"], row["end_reason"]) == ("ended", "no-publisher")


async def test_an_ingested_stream_whose_worker_died_is_taken_over(db: Database, world: World) -> None:
    async with db.session(Claims.user(world.alice)) as s:
        await start_stream(s, world.private_stream)
    await leases.claim(db, world.private_stream, "died", ttl_seconds=0.1)
    await asyncio.sleep(0.2)
    taken = await leases.take_orphans(db, "rescuer", ttl_seconds=5, limit=1000)
    assert world.private_stream in {lease.stream_id for lease in taken}


async def _no_info(stream_id: str) -> StreamInfo:
    raise AssertionError(f"no stream is adopted here ({stream_id})")


async def test_publishers_are_sent_to_the_least_loaded_live_worker(db: Database, world: World) -> None:
    await leases.register_worker(db, "busy", "http://busy:8081", capacity=2)
    await leases.register_worker(db, "idle", "http://idle:8081", capacity=2)
    await leases.claim(db, world.public_stream, "busy", ttl_seconds=30)
    await leases.renew(db, "busy", 30)
    await leases.renew(db, "idle", 30)
    assert await leases.pick_worker(db) == "http://idle:8081"
    await leases.unregister_worker(db, "idle")
    await leases.unregister_worker(db, "busy")
