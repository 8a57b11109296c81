"""Scheduled streams: reminder opt-in, and the background task that keeps time.

Each `run_once(now)`:
1. publishes `stream.reminder` for scheduled streams whose start is within a lead time (default
   15 min and at start) to the users who opted in, once per (stream, lead), recorded in
   nchat_stream_reminders_sent so restarts and other processes never send twice;
2. cancels scheduled streams (status scheduled or preparing) that never went live `grace` after their
   start time;
3. closes viewer sessions silent for 30 s;
4. creates this month's and next month's quality-metrics partitions;
5. closes live polls whose duration has run out (resolvers/polls.py), publishing their final results;
6. folds the chat tallies into their streams' rows.
Each duty runs in a transaction of its own as the service, under a transaction-level advisory lock that
several API processes contend for: one does the work, the others skip that tick. A duty that fails is
rolled back (its events unsent) and logged, and the others still run: one broken duty (the partition's,
once) must not stop reminders, expiry and the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta

from ..auth import Claims
from ..config import Settings
from ..db import Database, Session
from ..db.errors import database_unavailable
from ..errors import ConfigError, ValidationFailed
from . import lifecycle, polls, viewers
from ._common import Row, load_stream, require_user, utcnow

log = logging.getLogger(__name__)

_LOCK_KEY = 0x6E63686174_5343  # "nchat" "SC": any constant shared by every process


async def set_stream_reminder(session: Session, stream_id: str, enabled: bool = True) -> Row:
    """Opt in (or out) of reminders for a scheduled stream."""
    user_id = require_user(session, "set reminders")
    stream = await load_stream(session, stream_id)
    if enabled:
        if stream["status"] not in (lifecycle.SCHEDULED, lifecycle.PREPARING):
            raise ValidationFailed(f"the stream is '{stream['status']}'; reminders are for upcoming streams",
                                   code="stream-not-scheduled")
        await session.fetch(
            "INSERT INTO nchat_stream_reminders (stream_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING "
            "RETURNING stream_id",
            stream["id"], user_id,
        )
    else:
        await session.fetch("DELETE FROM nchat_stream_reminders WHERE stream_id = $1 AND user_id = $2 "
                            "RETURNING stream_id", stream["id"], user_id)
    return {"stream_id": stream["id"], "user_id": user_id, "enabled": enabled,
            "scheduled_at": stream["scheduled_at"]}


@dataclass
class TickReport:
    reminders: list[tuple[str, int]] = field(default_factory=list)
    expired_streams: list[str] = field(default_factory=list)
    expired_viewers: int = 0
    closed_polls: int = 0
    folded_chat_tallies: int = 0  # streams whose chat tallies were folded
    failed: list[str] = field(default_factory=list)  # the duties that failed (rolled back), by name
    skipped: bool = False

    def add(self, done: TickReport) -> None:
        """A committed duty's counts and lists."""
        for f in fields(self):
            if f.name not in ("failed", "skipped"):
                setattr(self, f.name, getattr(self, f.name) + getattr(done, f.name))


