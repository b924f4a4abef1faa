"""A rate limit for work taken from a stream that may arrive faster: frames to process (FrameQueue),
marker arrays to draw, diagnostics for problem frames. Times are `time.monotonic()` seconds passed
in by the caller.
"""

from __future__ import annotations


class RateLimit:
    """At most `rate_hz` starts per second on average, from a stream that arrives faster (0 = no limit).

    Starts are scheduled one period apart (`due` advances by the period), not a period after the
    last start: frames that arrive at 15 Hz under a 10 Hz limit are then taken at 10 Hz, where "a
    period since the last start" takes every second one (7.5 Hz). A start is never sooner than half
    a period after the previous one, so a late frame does not let a burst through.
    """

    def __init__(self, rate_hz: float = 0.0) -> None:
        self.rate_hz = rate_hz
        self._due = float("-inf")

    def wait_s(self, now: float) -> float:
        """Seconds until a start is allowed (0: now)."""
        return max(self._due - now, 0.0) if self.rate_hz > 0 else 0.0

    def start(self, now: float) -> None:
        """Record a start at `now` (monotonic seconds)."""
        period = 1.0 / self.rate_hz if self.rate_hz > 0 else 0.0
        self._due = max(self._due + period, now + period / 2)
