"""Media follows the stream's status wherever it was changed.

A broadcaster (or moderator, or the scheduler) may end or cancel a stream through the API, on any
process. The status event reaches every process over the bus; the process ingesting that stream
stops its publisher and closes the pipeline (segments closed, recording finalised).

A rotated stream key or a ban (which may name the broadcaster) makes the ingesting process check
its publishers against the database at once (`MediaManager.recheck`): one on an old key, or a
banned broadcaster, is disconnected, and the stream waits out its grace period for the owner's
publish with the new key. The manager also rechecks on a short interval, should an event be lost.

A guest invited, accepted, muted or removed, or a layout chosen (`stream.guests_changed`), makes the
ingesting process re-read the stream's program (`MediaManager.refresh_program`, worker/guests.py); a
removed guest is disconnected at once. A ban (`chat.banned`, which does not change the guest rows)
re-reads the programs of the streams it reaches too: a banned guest is left out of the program and
disconnected at once. The same interval rechecks programs too.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from ...errors import NchatError
from ...subscriptions.bus import SlowSubscriber

if TYPE_CHECKING:
    from ...runtime import Runtime
    from .manager import MediaManager

log = logging.getLogger(__name__)

STOPPING_EVENTS = frozenset({"stream.ended", "stream.cancelled", "stream.failed"})
RECHECK_EVENTS = frozenset({"stream.key_rotated", "chat.banned"})
PROGRAM_EVENTS = frozenset({"stream.guests_changed"})


async def follow_status(runtime: Runtime) -> None:
    """Run until cancelled: stop local ingest of streams that ended elsewhere."""
    while True:
        try:
            with runtime.bus.listen(types=STOPPING_EVENTS | RECHECK_EVENTS | PROGRAM_EVENTS,
                                    maxsize=1000) as listener:
                while True:
                    event = await listener.get()
                    media = runtime.media
                    if media is None:
                        continue
                    stream_id = str(event.payload.get("stream_id") or "")
                    if event.type in PROGRAM_EVENTS:
                        if stream_id in media.streams:
                            await _refresh(media, stream_id)
                        continue
                    if event.type in RECHECK_EVENTS:
                        channel_id = str(event.payload.get("channel_id") or "")
                        affected = [sid for sid, live in media.streams.items()
                                    if sid == stream_id or (channel_id and live.info.channel_id == channel_id)]
                        if affected:
                            await media.recheck(affected)
                        if event.type == "chat.banned":
                            # read_program leaves banned guests out: one on air goes off at once.
                            for sid in affected:
                                await _refresh(media, sid)
                        continue
                    if stream_id not in media.streams:
                        continue
                    reason = str(event.payload.get("reason") or event.type.removeprefix("stream."))
                    log.info("stream %s: %s elsewhere; stopping ingest", stream_id, event.type)
                    await media.end_stream(stream_id, reason=reason)
        except SlowSubscriber:
            # Only status events are queued here, so this means the loop was stalled; listen afresh.
            log.warning("media status follower fell behind; re-listening")
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("media status follower failed; restarting")
            await asyncio.sleep(1)


async def _refresh(media: MediaManager, stream_id: str) -> None:
    try:
        await media.refresh_program(stream_id)
    except NchatError as exc:
        # The recheck interval tries again; the other events must go on.
        log.warning("stream %s: program not refreshed: %s", stream_id, exc.message)
