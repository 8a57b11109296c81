"""Per-connection limits of the websocket transport, from the settings."""

from __future__ import annotations

from dataclasses import dataclass

from ...config import Settings


@dataclass
class Limits:
    send_queue: int = 512  # frames waiting for a slow client before it is dropped
    max_operations: int = 200  # concurrent operations on one socket
    max_message_bytes: int = 256 * 1024
    init_timeout_s: float = 10.0
    keepalive_s: float = 10.0
    close_timeout_s: float = 1.0
    drain_timeout_s: float = 10.0  # a client that sends but does not read is dropped after this
    batch_delay_s: float = 0.0  # how long a socket's first frame waits for others to share its write

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(send_queue=settings.ws_send_queue, max_operations=settings.ws_max_operations,
                   max_message_bytes=settings.ws_max_message_bytes, keepalive_s=settings.ws_keepalive_seconds,
                   batch_delay_s=settings.ws_batch_ms / 1000)
