"""Pairing camera images with the detections of the same stamp, for detectors that run behind the camera.

As message_filters' approximate-time synchronizer does, recent images wait (bounded by count and age)
until detections with a stamp within `tolerance_s` arrive; the newest paired image wins and older
ones are dropped, so a slow consumer never builds a queue. How long an image waits adapts to the
detector's measured delay (detections' arrival minus their image's arrival), never beyond `max_wait_s`.
Plain data: stamps are integer nanoseconds, times are `time.monotonic()` seconds passed in by the caller.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ivlm_core.diagnostics import WARN, FrameStats
from ivlm_core.rate_limit import RateLimit

# The adaptive wait never drops below this: a fast detector's delay jitters (a loaded machine, a burst of
# objects), and a frame given up too early is a frame lost; it only delays the "no detections" report.
MIN_WAIT_S = 0.25
DELAY_MARGIN = 1.5  # the wait is this times the slowest recent detector delay, plus MIN_WAIT_S


@dataclass
class Waiting:
    """One image waiting for its detections."""

    item: Any  # the image (any payload)
    stamp_ns: int
    arrived: float  # monotonic seconds


@dataclass
class Taken:
    """What `FramePairer.take` hands out: the frame to process (if any) and the frames given up."""

    frame: Waiting | None = None
    detections: Any = None  # the payload given with the detections of `frame`, None without detections
    dropped: int = 0  # superseded by a newer frame (or over the count bound)
    unpaired: int = 0  # waited `wait_s` without detections
    retry_in_s: float = 0.1  # when a frame may next become due (nothing taken)


@dataclass
class FramePairer:
    """Recent images and detections of one stream, paired by stamp.

    tolerance_s: largest stamp difference that pairs an image with detections. max_wait_s: most time an
    image waits for its detections. max_images: images kept waiting (older ones are dropped).
    use_detections: False hands out the newest image at once, without detections.
    """

    tolerance_s: float = 0.05
    max_wait_s: float = 1.0
    max_images: int = 32
    use_detections: bool = True
    _images: deque[Waiting] = field(default_factory=deque)
    _detections: deque[tuple[int, Any]] = field(default_factory=lambda: deque(maxlen=60))
    _seen: deque[tuple[int, float]] = field(default_factory=lambda: deque(maxlen=128))  # (stamp, arrived)
    _delays: deque[float] = field(default_factory=lambda: deque(maxlen=30))  # seconds

    def __post_init__(self) -> None:
        if not self.tolerance_s >= 0 or not self.max_wait_s >= 0 or self.max_images < 1:
            raise ValueError(f"pairing needs tolerance_s >= 0, max_wait_s >= 0 and max_images >= 1, got "
                             f"{self.tolerance_s}, {self.max_wait_s}, {self.max_images}")

    def __len__(self) -> int:
        return len(self._images)

    @property
    def wait_s(self) -> float:
        """How long an image now waits: the measured detector delay with a margin, within max_wait_s."""
        if not self._delays:
            return self.max_wait_s
        return min(self.max_wait_s, DELAY_MARGIN * max(self._delays) + MIN_WAIT_S)

    @property
    def delay_s(self) -> float | None:
        """Median measured detector delay (seconds), None before any detections matched an image."""
        return float(np.median(self._delays)) if self._delays else None

    def add_image(self, item: Any, stamp_ns: int, now: float) -> int:
        """Keep an image; returns how many older images were dropped to stay within `max_images`."""
        self._images.append(Waiting(item, int(stamp_ns), now))
        self._seen.append((int(stamp_ns), now))
        dropped = 0
        while len(self._images) > self.max_images:
            self._images.popleft()
            dropped += 1
        return dropped

    def add_detections(self, stamp_ns: int, payload: Any, now: float) -> None:
        """Keep detections; measures the detector's delay against the image of the same stamp."""
        self._detections.append((int(stamp_ns), payload))
        tol = self.tolerance_s * 1e9
        seen = [arrived for stamp, arrived in self._seen if abs(stamp - stamp_ns) <= tol]
        if seen:
            self._delays.append(max(now - seen[-1], 0.0))

    def _match(self, stamp_ns: int) -> tuple[int, Any] | None:
        best = min(self._detections, key=lambda d: abs(d[0] - stamp_ns), default=None)
        return None if best is None or abs(best[0] - stamp_ns) > self.tolerance_s * 1e9 else best

    def take(self, now: float) -> Taken:
        """The newest image whose detections arrived (older images dropped), or the images given up."""
        if not self._images:
            return Taken()
        if not self.use_detections:
            frame = self._images.pop()
            taken = Taken(frame=frame, dropped=len(self._images))
            self._images.clear()
            return taken
        for k in range(len(self._images) - 1, -1, -1):
            match = self._match(self._images[k].stamp_ns)
            if match is not None:
                frame = self._images[k]
                for _ in range(k + 1):
                    self._images.popleft()
                return Taken(frame=frame, detections=match[1], dropped=k)
        taken, wait = Taken(), self.wait_s
        while self._images and now - self._images[0].arrived >= wait:
            self._images.popleft()
            taken.unpaired += 1
        if self._images:
            taken.retry_in_s = max(wait - (now - self._images[0].arrived), 0.0)
        return taken

    def clear(self) -> None:
        """Forget waiting images and detections (deactivate); measured delays are kept."""
        self._images.clear()
        self._detections.clear()


