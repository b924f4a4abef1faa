"""Lifecycle churn: configure / activate / deactivate / cleanup the contact node while images flow.

Usage: PYTHONPATH=. .venv/bin/python bench/lifecycle_churn.py [--cycles 20] [--backend keypoint]

The node (real backend, markers on) and a camera + detector stand-in (the team's cup photo at 640x480
with its labelled boxes, 10 Hz) share this process; each cycle configures, activates, waits for one
ContactArray, deactivates and cleans up. RSS is read from /proc after every cleanup, after glibc's
malloc_trim (memory the allocator merely keeps is not a leak). The first cycle is the warm-up (imports,
caches that live once per process); growth is measured from it to the last. Like the contact_node
executable, the bench caps glibc's malloc arenas (ivlm_ros.spin.limit_malloc_arenas); --default-arenas
keeps glibc's default (each configure's model threads then keep arenas of their own: ~120 MB more).
Last line: one JSON object with cycles, rss_after_first_mb, rss_after_last_mb, rss_growth_mb (goal
<= 50), rss_per_cycle_mb (slope of a line through every cycle after the first), answered cycles and the
mean configure seconds. The machine is shared: run it twice.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import threading
import time

import numpy as np
import rclpy
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState
from rclpy.executors import MultiThreadedExecutor
from rclpy.parameter import Parameter
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header
from visualization_msgs.msg import MarkerArray

from bench.node_flood import _rss_mb as rss_mb
from bench.node_flood import photo_frame  # the flood bench's 640x480 cup frame and its labelled boxes
from ivlm_core.types import CameraIntrinsics
from ivlm_ros import conversions
from ivlm_ros.contact_node import ContactNode
from ivlm_ros.msg import ContactArray, ObjectDetectionArray
from ivlm_ros.spin import limit_malloc_arenas


def _rss_mb() -> float:
    """Resident memory of this process after returning freed heap to the system (glibc malloc_trim)."""
    with contextlib.suppress(OSError):  # not glibc: measured as is
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    return rss_mb(os.getpid())


def _transition(client: object, transition_id: int) -> bool:
    """One lifecycle transition through the node's change_state service, as a launch system drives it."""
    future = client.call_async(ChangeState.Request(transition=Transition(id=transition_id)))
    deadline = time.monotonic() + 120.0
    while not future.done() and time.monotonic() < deadline:
        time.sleep(0.01)
    return future.done() and future.result().success


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=20)
    parser.add_argument("--backend", default="keypoint")
    parser.add_argument("--default-arenas", action="store_true", help="keep glibc's default malloc arenas")
    args = parser.parse_args()

    if not args.default_arenas:
        limit_malloc_arenas()  # as the contact_node executable does
    rgb, detections = photo_frame()
    rclpy.init()
    node = ContactNode(parameter_overrides=[
        Parameter("backend", value=args.backend), Parameter("detections_type", value="ivlm"),
        Parameter("image_qos", value="reliable"), Parameter("max_rate_hz", value=0.0)])
    peer = rclpy.create_node("ivlm_churn_camera")
    image_pub = peer.create_publisher(Image, "image", 10)
    info_pub = peer.create_publisher(CameraInfo, "camera_info", 10)
    det_pub = peer.create_publisher(ObjectDetectionArray, "detections", 10)
    answered: list[ContactArray] = []
    peer.create_subscription(ContactArray, "contacts", answered.append, 10)
    peer.create_subscription(MarkerArray, "contact_markers", lambda _: None, 1)  # markers are built too
    executor = MultiThreadedExecutor(num_threads=3)
    executor.add_node(node)
    executor.add_node(peer)
    threading.Thread(target=executor.spin, daemon=True).start()

    stop = threading.Event()

    def camera() -> None:
        k = 0
        while not stop.is_set():
            k += 1
            header = Header(frame_id="churn_camera_optical")
            header.stamp.sec, header.stamp.nanosec = 1000 + k // 10, (k % 10) * 100_000_000
            info_pub.publish(conversions.camera_to_info(CameraIntrinsics.from_fov(640, 480, 60.0), header))
            image_pub.publish(conversions.rgb_to_image(rgb, header))
            det_pub.publish(conversions.detections_to_ivlm_msg(detections, header))
            time.sleep(0.1)

    threading.Thread(target=camera, daemon=True).start()
    client = peer.create_client(ChangeState, "contact_node/change_state")
    assert client.wait_for_service(timeout_sec=10.0)
    rss, configure_s, ok = [], [], 0
    for _ in range(args.cycles):
        t0 = time.monotonic()
        assert _transition(client, Transition.TRANSITION_CONFIGURE), node._stats.last_error
        configure_s.append(time.monotonic() - t0)
        assert _transition(client, Transition.TRANSITION_ACTIVATE)
        before = len(answered)
        deadline = time.monotonic() + 30.0
        while len(answered) == before and time.monotonic() < deadline:
            time.sleep(0.05)
        ok += len(answered) > before
        assert _transition(client, Transition.TRANSITION_DEACTIVATE)
        assert _transition(client, Transition.TRANSITION_CLEANUP)
        answered.clear()
        rss.append(_rss_mb())
        print(f"cycle {len(rss)}: rss {rss[-1]:.0f} MB, configure {configure_s[-1]:.1f} s", flush=True)
    stop.set()
    executor.shutdown()
    node.destroy_node()
    peer.destroy_node()
    rclpy.try_shutdown()
    slope = float(np.polyfit(np.arange(len(rss) - 1), rss[1:], 1)[0]) if len(rss) > 2 else 0.0
    print(json.dumps({"cycles": args.cycles, "backend": args.backend, "rss_after_first_mb": round(rss[0], 1),
                      "rss_after_last_mb": round(rss[-1], 1), "rss_growth_mb": round(rss[-1] - rss[0], 1),
                      "rss_per_cycle_mb": round(slope, 2), "answered_cycles": ok,
                      "configure_s_mean": round(float(np.mean(configure_s)), 2)}))


if __name__ == "__main__":
    main()
