"""The README's first command ends in `python -m ivlm_ros.demo`: the whole ROS chain on a real photo."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("rclpy")
REPO = Path(__file__).resolve().parents[1]


def test_demo_prints_the_cameramans_hand_contact_with_the_camera():
    out = subprocess.run([sys.executable, "-m", "ivlm_ros.demo", "--timeout", "90"], cwd=REPO,
                         capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "frame_id='camera_optical_frame'" in out.stdout
    contact = next(line for line in out.stdout.splitlines() if "- camera (camcorder):" in line)
    assert "in contact" in contact and "hand" in contact, contact
    assert "object at (" in out.stdout, "the camcorder was not placed in 3D"
