"""Pairing images with late detections, and the diagnostics figures: plain data, no ROS."""

from __future__ import annotations

import threading

import pytest

from ivlm_core.diagnostics import ERROR, FrameStats
from ivlm_core.pairing import MIN_WAIT_S, FramePairer


def _run(pairer: FramePairer, delay_s: float, frames: int = 20, period_s: float = 0.1,
         detector_answers: bool = True) -> tuple[list[int], int, int]:
    """A camera at 1/period_s Hz, a detector answering `delay_s` after each image, a consumer polling
    every 10 ms: (frames processed, dropped, unpaired). Simulated time, stamps = capture times."""
    events = []
    for k in range(frames):
        events.append((k * period_s, "image", k))
        if detector_answers:
            events.append((k * period_s + delay_s, "detections", k))
    events.sort(key=lambda e: e[0])
    done, dropped, unpaired, t, i = [], 0, 0, 0.0, 0
    end = frames * period_s + delay_s + 2.0
    while t < end:
        while i < len(events) and events[i][0] <= t:
            _, kind, k = events[i]
            stamp = round(k * period_s * 1e9)
            if kind == "image":
                dropped += pairer.add_image(k, stamp, t)
            else:
                pairer.add_detections(stamp, f"dets{k}", t)
            i += 1
        taken = pairer.take(t)
        dropped, unpaired = dropped + taken.dropped, unpaired + taken.unpaired
        if taken.frame is not None:
            assert taken.detections == f"dets{taken.frame.item}"  # always its own detections
            done.append(taken.frame.item)
        t = round(t + 0.01, 6)
    return done, dropped, unpaired


def test_detector_0p4_s_behind_the_camera_answers_every_frame():
    """Detections with the exact stamp arriving 0.4 s late: every frame is paired (a 0.25 s wait lost all)."""
    done, dropped, unpaired = _run(FramePairer(), delay_s=0.4)
    assert done == list(range(20)) and dropped == 0 and unpaired == 0
    pairer = FramePairer()
    _run(pairer, delay_s=0.4)
    assert pairer.delay_s == pytest.approx(0.4, abs=0.011)
    assert pairer.wait_s == pytest.approx(1.5 * 0.4 + MIN_WAIT_S, abs=0.02)  # adapted, within the 1 s bound
    lost, _, missing = _run(FramePairer(max_wait_s=0.25), delay_s=0.4)
    assert not lost and missing == 20  # the old fixed 0.25 s wait


def test_wait_adapts_to_a_fast_detector_and_a_silent_one_is_reported_quickly():
    pairer = FramePairer(max_wait_s=2.0)
    _run(pairer, delay_s=0.02, frames=5)
    assert pairer.wait_s < MIN_WAIT_S + 0.05  # not the 2 s bound
    pairer.add_image("lonely", 10**12, 100.0)  # its detections never come
    assert pairer.take(100.0 + pairer.wait_s / 2).unpaired == 0
    assert pairer.take(100.0 + pairer.wait_s + 1e-6).unpaired == 1 and not len(pairer)
    fresh = FramePairer(max_wait_s=2.0)  # nothing measured yet: the bound
    assert fresh.wait_s == 2.0 and fresh.delay_s is None


def test_waiting_images_are_bounded_by_count_and_the_newest_paired_wins():
    pairer = FramePairer(max_images=4)
    dropped = sum(pairer.add_image(k, k * 10**8, 0.0) for k in range(10))
    assert dropped == 6 and len(pairer) == 4
    pairer.add_detections(7 * 10**8, "seven", 0.0)
    pairer.add_detections(8 * 10**8, "eight", 0.0)
    taken = pairer.take(0.0)
    assert taken.frame.item == 8 and taken.dropped == 2 and len(pairer) == 1  # 6, 7 superseded; 9 waits
    alone = FramePairer(use_detections=False)
    for k in range(3):
        alone.add_image(k, k, 0.0)
    taken = alone.take(0.0)
    assert taken.frame.item == 2 and taken.dropped == 2 and taken.detections is None
    with pytest.raises(ValueError, match="max_images"):
        FramePairer(max_images=0)


def test_stamp_zero_is_left_out_of_the_latency():
    stats = FrameStats()
    for k in range(100):
        stats.record(done=k * 0.1, now_ns=1_700_000_000 * 10**9 + k * 10**8, stamp_ns=0, overhead_ms=1.0,
                     backend_ms=50.0)
    stats.record(done=10.0, now_ns=2 * 10**9 + 30 * 10**6, stamp_ns=2 * 10**9, overhead_ms=1.0,
                 backend_ms=50.0)
    values = stats.values()
    assert values["latency_p95_ms"] == "30.0" and values["frames_without_stamp"] == "100"
    assert values["frames_processed"] == "101"


def test_a_published_status_and_its_last_error_agree_while_the_worker_reports():
    """The worker reports errors while a timer publishes: message and last_error come from one moment
    (seen torn in a node test: message 'camera K ...' with last_error still the previous frame's)."""
    stats, done = FrameStats(), threading.Event()

    def worker() -> None:
        for k in range(20000):
            stats.error(f"frame {k}: bad")
        done.set()

    thread = threading.Thread(target=worker)
    thread.start()
    torn = 0
    while not done.is_set():
        level, message, values = stats.snapshot([])
        torn += level == ERROR and message != values["last_error"]
    thread.join()
    assert torn == 0