class StreamScheduler:
    """Owns the periodic task; `start()`/`stop()` from the runtime, `run_once(now)` for tests."""

    def __init__(
        self, database: Database, *, lead_minutes: tuple[int, ...] = (15, 0), grace: timedelta = timedelta(minutes=30),
        interval: float = 5.0, viewer_silence: timedelta = viewers.SILENCE_TIMEOUT,
    ) -> None:
        self.database = database
        self.lead_minutes = tuple(sorted(set(lead_minutes), reverse=True))
        self.grace = grace
        self.interval = interval
        self.viewer_silence = viewer_silence
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def from_settings(cls, database: Database, settings: Settings) -> StreamScheduler:
        try:
            leads = tuple(int(p) for p in settings.reminder_lead_minutes.split(",") if p.strip())
        except ValueError:
            raise ConfigError(f"NCHAT_REMINDER_LEAD_MINUTES '{settings.reminder_lead_minutes}' is not a "
                              "comma-separated list of minutes, e.g. 15,0") from None
        if any(lead < 0 for lead in leads) or settings.schedule_grace_minutes < 0:
            raise ConfigError("reminder lead times and the schedule grace period cannot be negative")
        return cls(database, lead_minutes=leads, grace=timedelta(minutes=settings.schedule_grace_minutes))

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="nchat-stream-scheduler")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _loop(self) -> None:
        while True:
            try:
                await self.run_once(utcnow())
            except asyncio.CancelledError:
                raise
            except Exception:
                # A failed tick (database restart, say) is retried on the next one.
                log.exception("stream scheduler tick failed")
            await asyncio.sleep(self.interval)

    async def run_once(self, now: datetime) -> TickReport:
        report = TickReport()
        duties = (self._remind, self._expire_streams, self._expire_viewers, self._make_partitions,
                  self._close_polls, self._fold_chat_tallies)
        for index, duty in enumerate(duties):
            done = TickReport()
            try:
                async with self.database.session(Claims.service()) as s:
                    if not await s.fetchval("SELECT pg_try_advisory_xact_lock($1)", _LOCK_KEY):
                        report.skipped = True
                        return report
                    await duty(s, now, done)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if database_unavailable(exc):
                    # Every duty after it would fail the same way: one line per tick, not six tracebacks.
                    log.warning("stream scheduler: database unavailable (%s); next tick in %gs", exc, self.interval)
                    report.failed.extend(later.__name__.lstrip("_") for later in duties[index:])
                    return report
                log.exception("stream scheduler: %s failed", duty.__name__)
                report.failed.append(duty.__name__.lstrip("_"))
            else:
                report.add(done)
        return report

    async def _expire_viewers(self, s: Session, now: datetime, report: TickReport) -> None:
        report.expired_viewers = await viewers.expire_silent_sessions(s, now, self.viewer_silence)

    async def _make_partitions(self, s: Session, now: datetime, report: TickReport) -> None:
        # This month's too: a server that was down over a month's start would leave its rows in the
        # default partition (the function moves them in).
        await s.execute("SELECT nchat.ensure_quality_metrics_partition(at) FROM unnest($1::timestamptz[]) at",
                        [now, now + timedelta(days=32)])

    async def _close_polls(self, s: Session, now: datetime, report: TickReport) -> None:
        report.closed_polls = await polls.close_due_polls(s, now)

    async def _fold_chat_tallies(self, s: Session, now: datetime, report: TickReport) -> None:
        # Chat counters taken into their streams' rows (migration 0027): they trail by at most a tick.
        report.folded_chat_tallies = int(await s.fetchval("SELECT nchat.fold_chat_tallies()"))

    async def _remind(self, s: Session, now: datetime, report: TickReport) -> None:
        for lead in self.lead_minutes:
            # Due once the lead point has passed, until the stream starts (or, for the "at start"
            # reminder, until the grace period ends).
            due = await s.fetch(
                "SELECT id, channel_id, title, scheduled_at FROM nchat_streams WHERE status = 'scheduled' "
                "AND scheduled_at - make_interval(mins => $2) <= $1 "
                "AND (CASE WHEN $2 = 0 THEN scheduled_at + $3::interval ELSE scheduled_at END) > $1 "
                "AND NOT EXISTS (SELECT 1 FROM nchat_stream_reminders_sent r WHERE r.stream_id = nchat_streams.id "
                "AND r.lead_minutes = $2)",
                now, lead, self.grace,
            )
            for stream in due:
                users = [str(u["user_id"]) for u in await s.fetch(
                    "SELECT user_id FROM nchat_stream_reminders WHERE stream_id = $1 ORDER BY created_at",
                    stream["id"])]
                claimed = await s.fetchval(
                    "INSERT INTO nchat_stream_reminders_sent (stream_id, lead_minutes, recipients, sent_at) "
                    "VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING stream_id",
                    stream["id"], lead, len(users), now,
                )
                if claimed is None:
                    continue
                report.reminders.append((str(stream["id"]), lead))
                if users:
                    s.emit("stream.reminder", {
                        "stream_id": str(stream["id"]), "channel_id": str(stream["channel_id"]),
                        "lead_minutes": lead, "user_ids": users, "title": stream["title"],
                        "scheduled_at": stream["scheduled_at"].isoformat(),
                    })

    async def _expire_streams(self, s: Session, now: datetime, report: TickReport) -> None:
        stale = await s.fetch(
            # 'preparing' too: a stream created with a scheduledAt already past starts there, and must
            # not wait for ever either.
            "SELECT id FROM nchat_streams WHERE status IN ('scheduled', 'preparing') AND scheduled_at < $1 "
            "ORDER BY scheduled_at LIMIT 100 FOR UPDATE SKIP LOCKED",
            now - self.grace,
        )
        for stream in stale:
            await lifecycle.transition(s, str(stream["id"]), lifecycle.CANCELLED, reason="expired")
            report.expired_streams.append(str(stream["id"]))
