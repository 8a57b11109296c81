"""Media operations as GraphQL fields: `Query.streamRecordings`, `Mutation.createClip/deleteRecording/mediaToken`.

Merge into the schema next to `operations.Query`/`operations.Mutation`; each field runs the domain
function of `media/clips.py` in the caller's transaction (RLS decides who may).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import strawberry
from strawberry.types import Info

from ...auth import media_tokens
from ...errors import NotFound
from ...media.extras.clips import create_clip, delete_recording
from ...media.hls.access import is_media_id
from ..context import Context
from . import run

__all__ = ["MediaToken", "Mutation", "Query", "StreamRecording"]


@strawberry.type(description="A stream's full recording or a clip of it: a VOD HLS playlist.")
class StreamRecording:
    id: strawberry.ID
    stream_id: strawberry.ID
    kind: str
    status: str
    url: str | None
    thumbnail_url: str | None
    duration_seconds: float | None
    size_bytes: float | None
    renditions: list[str]
    clip_start_seconds: float | None
    clip_end_seconds: float | None
    created_at: datetime

    @classmethod
    def of(cls, row: dict[str, Any]) -> StreamRecording:
        def num(key: str) -> float | None:
            value = row.get(key)
            return None if value is None else float(value)

        return cls(
            id=strawberry.ID(str(row["id"])), stream_id=strawberry.ID(str(row["stream_id"])), kind=row["kind"],
            status=row.get("status", "ready"), url=row.get("url"), thumbnail_url=row.get("thumbnail_url"),
            duration_seconds=num("duration_seconds"), size_bytes=num("size_bytes"),
            renditions=list(row.get("renditions") or []), clip_start_seconds=num("clip_start_seconds"),
            clip_end_seconds=num("clip_end_seconds"), created_at=row["created_at"],
        )


@strawberry.type(description="A short-lived token that reads one stream's media (HLS, DVR, thumbnails, recordings).")
class MediaToken:
    token: str
    stream_id: strawberry.ID
    expires_at: datetime


@strawberry.type
class DeletedRecording:
    id: strawberry.ID
    stream_id: strawberry.ID
    kind: str


_COLUMNS = (
    "id, stream_id, kind, status, url, thumbnail_url, duration_seconds, size_bytes, renditions, "
    "clip_start_seconds, clip_end_seconds, created_at"
)


@strawberry.type
class Query:
    @strawberry.field(description="The replay and clips of a stream the caller can read (newest first).")
    async def stream_recordings(self, info: Info[Context, None], stream_id: strawberry.ID) -> list[StreamRecording]:
        async def work(session: Any) -> list[dict[str, Any]]:
            rows = await session.fetch(
                f"SELECT {_COLUMNS} FROM nchat_stream_recordings WHERE stream_id = $1::uuid AND status <> 'deleted' "
                "ORDER BY kind = 'full' DESC, created_at DESC",
                str(stream_id),
            )
            return [dict(r) for r in rows]

        return [StreamRecording.of(r) for r in await run(info, work)]


@strawberry.type
class Mutation:
    @strawberry.mutation(description="A VOD playlist over the recorded segments covering from..to seconds.")
    async def create_clip(
        self, info: Info[Context, None], stream_id: strawberry.ID,
        from_: Annotated[float, strawberry.argument(name="from")], to: float,
    ) -> StreamRecording:
        runtime = info.context.runtime
        extras = runtime.media_extras
        recorder = extras.recorders.get(str(stream_id)) if extras is not None else None
        is_live = runtime.media is not None and str(stream_id) in runtime.media.streams
        # A stream still live is clipped from its recorder's segments so far.
        live = recorder.segments if recorder is not None and is_live else None
        row = await run(info, lambda s: create_clip(s, runtime.settings, str(stream_id), from_, to, live))
        return StreamRecording.of(row)

    @strawberry.mutation(description="Delete a recording or clip (broadcaster, channel staff or admin): files and row.")
    async def delete_recording(self, info: Info[Context, None], id: strawberry.ID) -> DeletedRecording:
        settings = info.context.runtime.settings
        row = await run(info, lambda s: delete_recording(s, settings, str(id)))
        return DeletedRecording(id=strawberry.ID(row["id"]), stream_id=strawberry.ID(row["stream_id"]),
                                kind=row["kind"])

    @strawberry.mutation(description="A media token for a stream the caller can read: `?token=` on its media "
                                     "URLs, or `Authorization: Bearer`; it expires in a few minutes.")
    async def media_token(self, info: Info[Context, None], stream_id: strawberry.ID) -> MediaToken:
        sid = str(stream_id)

        async def check(session: Any) -> None:
            # Unknown, unreadable and malformed ids answer alike.
            if not is_media_id(sid) or not await session.fetchval("SELECT nchat.can_read_stream($1::uuid)", sid):
                raise NotFound(f"no stream '{sid}'")

        await run(info, check)
        settings = info.context.runtime.settings
        tokens = media_tokens(settings.jwt_secret, settings.media_token_secret, settings.media_token_ttl_seconds)
        token, expires = tokens.mint(sid, info.context.claims)
        return MediaToken(token=token, stream_id=strawberry.ID(sid),
                          expires_at=datetime.fromtimestamp(expires, tz=UTC))
