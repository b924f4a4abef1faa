"""Rolling figures of a contact stream for diagnostics: counts, latency, backend time, output rate.

Plain data: the node feeds it and publishes `values()` as diagnostic_msgs KeyValues. Levels are those
of diagnostic_msgs/DiagnosticStatus.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

OK, WARN, ERROR = 0, 1, 2  # diagnostic_msgs/DiagnosticStatus levels
WINDOW = 100  # frames the percentiles are taken over


def _window() -> deque[float]:
    return deque(maxlen=WINDOW)


def percentile(values: deque[float], q: float) -> float:
    """The q-th percentile of `values`, 0 when empty."""
    return float(np.percentile(list(values), q)) if values else 0.0


@dataclass
class FrameStats:
    """Counts since configure and the last WINDOW frames' timings (milliseconds)."""

    received: int = 0
    processed: int = 0
    dropped: int = 0  # superseded by newer frames (a slow backend or rate limit)
    unpaired: int = 0  # no detections arrived for them in time
    unstamped: int = 0  # header stamp 0: no latency can be measured
    errors: int = 0
    latency_ms: deque[float] = field(default_factory=_window)  # publish time - header stamp
    backend_ms: deque[float] = field(default_factory=_window)
    overhead_ms: deque[float] = field(default_factory=_window)
    done_at: deque[float] = field(default_factory=_window)  # monotonic seconds
    last_error: str = ""
    level: int = OK
    message: str = "waiting for images"
    warned: set[str] = field(default_factory=set)  # header problems already warned about
    # the worker sets the status while a timer publishes it: one lock keeps message and last_error together
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False, compare=False)

    def record(self, done: float, now_ns: int, stamp_ns: int, overhead_ms: float, backend_ms: float,
               frame_id: str = "x") -> list[str]:
        """One processed frame; returns warnings about its header, each once per stream.

        A zero stamp (a driver that does not stamp) is left out of the latency; an empty frame_id is
        published as is (the points are in the camera's frame either way) but warned about.
        """
        self.processed += 1
        self.done_at.append(done)
        self.backend_ms.append(backend_ms)
        self.overhead_ms.append(overhead_ms)
        if stamp_ns == 0:
            self.unstamped += 1
        else:
            self.latency_ms.append((now_ns - stamp_ns) * 1e-6)
        new = []
        for key, bad, text in (
            ("stamp", stamp_ns == 0, "images are stamped 0: latency cannot be measured; stamp them with the "
             "capture time"),
            ("frame_id", not frame_id, "images have an empty header.frame_id: 3D points are published in an "
             "unnamed frame; set the camera driver's frame_id")):
            if bad and key not in self.warned:
                self.warned.add(key)
                new.append(text)
        return new

    def outcome(self, stamp_ns: int, problems: list[str], reasons: list[str], pairs: int,
                problems_level: int = ERROR) -> None:
        """The frame's status: its problems (counted as errors) or "ok" with the backends' reasons."""
        if problems:
            self.error(f"frame {stamp_ns * 1e-9:.3f}: {'; '.join(problems)}")
            if problems_level != ERROR:
                self.set(problems_level, "; ".join(problems))
        else:
            self.set(OK, f"ok: {pairs} pair(s)" + (f" ({'; '.join(reasons)})" if reasons else ""))

    def set(self, level: int, message: str) -> None:
        with self._lock:
            self.level, self.message = level, message

    def error(self, text: str) -> None:
        """A frame (or part of one) failed: counted, kept as the last error, level ERROR."""
        with self._lock:
            self.errors += 1
            self.last_error = text
            self.set(ERROR, text)

    def status(self, warnings: list[str]) -> tuple[int, str]:
        """Level and message: the stream's own, or WARN with `warnings` (inputs, camera) while it is OK."""
        with self._lock:
            if warnings and self.level == OK:
                return WARN, "; ".join(warnings)
            return self.level, self.message

    def snapshot(self, warnings: list[str]) -> tuple[int, str, dict[str, str]]:
        """status(warnings) and values() taken together: a published message and its last_error agree."""
        with self._lock:
            return (*self.status(warnings), self.values())

    def rate_hz(self, now: float | None = None) -> float:
        """Frames processed per second over the last 5 s."""
        now = time.monotonic() if now is None else now
        recent = [t for t in self.done_at if t > now - 5.0]
        if len(recent) < 2 or recent[-1] <= recent[0]:
            return 0.0
        return (len(recent) - 1) / (recent[-1] - recent[0])

    def values(self) -> dict[str, str]:
        """Diagnostic key/values (strings)."""
        values = {
            "frames_received": self.received, "frames_processed": self.processed,
            "frames_dropped": self.dropped, "frames_without_detections": self.unpaired,
            "frames_without_stamp": self.unstamped,
            "errors": self.errors, "output_rate_hz": f"{self.rate_hz():.2f}",
            "latency_p50_ms": f"{percentile(self.latency_ms, 50):.1f}",
            "latency_p95_ms": f"{percentile(self.latency_ms, 95):.1f}",
            "backend_p50_ms": f"{percentile(self.backend_ms, 50):.1f}",
            "node_overhead_p50_ms": f"{percentile(self.overhead_ms, 50):.2f}",
            "node_overhead_p95_ms": f"{percentile(self.overhead_ms, 95):.2f}",
            "last_error": self.last_error,
        }
        return {k: str(v) for k, v in values.items()}
