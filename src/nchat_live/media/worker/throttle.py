"""Failed stream-key attempts, counted per client address and shared by WHIP and RTMP.

After `max_failures` wrong keys (or unknown streams) within `window` seconds an address is refused
(WHIP 429 + Retry-After, RTMP connection dropped) until its oldest failure leaves the window; each
failure is answered only after a small delay, so guessing keys is slow even below the limit.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque

# Addresses remembered at once; beyond it the ones whose failures are all old go first.
_MAX_ADDRESSES = 10_000


class KeyThrottle:
    def __init__(self, max_failures: int, window: float, delay: float) -> None:
        self.max_failures = max(1, max_failures)
        self.window = window
        self.delay = delay
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, address: str, now: float) -> deque[float] | None:
        times = self._failures.get(address)
        if times is None:
            return None
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self._failures[address]
            return None
        return times

    def retry_after(self, address: str) -> int | None:
        """Whole seconds until `address` may try again, or None when it may try now."""
        now = time.monotonic()
        times = self._recent(address, now)
        if times is None or len(times) < self.max_failures:
            return None
        return max(1, math.ceil(times[0] + self.window - now))

    async def failed(self, address: str) -> None:
        """Count one failure for `address`, then wait the failure delay."""
        now = time.monotonic()
        times = self._recent(address, now)
        if times is None:
            if len(self._failures) >= _MAX_ADDRESSES:
                self._prune(now)
            times = self._failures[address] = deque(maxlen=self.max_failures)
        times.append(now)
        if self.delay > 0:
            await asyncio.sleep(self.delay)

    def _prune(self, now: float) -> None:
        for address in list(self._failures):
            self._recent(address, now)
        while len(self._failures) >= _MAX_ADDRESSES:
            # Still full of recent failures: forget the address whose last failure is oldest.
            oldest = min(self._failures, key=lambda a: self._failures[a][-1])
            del self._failures[oldest]
