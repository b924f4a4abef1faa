"""Waiting for something a ROS callback fills in, with a deadline (shared by the node tests)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(get: Callable[[], T | None], timeout: float) -> T | None:
    """Poll `get` every 50 ms until it returns something other than None, or `timeout` s pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = get()
        if found is not None:
            return found
        time.sleep(0.05)
    return None
