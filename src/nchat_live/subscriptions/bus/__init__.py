"""The event bus: domain events from committed transactions to every process (API and media alike)."""

from ._base import CHANNEL, BusEvent, BusStats, EventBus, Listener, SlowSubscriber, decode, encode, scrub

__all__ = ["CHANNEL", "BusEvent", "BusStats", "EventBus", "Listener", "SlowSubscriber", "decode", "encode", "scrub"]
