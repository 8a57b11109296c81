"""What every resolver receives as `info.context`: the runtime and who is asking."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import HTTPConnection

from ..auth import Claims
from ..db import Session
from ..runtime import Runtime


@dataclass
class Context:
    runtime: Runtime
    claims: Claims
    connection: HTTPConnection | None = None
    # Per-operation scratch space (e.g. statement counts for tests, request id for logs).
    extra: dict[str, Any] = field(default_factory=dict)

    def session(self) -> AbstractAsyncContextManager[Session]:
        """A transaction as the caller: the only way resolvers reach data."""
        return self.runtime.database.session(self.claims)
