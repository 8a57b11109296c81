"""Realtime: the event bus, GraphQL over websockets, live queries, presence."""

from .bus import BusEvent, BusStats, EventBus, Listener, SlowSubscriber
from .live import LiveQueries
from .realtime import Limits, Realtime, start_realtime, stop_realtime

__all__ = [
    "BusEvent", "BusStats", "EventBus", "Limits", "Listener", "LiveQueries", "Realtime", "SlowSubscriber",
    "start_realtime", "stop_realtime",
]
