"""Simulcast operations as GraphQL fields: `Query.simulcastDestinations`, `Mutation.addSimulcastDestination`,
`updateSimulcastDestination`, `removeSimulcastDestination` (the stream's managers; resolvers/simulcast.py).

No field returns a destination's key: it is written and never read (`keyHint` shows its last characters).
"""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.types import Info

from ...resolvers import simulcast
from ..context import Context
from . import run
from .types import build

__all__ = ["Mutation", "Query", "SimulcastDestination"]


@strawberry.type(description="Where the stream is also pushed over RTMP(S), and how that push is going: status "
                             "idle, connecting, live, error (lastError says why; it retries with backoff) or stopped.")
class SimulcastDestination:
    id: strawberry.ID
    stream_id: strawberry.ID
    name: str
    url: str
    key_hint: str
    rendition: str
    enabled: bool
    status: str
    last_error: str | None
    attempts: int
    status_at: datetime | None
    created_at: datetime


@strawberry.type
class Query:
    @strawberry.field(description="A stream's simulcast destinations (its managers); keys are never returned.")
    async def simulcast_destinations(
        self, info: Info[Context, None], stream_id: strawberry.ID
    ) -> list[SimulcastDestination]:
        rows = await run(info, lambda s: simulcast.list_destinations(s, str(stream_id)))
        return [build(SimulcastDestination, r) for r in rows]


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Add an RTMP/RTMPS destination (url rtmp[s]://host/app, streamKey kept "
                                     "write-only); it gets the chosen rendition whenever the stream is live.")
    async def add_simulcast_destination(
        self, info: Info[Context, None], stream_id: strawberry.ID, name: str, url: str, stream_key: str,
        rendition: str = "720p", enabled: bool = True,
    ) -> SimulcastDestination:
        return build(SimulcastDestination, await run(info, lambda s: simulcast.add_destination(
            s, str(stream_id), name=name, url=url, stream_key=stream_key, rendition=rendition, enabled=enabled)))

    @strawberry.mutation(description="Change a destination; a new streamKey replaces the old one (never shown).")
    async def update_simulcast_destination(
        self, info: Info[Context, None], destination_id: strawberry.ID, name: str | None = None,
        url: str | None = None, stream_key: str | None = None, rendition: str | None = None,
        enabled: bool | None = None,
    ) -> SimulcastDestination:
        return build(SimulcastDestination, await run(info, lambda s: simulcast.update_destination(
            s, str(destination_id), name=name, url=url, stream_key=stream_key, rendition=rendition,
            enabled=enabled)))

    @strawberry.mutation
    async def remove_simulcast_destination(self, info: Info[Context, None], destination_id: strawberry.ID) -> bool:
        return await run(info, lambda s: simulcast.remove_destination(s, str(destination_id)))
