"""Presence over a websocket: a `watchStream` subscription is a viewer session.

Starting it joins the stream as the subscriber (the operations module's `join_stream`); while
it runs a heartbeat keeps the session alive; when it ends for any reason (complete, socket
closed, server stopping) the session is left at once, in a task of its own so that a
cancelled subscription still records the leave. A process that dies without leaving is covered
by the operations scheduler expiring sessions silent for 30 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import AbstractAsyncContextManager
from typing import Any

from ..auth import Claims
from ..db import Database, Session
from ..db.errors import database_unavailable
from ..observability import VIEWERS
from ..resolvers.viewers import join_stream, leave_stream, viewer_heartbeat
from .access import parse_stream_id

log = logging.getLogger(__name__)

HEARTBEAT_S = 10.0


class Presence:
    """Tracks leave tasks so the runtime can wait for them before closing the database."""

    def __init__(self) -> None:
        self.pending: set[asyncio.Task[None]] = set()
        self.joined = 0
        self.left = 0

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)

    async def drain(self, grace_s: float = 5.0) -> None:
        if self.pending:
            await asyncio.wait(set(self.pending), timeout=grace_s)


async def keep_alive(database: Database, claims: Claims, token: str, stream_id: str) -> None:
    """A viewer session's heartbeat every HEARTBEAT_S, until the session is gone (expired, or its stream
    ended). A database that is away (a restart) costs a beat, not the session: stopping there let every
    viewer of the process expire 30 s later while still watching."""
    while True:
        await asyncio.sleep(HEARTBEAT_S)
        try:
            async with database.session(claims) as session:
                await viewer_heartbeat(session, token)
        except Exception as exc:
            if database_unavailable(exc):
                log.info("viewer heartbeat for stream %s missed: %s", stream_id, exc)
                continue
            log.info("viewer heartbeat for stream %s stopped: %s", stream_id, exc)
            return


@contextlib.asynccontextmanager
async def viewer_session(
    presence: Presence, database: Database, claims: Claims, stream_id: object,
    *, open_session: Callable[[], AbstractAsyncContextManager[Session]],
    user_agent: str | None = None, ip: str | None = None,
) -> AsyncIterator[dict[str, Any]]:
    """Joined for the block's duration; left (in the background if cancelled) afterwards.

    The join runs in `open_session()` (the caller's own share of the pool); heartbeats and the
    leave run in sessions of `database` as `claims`. The `nchat_viewers` gauge counts the viewer
    sessions this process holds open.
    """
    sid = parse_stream_id(stream_id)
    async with open_session() as session:
        viewer = await join_stream(session, sid, user_agent=user_agent, ip=ip)
    presence.joined += 1
    VIEWERS.inc()
    token = viewer["session_id"]

    async def leave() -> None:
        try:
            async with database.session(claims) as session:
                await leave_stream(session, token)
            presence.left += 1
        except Exception as exc:
            log.info("viewer leave for stream %s: %s", sid, exc)

    heartbeat = asyncio.get_running_loop().create_task(keep_alive(database, claims, token, sid))
    try:
        yield viewer
    finally:
        heartbeat.cancel()
        VIEWERS.dec()
        presence.spawn(leave())
