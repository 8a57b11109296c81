"""Shared event subscriptions: one execution per (document, variables, visibility), many sockets.

A chat of a thousand viewers would otherwise run graphql-core and JSON-encode the same answer a
thousand times per message. Subscriptions whose root field is a pure event feed (the same events
for everyone who may read the stream, no per-subscriber state) join a `FeedGroup` keyed by the
role's schema, the document, its variables and `Claims.visibility_key()`: equal keys see the
same rows, so the group's one access check per event stands for every member, and different
visibility never shares. The group serialises each result once and collects the results of one
pass of the event loop; at the pass's end it builds each distinct websocket frame once (text and
bytes on the wire, wire.py; several results joined into one write) and hands it to every member's
connection without awaiting, in order; a member that cannot keep up is dropped by its own
connection and the others go on.

A member that joins a running group receives events from then on, like a fresh subscription; its
first access check is the group's (same visibility key), and later ones are the group's per-event
checks. Fields whose subscription starts with the current value (viewerCount: the count now, then
each change) replay the group's latest result to a member that joins, so it starts like a fresh
subscription of its own would, from a value computed once for everyone.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Mapping
from typing import Any
from typing import Protocol as TypingProtocol

from graphql import ExecutionResult

from ...graphql.execution import format_error
from ..bus import BusStats
from .protocols import Protocol
from .wire import WriteBatcher, text_frame

log = logging.getLogger(__name__)

# Root subscription fields whose results depend only on the event and the subscriber's visibility.
# Fields with side effects (watchStream) or per-user filtering beyond visibility are not listed and
# run once per subscriber.
SHAREABLE_FIELDS = frozenset({"chatEvents", "streamStatus", "streamQuality", "reactions", "questions",
                              "viewerCount"})
# Of those, the ones that start with a snapshot: a joining member gets the latest result first.
REPLAY_FIELDS = frozenset({"viewerCount"})

Source = AsyncIterator[ExecutionResult]
__all__ = ["REPLAY_FIELDS", "SHAREABLE_FIELDS", "FeedGroup", "Member", "SharedFeeds"]

Starter = Callable[[Callable[[], None]], Awaitable["Source | ExecutionResult"]]


class Subscriber(TypingProtocol):
    """What a group needs of a websocket connection."""

    protocol: Protocol

    def send(self, message: Mapping[str, Any]) -> None: ...

    def send_text(self, text: str) -> None: ...

    def send_frames(self, texts: list[str], wire: bytes) -> None: ...

    def operation_ended(self, op_id: str, handle: object) -> None: ...


class Member:
    """One operation of one connection inside a group; `cancel()` leaves the group."""

    __slots__ = ("connection", "frame_key", "group", "op_id")

    def __init__(self, group: FeedGroup, connection: Subscriber, op_id: str) -> None:
        self.group = group
        self.connection = connection
        self.op_id = op_id
        # Members with equal keys receive the same frame.
        self.frame_key = (connection.protocol.data, op_id)

    def cancel(self) -> None:
        self.group.leave(self)


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=str)


class FeedGroup:
    def __init__(self, hub: SharedFeeds, key: Hashable, start: Starter, *, replay: bool = False) -> None:
        self.hub = hub
        self.key = key
        self.members: dict[Member, None] = {}
        self.ready = False
        self.closed = False
        self.replay = replay
        self.latest: str | None = None  # the last payload sent, JSON (replay groups)
        self.pending: list[str] = []  # payloads of this pass, JSON, not yet sent
        self.task = asyncio.get_running_loop().create_task(self._run(start), name="nchat-feed-group")

    @property
    def stats(self) -> BusStats:
        return self.hub.stats

    def join(self, connection: Subscriber, op_id: str) -> Member:
        member = Member(self, connection, op_id)
        self.members[member] = None
        if self.ready:
            self.stats.subscribers += 1
        if self.latest is not None:
            text = connection.protocol.frame(op_id, self.latest)
            connection.send_frames([text], text_frame(text))
        return member

    def leave(self, member: Member) -> None:
        if member in self.members:
            del self.members[member]
            if self.ready:
                self.stats.subscribers -= 1
        if not self.members and not self.closed:
            # Nobody left to deliver to: end the shared subscription (closes its bus listener).
            self._close()
            self.task.cancel()

    def _close(self) -> None:
        self.closed = True
        self.hub.discard(self)

    def _ready(self) -> None:
        if not self.ready:
            self.ready = True
            self.stats.subscribers += len(self.members)

    def _fail(self, errors: list[BaseException]) -> None:
        self.flush()
        formatted = [format_error(e, positions=True) for e in errors]
        for member in list(self.members):
            member.connection.send(member.connection.protocol.error(member.op_id, formatted))

    async def _run(self, start: Starter) -> None:
        source: Source | None = None
        completed = False
        try:
            result = await start(self._ready)
            if isinstance(result, ExecutionResult):
                self._ready()
                if result.errors:
                    self._fail(list(result.errors))
                else:
                    self._deliver({"data": result.data})
                    completed = True
                return
            source = result
            async for item in source:
                if item.errors and item.data is None:
                    self._fail(list(item.errors))
                    return
                payload: dict[str, Any] = {"data": item.data}
                if item.errors:
                    payload["errors"] = [format_error(e, positions=True) for e in item.errors]
                self._deliver(payload)
            completed = True
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._fail([exc])
        finally:
            if not self.closed:
                self._close()
            if source is not None:
                aclose = getattr(source, "aclose", None)
                if aclose is not None:
                    with contextlib.suppress(Exception):
                        await aclose()
            self._end(completed)

    def _deliver(self, payload: dict[str, Any]) -> None:
        """One encoding of the payload, sent with the others of this pass (`flush`)."""
        if not self.pending:
            self.hub.writes.mark(self)
        self.pending.append(_dumps(payload))

    def flush(self) -> None:
        """The pass's payloads to every member: the frames built once per (protocol, operation id), one write."""
        bodies, self.pending = self.pending, []
        if not bodies:
            return
        if self.replay:
            self.latest = bodies[-1]
        frames: dict[tuple[str, str], tuple[list[str], bytes]] = {}
        for member in list(self.members):
            built = frames.get(member.frame_key)
            if built is None:
                texts = [member.connection.protocol.frame(member.op_id, body) for body in bodies]
                built = frames[member.frame_key] = (texts, b"".join([text_frame(text) for text in texts]))
            member.connection.send_frames(built[0], built[1])

    def _end(self, completed: bool) -> None:
        self.flush()
        members, self.members = list(self.members), {}
        if self.ready:
            self.stats.subscribers -= len(members)
        for member in members:
            if completed:
                member.connection.send(member.connection.protocol.complete(member.op_id))
            member.connection.operation_ended(member.op_id, member)


class SharedFeeds:
    """The running groups of one process, by key."""

    def __init__(self, stats: BusStats, writes: WriteBatcher | None = None) -> None:
        self.stats = stats
        self.writes = writes if writes is not None else WriteBatcher()
        self.groups: dict[Hashable, FeedGroup] = {}

    def join(self, key: Hashable, connection: Subscriber, op_id: str) -> Member | None:
        """Join a running group with this key; None when there is none."""
        group = self.groups.get(key)
        return group.join(connection, op_id) if group is not None else None

    def start(self, key: Hashable, start: Starter, connection: Subscriber, op_id: str, *,
              replay: bool = False) -> Member:
        """A new group whose subscription `start` opens (it calls its argument once listening)."""
        assert key not in self.groups, "join an existing group instead"
        group = FeedGroup(self, key, start, replay=replay)
        self.groups[key] = group
        return group.join(connection, op_id)

    def discard(self, group: FeedGroup) -> None:
        if self.groups.get(group.key) is group:
            del self.groups[group.key]

    async def stop(self) -> None:
        groups = list(self.groups.values())
        for group in groups:
            group.task.cancel()
        await asyncio.gather(*(g.task for g in groups), return_exceptions=True)
