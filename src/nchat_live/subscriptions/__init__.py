"""Realtime delivery: the event bus (`bus/`), the websocket transport (`transport/`), and the
per-subscriber feeds, presence and access checks between them."""
