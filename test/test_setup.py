"""The one-command set-up gives a reproducible venv: exact pins, installed package, shipped models."""

from __future__ import annotations

import importlib.metadata as md
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_venv_matches_the_lock_exactly():
    wrong = {}
    for line in (REPO / "requirements" / "lock.txt").read_text().splitlines():
        if "==" not in line or line.startswith("#"):
            continue
        name, version = line.split("==")
        try:
            installed = md.version(name)
        except md.PackageNotFoundError:
            installed = None
        if installed is None or installed.split("+")[0] != version:
            wrong[name] = (version, installed)
    assert not wrong, f"pinned vs installed: {wrong} — re-run scripts/setup.sh"


def test_torch_is_the_cpu_build_pinned():
    import torch

    assert torch.__version__.startswith("2.13.0")


def test_ament_index_finds_the_installed_package():
    pytest.importorskip("rclpy")
    from ament_index_python.packages import get_package_prefix

    assert Path(get_package_prefix("ivlm_ros")).resolve() == Path(sys.prefix).resolve()


@pytest.mark.launch_tools
def test_ros2_pkg_prefix_finds_ivlm_ros():
    out = subprocess.run([str(Path(sys.prefix) / "bin" / "ros2"), "pkg", "prefix", "ivlm_ros"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert Path(out.stdout.strip()).resolve() == Path(sys.prefix).resolve()


def test_shipped_pose_model_runs_with_the_pinned_numpy():
    """mediapipe 0.10.21 declares numpy<2 but is installed beside numpy 2.4.6: prove it still works."""
    import mediapipe as mp
    import numpy as np
    from skimage import data

    assert np.__version__ == "2.4.6"
    gray = data.camera()
    with mp.solutions.pose.Pose(static_image_mode=True, model_complexity=1) as pose:
        result = pose.process(np.ascontiguousarray(np.stack([gray] * 3, axis=-1)))
    assert result.pose_landmarks is not None
    nose = result.pose_landmarks.landmark[0]
    # the cameraman's head is in the upper-middle of the photo
    assert 0.3 < nose.x < 0.7 and 0.1 < nose.y < 0.5


@pytest.mark.launch_tools
def test_ros_tools_come_from_the_setup_step_at_the_kilted_releases():
    """CI installs launch, ros2cli, vision_msgs with the opt-in set-up step users run (IVLM_ROS_TOOLS=1)."""
    stamp = Path(sys.prefix) / "share" / "ivlm_ros_venv" / "ros_tools.stamp"
    assert stamp.is_file(), "not installed by IVLM_ROS_TOOLS=1 bash scripts/setup.sh"
    versions = (md.version("launch"), md.version("launch_ros"), md.version("ros2cli"))
    assert versions == ("3.8.8", "0.28.6", "0.38.4")
    ros2 = str(Path(sys.prefix) / "bin" / "ros2")
    out = subprocess.run([ros2, "interface", "show", "ivlm_ros/srv/EstimateContact"], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0 and "ContactArray contacts" in out.stdout, out.stderr
