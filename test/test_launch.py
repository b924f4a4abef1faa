"""`ros2 launch ivlm_ros contact.launch.py` for real: the node comes up, configures, activates and publishes
contacts for the player's photo, whose detections travel as real vision_msgs/Detection2DArray.

Needs the launch tools and vision_msgs (IVLM_ROS_TOOLS=1 bash scripts/setup.sh) and the package
installed into the venv (scripts/setup.sh); skips cleanly otherwise.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.ros, pytest.mark.launch_tools, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
ROS2 = Path(sys.executable).with_name("ros2")
NAMESPACE = "ivlm_launch_test"


def _installed() -> bool:
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_prefix
    except ImportError:
        return False
    try:
        prefix = Path(get_package_prefix("ivlm_ros"))
    except PackageNotFoundError:
        return False
    return (prefix / "lib" / "ivlm_ros" / "contact_node").is_file()


def _environment_of(*words: str) -> dict[str, str]:
    """The environment of the running process whose command line holds all `words` ({} if none)."""
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
            if all(w in cmdline for w in words) and "ros2 launch" not in cmdline.replace("\0", " "):
                pairs = (proc / "environ").read_bytes().decode(errors="replace").split("\0")
                return dict(p.split("=", 1) for p in pairs if "=" in p)
        except OSError:
            continue
    return {}


@pytest.fixture(scope="module")
def launched():
    if not (REPO.parent / "shared" / "ros2").is_dir():
        pytest.skip("../shared/ros2 (launch tools, vision_msgs) is not available")
    pytest.importorskip("launch_ros")
    pytest.importorskip("vision_msgs.msg")
    if not ROS2.is_file() or not _installed():
        pytest.skip("ivlm_ros is not installed into the venv with ros2 (run scripts/setup.sh)")
    import rclpy
    from lifecycle_msgs.srv import GetState
    from rclpy.executors import SingleThreadedExecutor
    from vision_msgs.msg import Detection2DArray

    from ivlm_ros.msg import ContactArray

    proc = subprocess.Popen(
        [str(ROS2), "launch", "ivlm_ros", "contact.launch.py", f"namespace:={NAMESPACE}",
         f"player_source:={REPO / 'test' / 'data' / 'player'}", "player_rate_hz:=2.0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node("ivlm_launch_test_listener", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    got = {"contacts": [], "detections": []}
    node.create_subscription(ContactArray, f"/{NAMESPACE}/contacts", got["contacts"].append, 10)
    node.create_subscription(Detection2DArray, f"/{NAMESPACE}/detections", got["detections"].append, 10)
    def answered_after_detections() -> bool:
        """Two ContactArrays, the last of a frame whose detections this listener saw too (the listener may
        discover the player after the node did: the first frames' detections can pass it by)."""
        stamps = {(d.header.stamp.sec, d.header.stamp.nanosec) for d in got["detections"]}
        last = got["contacts"][-1].header.stamp if got["contacts"] else None
        return len(got["contacts"]) >= 2 and last is not None and (last.sec, last.nanosec) in stamps

    deadline = time.monotonic() + 120.0
    while time.monotonic() < deadline and not answered_after_detections() and proc.poll() is None:
        executor.spin_once(timeout_sec=0.2)
    got["node_env"] = _environment_of(f"__ns:=/{NAMESPACE}", "ivlm_ros/contact_node")
    client = node.create_client(GetState, f"/{NAMESPACE}/contact_node/get_state")
    state = None
    if client.wait_for_service(timeout_sec=10.0):
        future = client.call_async(GetState.Request())
        executor.spin_until_future_complete(future, timeout_sec=10.0)
        state = future.result().current_state.label if future.done() else None
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C, as a user stops `ros2 launch`
    try:
        output, _ = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
    executor.shutdown()
    node.destroy_node()
    rclpy.shutdown(context=context)
    yield got, state, proc.returncode, output


def test_launch_brings_the_node_to_active_and_it_publishes_contacts(launched):
    got, state, _, output = launched
    assert state == "active", output[-3000:]
    assert got["contacts"], f"no ContactArray from the launched node\n{output[-3000:]}"
    msg = got["contacts"][0]
    assert msg.header.frame_id == "camera_optical_frame"
    assert msg.contacts and msg.contacts[0].object_label == "cup"


def test_launch_consumes_vision_msgs_detections(launched):
    got, *_ = launched
    assert got["detections"], "the player did not publish vision_msgs/Detection2DArray"
    labels = {r.hypothesis.class_id for d in got["detections"][0].detections for r in d.results}
    assert labels == {"person", "cup"}
    stamps = {(d.header.stamp.sec, d.header.stamp.nanosec) for d in got["detections"]}
    last = got["contacts"][-1].header.stamp
    assert (last.sec, last.nanosec) in stamps, "contacts are not stamped like the detections they used"


def test_ctrl_c_stops_every_process_cleanly(launched):
    _, _, returncode, output = launched
    assert returncode == 0, output[-3000:]
    assert "[contact_node-1]: process has finished cleanly" in output, output[-3000:]
    assert "[player-2]: process has finished cleanly" in output, output[-3000:]


def test_launch_applies_the_large_image_dds_profile_to_the_node(launched):
    """The node gets the installed config/fastdds_node.xml (test_transport measures what it does)."""
    got, _, _, output = launched
    assert got["node_env"], "the contact node process was not found"
    from ament_index_python.packages import get_package_share_directory

    shipped = Path(get_package_share_directory("ivlm_ros")) / "config" / "fastdds_node.xml"
    profile = got["node_env"].get("FASTDDS_DEFAULT_PROFILES_FILE")
    assert profile == os.environ.get("FASTDDS_DEFAULT_PROFILES_FILE", str(shipped))
    assert Path(profile).read_bytes() == (REPO / "config" / "fastdds_node.xml").read_bytes()
    assert f"DDS profile: {profile} (from FASTDDS_DEFAULT_PROFILES_FILE)" in output  # the node took it
