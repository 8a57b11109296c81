"""Who may receive a stream's events: asked of Postgres under the subscriber's own claims.

Answers are cached for a short time per (visibility key, stream). A stream that the anonymous
role may read is readable by every role (roles only add rights in the policies), so that one
answer serves all subscribers of a public stream; everything else is asked per visibility key.
Concurrent questions with the same key share one query.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Hashable

from ..auth import Claims
from ..db import Database
from ..errors import NchatError, Unavailable, ValidationFailed

_ANONYMOUS = Claims.anonymous()


def parse_stream_id(value: object) -> str:
    try:
        return str(uuid.UUID(str(value)))
    except ValueError as exc:
        raise ValidationFailed(f"streamId '{value}' is not a uuid", code="validation-failed") from exc


class StreamAccess:
    def __init__(self, database: Database, *, ttl: float = 2.0) -> None:
        self.database = database
        self.ttl = ttl
        self._answers: dict[Hashable, tuple[bool, float]] = {}
        self._pending: dict[Hashable, asyncio.Future[bool]] = {}
        self.queries = 0

    def cached(self, claims: Claims, stream_id: str) -> bool | None:
        """A fresh cached answer without awaiting, or None when Postgres must be asked."""
        now = time.monotonic()
        public = self._answers.get(("public", stream_id))
        if public is not None and public[1] > now and public[0]:
            return True
        own = self._answers.get((claims.visibility_key(), stream_id))
        if own is not None and own[1] > now and public is not None and public[1] > now:
            return own[0]
        return None

    async def can_read(self, claims: Claims, stream_id: str) -> bool:
        hit = self.cached(claims, stream_id)
        if hit is not None:
            return hit
        if await self._ask(("public", stream_id), _ANONYMOUS, stream_id):
            return True
        return await self._ask((claims.visibility_key(), stream_id), claims, stream_id)

    async def _ask(self, key: Hashable, claims: Claims, stream_id: str) -> bool:
        now = time.monotonic()
        answer = self._answers.get(key)
        if answer is not None and answer[1] > now:
            return answer[0]
        pending = self._pending.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        try:
            self.queries += 1
            try:
                async with self.database.session(claims) as session:
                    allowed = bool(await session.fetchval("SELECT nchat.can_read_stream($1::uuid)", stream_id))
            except Unavailable:
                if answer is None:
                    raise
                # Postgres is restarting: the answer of a moment ago stands until it is back, rather
                # than ending every subscription of the stream (and losing what they were sent).
                allowed = answer[0]
            if len(self._answers) > 50_000:
                self._sweep()
            self._answers[key] = (allowed, time.monotonic() + self.ttl)
            future.set_result(allowed)
            return allowed
        except BaseException as exc:
            if isinstance(exc, NchatError | Exception):
                future.set_exception(exc)
                # Nobody else may be awaiting it; retrieve so asyncio does not log it.
                future.exception()
            else:
                future.cancel()
            raise
        finally:
            self._pending.pop(key, None)

    def _sweep(self) -> None:
        now = time.monotonic()
        for key in [k for k, (_, expires) in self._answers.items() if expires <= now]:
            del self._answers[key]