class FrameQueue:
    """A FramePairer shared by message callbacks and one worker: rate-limited, blocking, stoppable.

    Counts received, dropped and unpaired frames into `stats`; an unpaired frame sets it to WARN with
    the measured detector delay. max_rate_hz: most frames handed out per second (RateLimit; 0 = no limit).
    """

    def __init__(self, pairer: FramePairer, stats: FrameStats, max_rate_hz: float = 0.0) -> None:
        self.pairer, self.stats, self.rate = pairer, stats, RateLimit(max_rate_hz)
        self._cond = threading.Condition()
        self._running = True

    def add_image(self, item: Any, stamp_ns: int) -> None:
        with self._cond:
            self.stats.received += 1
            self.stats.dropped += self.pairer.add_image(item, stamp_ns, time.monotonic())
            self._cond.notify_all()

    def add_detections(self, stamp_ns: int, payload: Any) -> None:
        with self._cond:
            self.pairer.add_detections(stamp_ns, payload, time.monotonic())
            self._cond.notify_all()

    def configure(self, tolerance_s: float, max_wait_s: float, max_rate_hz: float) -> None:
        """Change the settings live."""
        with self._cond:
            self.pairer.tolerance_s, self.pairer.max_wait_s = tolerance_s, max_wait_s
            self.rate.rate_hz = max_rate_hz

    def next(self) -> tuple[Any, Any] | None:
        """Block until a frame is due (rate limit) and paired: (image, detections payload); None on stop.

        The newest image whose detections have arrived wins; older images are dropped. Images wait for
        detections (see FramePairer), then are skipped, not handed out without them: an empty answer
        would tell a planner "no contact" when the truth is "unknown".
        """
        with self._cond:
            while self._running:
                wait_rate = self.rate.wait_s(time.monotonic())
                if not len(self.pairer) or wait_rate > 0:
                    self._cond.wait(timeout=wait_rate or 0.1)
                    continue
                taken = self.pairer.take(time.monotonic())
                self.stats.dropped += taken.dropped
                if taken.unpaired:
                    self.stats.unpaired += taken.unpaired
                    self.stats.set(WARN, self.unpaired_message())
                if taken.frame is not None:
                    self.rate.start(time.monotonic())
                    return taken.frame.item, taken.detections
                self._cond.wait(timeout=taken.retry_in_s or 0.1)
        return None

    def values(self) -> dict[str, str]:
        """Diagnostic key/values of the pairing: measured detector delay and the wait it sets."""
        delay = self.pairer.delay_s
        return {"detection_delay_ms": "" if delay is None else f"{delay * 1e3:.0f}",
                "detection_wait_s": f"{self.pairer.wait_s:.2f}"}

    def unpaired_message(self) -> str:
        pairer, delay = self.pairer, self.pairer.delay_s
        measured = ("no detections matched an image yet" if delay is None
                    else f"detections arrive {delay:.2f} s after their images")
        return (f"frame skipped: no detections within {pairer.wait_s:.2f} s of it ({measured}; the wait "
                f"adapts up to detection_wait_s = {pairer.max_wait_s} s; is the detector running and "
                f"remapped to 'detections'?)")

    def stop(self) -> None:
        """Wake and end `next` (deactivate); waiting images and detections are forgotten."""
        with self._cond:
            self._running = False
            self.pairer.clear()
            self._cond.notify_all()
