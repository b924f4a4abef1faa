"""Shared test set-up: isolated ROS 2 discovery, markers for optional tool chains."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"

# Every test session talks DDS only on this machine, in a domain of its own.
os.environ.setdefault("ROS_DOMAIN_ID", str(random.Random(os.getpid()).randint(1, 100)))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")


def _has_launch_tools() -> bool:
    try:
        import launch_ros  # noqa: F401
        import vision_msgs.msg  # noqa: F401
    except ImportError:
        return False
    return True


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if _has_launch_tools():
        return
    skip = pytest.mark.skip(
        reason="ros2 launch / vision_msgs not installed (IVLM_ROS_TOOLS=1 bash scripts/setup.sh)"
    )
    for item in items:
        if "launch_tools" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def shared_photos() -> Path:
    """The team's labelled real photos; tests using them skip where ../shared is absent."""
    photos = SHARED / "photos"
    if not (photos / "labels.json").is_file():
        pytest.skip("../shared/photos is not available")
    return photos
