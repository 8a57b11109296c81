"""What the media worker knows of a stream it ingests: the values its collaborators pass around."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol

import av

from ...auth import Claims
from ...db import Database
from ...errors import NotFound
from ...ids import is_canonical_uuid
from ..compose import HOST, ProgramCompositor
from ..transcode.pipeline import StreamPipeline


class Publisher(Protocol):
    """An ingest connection feeding one stream (WHIP or RTMP)."""

    kind: str  # "whip" | "rtmp"

    async def stats(self) -> dict[str, Any]:
        """Transport figures for metrics: any of upload_bitrate_kbps, packet_loss_percent, jitter_ms, rtt_ms."""
        ...

    async def close(self) -> None: ...


@dataclass(frozen=True)
class StreamInfo:
    """What ingest and observers need to know about a stream, read once with service rights."""

    stream_id: str
    channel_id: str
    status: str
    max_resolution: str
    is_recorded: bool
    stream_key: str


@dataclass
class IngestSession:
    """One stream this worker is ingesting (or holding through its publisher's grace period)."""

    info: StreamInfo
    pipeline: StreamPipeline
    # Called once, on the first media: takes the stream live in the database.
    on_first_media: Callable[[IngestSession], Coroutine[Any, Any, None]]
    publisher: Publisher | None = None
    went_live: bool = False
    grace: asyncio.TimerHandle | None = None
    ending: asyncio.Task[Any] | None = None
    reconnects: int = 0
    # Guest speakers (worker/guests.py): their publishers by guest id, the timers that free a dropped
    # guest's tile, and the compositor that carries the program once the first guest came.
    guests: dict[str, Publisher] = field(default_factory=dict)
    guest_grace: dict[str, asyncio.TimerHandle] = field(default_factory=dict)
    program: ProgramCompositor | None = None
    _live_task: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def stream_id(self) -> str:
        return self.info.stream_id

    def sink(self, source: str = HOST) -> SourceSink:
        """Where the publisher of `source` (HOST or a guest id) pushes its decoded frames."""
        return SourceSink(self, source)

    def media_arrived(self) -> None:
        """Call on every frame from the event loop (cheap): the first one takes the stream live."""
        if not self.went_live:
            self.went_live = True
            self._live_task = asyncio.create_task(self.on_first_media(self))


class SourceSink:
    """One publisher's frames: straight into the pipeline while the stream has no program (the host
    alone: no compositor, nothing added per frame but this check), into the program once it has one.
    A guest's frames go nowhere without a program."""

    def __init__(self, live: IngestSession, source: str) -> None:
        self.live = live
        self.source = source

    def push_video(self, frame: av.VideoFrame) -> None:
        program = self.live.program
        if program is not None:
            program.push_video(self.source, frame)
        elif self.source == HOST:
            self.live.pipeline.push_video(frame)

    def push_audio(self, frame: av.AudioFrame) -> None:
        program = self.live.program
        if program is not None:
            program.push_audio(self.source, frame)
        elif self.source == HOST:
            self.live.pipeline.push_audio(frame)


async def read_stream_info(database: Database, stream_id: str) -> StreamInfo:
    """The stream's ingest facts, read with service rights; NotFound for unknown or malformed ids."""
    if not is_canonical_uuid(stream_id):
        raise NotFound(f"stream '{stream_id}' not found", code="stream-not-found")
    async with database.session(Claims.service()) as session:
        row = await session.fetchrow(
            "SELECT id, channel_id, status, max_resolution, is_recorded, stream_key FROM nchat_streams "
            "WHERE id = $1",
            stream_id,
        )
    if row is None:
        raise NotFound(f"stream '{stream_id}' not found", code="stream-not-found")
    return StreamInfo(
        stream_id=str(row["id"]), channel_id=str(row["channel_id"]), status=row["status"],
        max_resolution=row["max_resolution"], is_recorded=row["is_recorded"], stream_key=row["stream_key"],
    )
