"""Highlights and chapters as GraphQL fields: `Query.streamHighlights/streamChapters`,
`Mutation.detectHighlights/setHighlightStatus/addChapter/updateChapter/removeChapter`.

Each runs the domain function of `resolvers/engagement.py` in the caller's transaction (RLS decides, as it
does for the table API); `detectHighlights` checks the caller manages the stream, then counts and cuts as
the server (`media/extras/highlights.py`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry
from strawberry.types import Info

from ...errors import NotFound, PermissionDenied
from ...media.extras.highlights import detect_highlights
from ...resolvers import engagement
from ..context import Context
from . import run

__all__ = ["Mutation", "Query", "StreamChapter", "StreamHighlight"]


@strawberry.type(description="A peak of a stream's engagement, cut as a clip of its recording.")
class StreamHighlight:
    id: strawberry.ID
    stream_id: strawberry.ID
    clip_id: strawberry.ID | None
    peak_seconds: float
    start_seconds: float
    end_seconds: float
    score: float
    title: str
    terms: list[str]
    status: str = strawberry.field(description="suggested, kept or discarded")
    created_at: datetime

    @classmethod
    def of(cls, row: dict[str, Any]) -> StreamHighlight:
        clip = row.get("clip_id")
        return cls(id=strawberry.ID(str(row["id"])), stream_id=strawberry.ID(str(row["stream_id"])),
                   clip_id=None if clip is None else strawberry.ID(str(clip)),
                   peak_seconds=float(row["peak_seconds"]), start_seconds=float(row["start_seconds"]),
                   end_seconds=float(row["end_seconds"]), score=float(row["score"]), title=row["title"],
                   terms=list(row["terms"] or []), status=row["status"], created_at=row["created_at"])


@strawberry.type(description="A chapter of a stream's recording (automatic at a highlight, or the broadcaster's).")
class StreamChapter:
    id: strawberry.ID
    stream_id: strawberry.ID
    start_seconds: float
    title: str
    source: str
    created_at: datetime

    @classmethod
    def of(cls, row: dict[str, Any]) -> StreamChapter:
        return cls(id=strawberry.ID(str(row["id"])), stream_id=strawberry.ID(str(row["stream_id"])),
                   start_seconds=float(row["start_seconds"]), title=row["title"], source=row["source"],
                   created_at=row["created_at"])


@strawberry.type
class Query:
    @strawberry.field(description="A stream's highlights: all for its managers, the kept ones for everyone else.")
    async def stream_highlights(self, info: Info[Context, None], stream_id: strawberry.ID) -> list[StreamHighlight]:
        rows = await run(info, lambda s: engagement.highlights(s, str(stream_id)))
        return [StreamHighlight.of(r) for r in rows]

    @strawberry.field(description="The chapters of a stream's recording, in order.")
    async def stream_chapters(self, info: Info[Context, None], stream_id: strawberry.ID) -> list[StreamChapter]:
        rows = await run(info, lambda s: engagement.chapters(s, str(stream_id)))
        return [StreamChapter.of(r) for r in rows]


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Find the engagement peaks of a recorded stream and suggest them as "
                                     "highlights (broadcaster or channel moderators).")
    async def detect_highlights(self, info: Info[Context, None], stream_id: strawberry.ID) -> list[StreamHighlight]:
        sid = str(stream_id)

        async def check(session: Any) -> None:
            if not engagement.is_stream_id(sid) or not await session.fetchval("SELECT nchat.can_read_stream($1)", sid):
                raise NotFound(f"stream '{sid}' not found", code="stream-not-found")
            if not await session.fetchval("SELECT nchat.can_manage_stream($1)", sid):
                raise PermissionDenied(f"only the broadcaster or the channel's moderators can detect highlights "
                                       f"of stream '{sid}'")

        await run(info, check)
        runtime = info.context.runtime
        rows = await detect_highlights(runtime.database, runtime.settings, sid)
        return [StreamHighlight.of(r) for r in rows]

    @strawberry.mutation(description="Keep or discard a highlight (broadcaster or channel moderators).")
    async def set_highlight_status(self, info: Info[Context, None], id: strawberry.ID, status: str) -> StreamHighlight:
        return StreamHighlight.of(await run(info, lambda s: engagement.set_highlight_status(s, str(id), status)))

    @strawberry.mutation(description="Add a chapter to a stream's recording (broadcaster or channel moderators).")
    async def add_chapter(self, info: Info[Context, None], stream_id: strawberry.ID, start_seconds: float,
                          title: str) -> StreamChapter:
        return StreamChapter.of(await run(info, lambda s: engagement.add_chapter(s, str(stream_id), start_seconds,
                                                                                  title)))

    @strawberry.mutation(description="Rename or move a chapter.")
    async def update_chapter(self, info: Info[Context, None], id: strawberry.ID, title: str | None = None,
                             start_seconds: float | None = None) -> StreamChapter:
        return StreamChapter.of(await run(info, lambda s: engagement.update_chapter(
            s, str(id), title=title, start_seconds=start_seconds)))

    @strawberry.mutation(description="Remove a chapter; answers its id.")
    async def remove_chapter(self, info: Info[Context, None], id: strawberry.ID) -> strawberry.ID:
        return strawberry.ID(await run(info, lambda s: engagement.remove_chapter(s, str(id))))
