"""The two GraphQL-over-websocket subprotocols: their message names and close codes.

`graphql-transport-ws` (the graphql-ws library, Apollo Client 3.5+) and the legacy `graphql-ws`
(subscriptions-transport-ws, the default when the client names no subprotocol, as in Hasura).
The connection logic is shared (websocket.py); this module says how each one spells things.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

GRAPHQL_TRANSPORT_WS = "graphql-transport-ws"
GRAPHQL_WS = "graphql-ws"


@dataclass(frozen=True)
class Protocol:
    name: str
    start: str  # client: begin an operation
    stop: str  # client: end an operation
    data: str  # server: a result
    keepalive: dict[str, Any]
    # Whether a protocol error closes the socket (transport-ws) or is answered with a message.
    strict: bool

    def next(self, op_id: str, payload: dict[str, Any]) -> dict[str, Any]:
        return {"type": self.data, "id": op_id, "payload": payload}

    def frame(self, op_id: str, payload_json: str) -> str:
        """The text of `next(op_id, payload)` around an already-encoded payload (shared fan-out)."""
        return f'{{"type":"{self.data}","id":{json.dumps(op_id)},"payload":{payload_json}}}'

    def error(self, op_id: str | None, errors: list[dict[str, Any]]) -> dict[str, Any]:
        message: dict[str, Any] = {"type": "error", "payload": errors}
        if op_id is not None:
            message["id"] = op_id
        return message

    def complete(self, op_id: str) -> dict[str, Any]:
        return {"type": "complete", "id": op_id}


TRANSPORT_WS = Protocol(
    name=GRAPHQL_TRANSPORT_WS, start="subscribe", stop="complete", data="next",
    keepalive={"type": "ping", "payload": {"message": "keepalive"}}, strict=True,
)
LEGACY_WS = Protocol(
    name=GRAPHQL_WS, start="start", stop="stop", data="data", keepalive={"type": "ka"}, strict=False,
)


class Close:
    """Close codes of graphql-transport-ws (the legacy protocol reuses them where it closes)."""

    BAD_REQUEST = 4400
    UNAUTHORIZED = 4401
    FORBIDDEN = 4403
    INIT_TIMEOUT = 4408
    DUPLICATE_ID = 4409
    TOO_MANY_INITS = 4429
    INTERNAL = 4500
    NORMAL = 1000
    GOING_AWAY = 1001
    # A limit of the server's policy (e.g. connections per client address).
    POLICY = 1008
    TOO_BIG = 1009
    # The client reads too slowly; its queue overflowed (RFC 6455 "try again later").
    SLOW = 1013


def choose(offered: list[str]) -> tuple[Protocol, str | None] | None:
    """The protocol and the subprotocol header to answer with; None when nothing offered is spoken."""
    if GRAPHQL_TRANSPORT_WS in offered:
        return TRANSPORT_WS, GRAPHQL_TRANSPORT_WS
    if GRAPHQL_WS in offered:
        return LEGACY_WS, GRAPHQL_WS
    if not offered:
        return LEGACY_WS, None
    return None
