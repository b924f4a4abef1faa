"""RateLimit: the limit's rate from a faster stream, everything from a slower one, no bursts."""

from __future__ import annotations

import numpy as np
import pytest

from ivlm_core.rate_limit import RateLimit


@pytest.mark.parametrize(("input_hz", "limit_hz", "expected_hz"), [(15.0, 10.0, 10.0), (30.0, 10.0, 10.0),
                                                                  (15.0, 4.0, 4.0), (5.0, 10.0, 5.0)])
def test_rate_limit_takes_the_limit_from_a_faster_stream_and_everything_from_a_slower_one(
        input_hz: float, limit_hz: float, expected_hz: float) -> None:
    """A 15 Hz camera under max_rate_hz 10 is answered at 10 Hz (a period-since-last-start rule takes
    every second frame: 7.5 Hz); never two starts closer than half a period; 0 = no limit."""
    rate, starts = RateLimit(limit_hz), []
    for i in range(int(20 * input_hz)):  # 20 s of frames, each taken at once if allowed
        now = i / input_hz
        if rate.wait_s(now) == 0.0:
            rate.start(now)
            starts.append(now)
    assert len(starts) / 20.0 == pytest.approx(expected_hz, rel=0.02)
    assert float(np.diff(starts).min()) >= 0.5 / limit_hz - 1e-9
    unlimited = RateLimit(0.0)
    unlimited.start(1.0)
    assert unlimited.wait_s(1.0) == 0.0
