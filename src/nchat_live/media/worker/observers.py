"""The hooks the media worker exposes: recording, DVR, thumbnails, metrics and clean-up attach here.

A `StreamObserver` is attached from outside (`MediaManager.attach`, done by the runtime's wiring);
the worker calls it and knows nothing else of it, as aiortc's tracks know nothing of the
`MediaRecorder` consuming them. Event-loop hooks are `on_started`, `on_ended` and
`on_orphan_ended`; per-pipeline hooks (segments, keyframes, run on the pipeline's thread) come
from the `PipelineObserver` that `pipeline_observer` returns for each new pipeline.
"""

from __future__ import annotations

import logging

from ..transcode.pipeline import PipelineObserver
from .streams import IngestSession, StreamInfo

log = logging.getLogger(__name__)


class StreamObserver:
    """A base to subclass (every hook defaults to doing nothing); attach it with `MediaManager.attach`."""

    # Segment files must stay on storage after they leave the live window (the DVR playlist lists them).
    keeps_segments: bool = False

    def pipeline_observer(self, info: StreamInfo) -> PipelineObserver | None:
        """Per-pipeline hooks for a new pipeline of this stream (its methods run on the pipeline's thread)."""
        return None

    def on_started(self, session: IngestSession) -> None:
        """A new pipeline ingests this stream on this worker (event loop)."""
        return None

    def on_ended(self, session: IngestSession, reason: str) -> None:
        """Ingest stopped on this worker; the pipeline is closing (event loop)."""
        return None

    async def on_orphan_ended(self, info: StreamInfo, renditions: list[str]) -> None:
        """A stream taken over from a lost worker ended without its publisher coming back: finish
        what that worker left (its recording, its live files)."""
        return None


class StreamObservers:
    """The observers attached to one worker; a failing observer is logged and never stops the others."""

    def __init__(self) -> None:
        self._observers: list[StreamObserver] = []

    def attach(self, observer: StreamObserver) -> None:
        self._observers.append(observer)

    def detach(self, observer: StreamObserver) -> None:
        if observer in self._observers:
            self._observers.remove(observer)

    @property
    def keep_segments(self) -> bool:
        return any(o.keeps_segments for o in self._observers)

    def pipeline_observers(self, info: StreamInfo) -> list[PipelineObserver]:
        found: list[PipelineObserver] = []
        for observer in self._observers:
            try:
                child = observer.pipeline_observer(info)
            except Exception:
                log.exception("%s: no pipeline observer for %s", type(observer).__name__, info.stream_id)
                continue
            if child is not None:
                found.append(child)
        return found

    def started(self, session: IngestSession) -> None:
        for observer in self._observers:
            try:
                observer.on_started(session)
            except Exception:
                log.exception("%s.on_started failed for %s", type(observer).__name__, session.stream_id)

    def ended(self, session: IngestSession, reason: str) -> None:
        for observer in self._observers:
            try:
                observer.on_ended(session, reason)
            except Exception:
                log.exception("%s.on_ended failed for %s", type(observer).__name__, session.stream_id)

    async def orphan_ended(self, info: StreamInfo, renditions: list[str]) -> None:
        for observer in self._observers:
            try:
                await observer.on_orphan_ended(info, renditions)
            except Exception:
                log.exception("%s.on_orphan_ended failed for %s", type(observer).__name__, info.stream_id)
