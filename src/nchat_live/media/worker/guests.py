"""Guest speakers on the streams a worker ingests: guest publishers come and go, the program follows
the broadcaster's choices.

A guest publishes only while the host's ingest session of its stream is on this worker. The first
guest starts the stream's `ProgramCompositor` (compose/): from then on the host's frames go through
it too, and the pipeline takes the program (`StreamPipeline.retime`: one re-anchoring, no
discontinuity). The program then stays for the rest of the session, also when the last guest left
(a solo of the host): going back to the host's own frames would switch clocks again at each guest
who comes and goes, while the program's clock runs on unbroken through drops, returns and the host's
own reconnects (which then need no discontinuity either). It costs one copy per frame while alone.

Layout, focus, mutes and who is on the program come from the database (`read_program`), re-read on
every `stream.guests_changed` event (control.py) and on the recheck interval: a guest no longer
accepted is disconnected and leaves the program at once. A guest who drops keeps a placeholder tile
for the publisher grace period (a brief network drop does not reshuffle the layout); a new WHIP
session of the same guest within it takes the tile back, after it the tile is freed. The stream never
ends because a guest left.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from ...config import Settings
from ...db import Database
from ...errors import Conflict, NchatError, PermissionDenied
from ...resolvers.guests import ProgramState, read_program
from ..compose import HOST, ProgramCompositor
from ..transcode.ladder import select_ladder
from .streams import IngestSession, Publisher
from .tasks import BackgroundTasks

log = logging.getLogger(__name__)

# A stalled source keeps its last frame this long before its tile turns to the placeholder.
HOLD_SECONDS = 1.0


def program_canvas(live: IngestSession) -> tuple[int, int, int]:
    """Width, height and frame rate of the program: the ladder's top rung once the ladder is decided (the
    program then changes nothing downstream), else the stream's preset at 16:9 (a WebRTC host still ramping
    up its size must not fix the program at its first small frames; the undecided ladder follows it)."""
    renditions = live.pipeline.renditions
    if renditions and live.pipeline.stats.ladder_decided:
        top = renditions[0]
    else:
        top = select_ladder(1920, 1080, live.info.max_resolution)[0]
    return top.width, top.height, top.fps


async def close_guests(live: IngestSession) -> None:
    """The stream ends here: guests disconnected, the program stopped (before the pipeline closes)."""
    for timer in live.guest_grace.values():
        timer.cancel()
    live.guest_grace.clear()
    guests, live.guests = live.guests, {}
    for publisher in guests.values():
        with contextlib.suppress(Exception):
            await publisher.close()
    program, live.program = live.program, None
    if program is not None:
        await asyncio.to_thread(program.close)


class Guests:
    """Guest publishers of the sessions in `sessions` (shared with `Publishers`)."""

    def __init__(self, settings: Settings, database: Database, sessions: dict[str, IngestSession],
                 tasks: BackgroundTasks) -> None:
        self.settings = settings
        self.database = database
        self.sessions = sessions
        self.tasks = tasks

    def _session(self, stream_id: str) -> IngestSession:
        live = self.sessions.get(stream_id)
        if live is None or live.ending is not None:
            raise Conflict(f"stream '{stream_id}' is not live on this media worker; a guest joins once the "
                           "broadcaster publishes", code="stream-not-live")
        return live

    async def connected(self, stream_id: str, guest_id: str, publisher: Publisher) -> IngestSession:
        """Attach an admitted guest's publisher (a new session of the same guest replaces its old one)."""
        self._session(stream_id)
        state = await read_program(self.database, stream_id)
        if guest_id not in {guest.guest_id for guest in state.guests}:
            raise PermissionDenied(f"guest '{guest_id}' is not an accepted guest of stream '{stream_id}'",
                                   code="guest-not-accepted")
        live = self._session(stream_id)
        others = [gid for gid in live.guests if gid != guest_id]
        if len(others) >= self.settings.max_guests:
            raise Conflict(f"stream '{stream_id}' has {len(others)} guests on air already (the limit is "
                           f"{self.settings.max_guests})", code="too-many-guests")
        timer = live.guest_grace.pop(guest_id, None)
        if timer is not None:
            timer.cancel()
        previous = live.guests.get(guest_id)
        live.guests[guest_id] = publisher
        self._program(live).add_source(guest_id)
        self._apply(live, state)
        if previous is not None and previous is not publisher:
            log.info("stream %s: guest %s published again; its earlier session is closed", stream_id, guest_id)
            self.tasks.spawn(previous.close())
        log.info("stream %s: guest %s on air (%d guests)", stream_id, guest_id, len(live.guests))
        return live

    async def disconnected(self, stream_id: str, publisher: Publisher) -> None:
        """A guest's publisher left: its tile waits out the grace period for the guest's return."""
        live = self.sessions.get(stream_id)
        if live is None:
            return
        guest_id = next((gid for gid, p in live.guests.items() if p is publisher), None)
        if guest_id is None:
            return
        del live.guests[guest_id]
        grace = self.settings.publisher_grace_seconds
        log.info("stream %s: guest %s gone; its tile is kept %.1f s", stream_id, guest_id, grace)
        loop = asyncio.get_running_loop()
        live.guest_grace[guest_id] = loop.call_later(grace, self._free_tile, live, guest_id)

    def _free_tile(self, live: IngestSession, guest_id: str) -> None:
        live.guest_grace.pop(guest_id, None)
        if guest_id not in live.guests and live.program is not None:
            live.program.remove_source(guest_id)

    async def remove(self, live: IngestSession, guest_id: str, reason: str) -> None:
        """Take a guest off the program at once and disconnect its publisher."""
        timer = live.guest_grace.pop(guest_id, None)
        if timer is not None:
            timer.cancel()
        publisher = live.guests.pop(guest_id, None)
        if live.program is not None:
            live.program.remove_source(guest_id)
        if publisher is not None:
            log.warning("stream %s: guest %s disconnected: %s", live.stream_id, guest_id, reason)
            with contextlib.suppress(Exception):
                await publisher.close()

    async def refresh(self, stream_id: str) -> None:
        """Re-read the program of a stream here and apply it (layout, focus, mutes, who stays on)."""
        live = self.sessions.get(stream_id)
        if live is None or live.ending is not None or (live.program is None and not live.guests):
            return  # never had a guest: nothing to apply, no query
        state = await read_program(self.database, stream_id)
        accepted = {guest.guest_id for guest in state.guests}
        for guest_id in [*live.guests, *live.guest_grace]:
            if guest_id not in accepted:
                await self.remove(live, guest_id, "no longer an accepted guest")
        if live.program is not None:
            self._apply(live, state)

    async def recheck(self) -> None:
        """Refresh every stream with guests: a lost event must not leave a removed guest on air."""
        for stream_id in list(self.sessions):
            try:
                await self.refresh(stream_id)
            except NchatError as exc:
                log.warning("stream %s: program not refreshed: %s", stream_id, exc.message)

    def _program(self, live: IngestSession) -> ProgramCompositor:
        if live.program is None:
            width, height, fps = program_canvas(live)
            program = ProgramCompositor(live.pipeline, width, height, fps, hold_seconds=HOLD_SECONDS,
                                        name=f"program-{live.stream_id[:8]}")
            program.add_source(HOST)
            # Both on this thread, like every host push: frames pushed so far are queued before the
            # re-anchoring, every later one goes through the program.
            live.program = program
            live.pipeline.retime()
            program.start()
            log.info("stream %s: program composed at %dx%d %d fps", live.stream_id, width, height, fps)
        return live.program

    @staticmethod
    def _apply(live: IngestSession, state: ProgramState) -> None:
        assert live.program is not None
        live.program.set_program(
            state.layout, state.focus_guest_id,
            muted={guest.guest_id for guest in state.guests if guest.muted},
            order=[guest.guest_id for guest in state.guests],
        )
