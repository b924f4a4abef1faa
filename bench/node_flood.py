"""Flood the contact node with 640x480 frames (camera + detector rate) and measure how it holds up.

Usage: .venv/bin/python bench/node_flood.py [--seconds 60] [--rate 30] [--backend keypoint] [--markers]
                                           [--image-qos sensor_data|reliable]

The node runs in its own process (the installed-or-source `ivlm_ros.contact_node`, real backend,
max_rate_hz 0 = as fast as the backend goes; otherwise the shipped defaults, image_qos auto, and the
Fast DDS profile the launch file gives it, config/fastdds_node.xml; ROS's default discovery range
unless ROS_AUTOMATIC_DISCOVERY_RANGE is set); this process publishes Image + CameraInfo +
ObjectDetectionArray with one fresh stamp per frame (the team's cup photo scaled to 640x480, with its
labelled boxes), listens to the contacts and reads the node's /diagnostics and /proc RSS.
--markers also subscribes to the markers (so they are built and sent).
Last line: one JSON object with output_rate_hz, latency p50/p95 (image stamp -> contacts received,
ms) overall and for the first and last third of the run, frames published/received/processed/dropped
(received < published: the transport lost them),
backend and node-overhead p50 (from the node's diagnostics), and RSS after warm-up, peak and growth
(MB). The machine is shared: figures are noisy, run it twice.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header
from visualization_msgs.msg import MarkerArray

from ivlm_core.labels import load_labels
from ivlm_core.types import CameraIntrinsics, Detection
from ivlm_ros import conversions
from ivlm_ros.msg import ContactArray, ObjectDetectionArray

REPO = Path(__file__).resolve().parents[1]
PHOTO = REPO / "test" / "data" / "player" / "man_holding_drink_glass.jpg"
WARMUP_S = 5.0


def photo_frame(width: int = 640, height: int = 480) -> tuple[np.ndarray, list[Detection]]:
    """The team's cup photo as a (height, width, 3) RGB frame, with its labelled boxes scaled to it."""
    rgb = cv2.cvtColor(cv2.imread(str(PHOTO)), cv2.COLOR_BGR2RGB)
    sx, sy = width / rgb.shape[1], height / rgb.shape[0]
    scale = np.array([sx, sy, sx, sy])
    dets = [Detection(d.label, d.box_xyxy * scale, d.score, d.id)
            for d in load_labels(str(PHOTO.with_name("labels.json")))[PHOTO.name]]
    return cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA), dets


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"no VmRSS for pid {pid}")


def _change(node, executor, name: str, transition: int) -> None:
    client = node.create_client(ChangeState, name)
    if not client.wait_for_service(timeout_sec=60.0):
        raise RuntimeError(f"{name} did not come up")
    future = client.call_async(ChangeState.Request(transition=Transition(id=transition)))
    executor.spin_until_future_complete(future, timeout_sec=300.0)
    if not future.done() or not future.result().success:
        raise RuntimeError(f"lifecycle transition {transition} failed")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--rate", type=float, default=30.0)
    ap.add_argument("--backend", default="keypoint")
    ap.add_argument("--markers", action="store_true", help="subscribe to the markers too")
    ap.add_argument("--image-qos", choices=("sensor_data", "reliable"), default="sensor_data",
                    help="QoS of this camera publisher (the node matches it: image_qos auto)")
    args = ap.parse_args()
    ns = f"flood{os.getpid()}"
    os.environ.setdefault("ROS_DOMAIN_ID", str(101 + os.getpid() % 100))  # tests use 1..100
    env = dict(os.environ, FASTDDS_DEFAULT_PROFILES_FILE=str(REPO / "config" / "fastdds_node.xml"))
    node_proc = subprocess.Popen(
        [sys.executable, "-c", "from ivlm_ros.contact_node import main; main()", "--ros-args",
         "-r", f"__ns:=/{ns}", "-p", f"backend:={args.backend}", "-p", "max_rate_hz:=0.0",
         "-p", "detections_type:=ivlm", "-p", "diagnostics_period_s:=0.5"],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    rclpy.init()
    node = rclpy.create_node("node_flood")
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    qos = qos_profile_sensor_data if args.image_qos == "sensor_data" else 10
    image_pub = node.create_publisher(Image, f"/{ns}/image", qos)
    info_pub = node.create_publisher(CameraInfo, f"/{ns}/camera_info", qos)
    det_pub = node.create_publisher(ObjectDetectionArray, f"/{ns}/detections", 10)
    received: list[tuple[float, float]] = []  # (receive time, latency ms)

    def on_contacts(msg: ContactArray) -> None:
        now = node.get_clock().now()
        stamp = rclpy.time.Time.from_msg(msg.header.stamp)
        received.append((time.monotonic(), (now - stamp).nanoseconds * 1e-6))

    diagnostics: dict[str, str] = {}
    node.create_subscription(ContactArray, f"/{ns}/contacts", on_contacts, 50)
    node.create_subscription(DiagnosticArray, "/diagnostics", lambda m: diagnostics.update(
        {kv.key: kv.value for s in m.status if s.name.startswith("contact_node") for kv in s.values}), 10)
    if args.markers:
        node.create_subscription(MarkerArray, f"/{ns}/contact_markers", lambda m: None, 1)
    rgb, dets = photo_frame()
    camera = CameraIntrinsics.from_fov(640, 480, 60.0)
    try:
        t0 = time.monotonic()
        _change(node, executor, f"/{ns}/contact_node/change_state", Transition.TRANSITION_CONFIGURE)
        _change(node, executor, f"/{ns}/contact_node/change_state", Transition.TRANSITION_ACTIVATE)
        print(f"node configured + active in {time.monotonic() - t0:.1f} s", flush=True)
        period, published = 1.0 / args.rate, 0
        start = time.monotonic()
        end = start + WARMUP_S + args.seconds
        rss_base, rss_peak = None, 0.0
        next_t = start
        while time.monotonic() < end:
            header = Header(stamp=node.get_clock().now().to_msg(), frame_id="camera_optical_frame")
            info_pub.publish(conversions.camera_to_info(camera, header))
            image_pub.publish(conversions.rgb_to_image(rgb, header, "rgb8"))
            det_pub.publish(conversions.detections_to_ivlm_msg(dets, header))
            published += 1
            elapsed = time.monotonic() - start
            if elapsed >= WARMUP_S:
                rss = _rss_mb(node_proc.pid)
                rss_base = rss if rss_base is None else rss_base
                rss_peak = max(rss_peak, rss)
            next_t += period
            while True:
                executor.spin_once(timeout_sec=max(0.0, next_t - time.monotonic()))
                if time.monotonic() >= next_t:
                    break
        stop = time.monotonic()
        for _ in range(20):  # let the last results and diagnostics arrive
            executor.spin_once(timeout_sec=0.05)
    finally:
        node_proc.terminate()
        try:
            _, err = node_proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            node_proc.kill()
            _, err = node_proc.communicate()
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    timed = [(t, lat) for t, lat in received if start + WARMUP_S <= t <= stop]
    if not timed:
        print(err[-3000:])
        raise SystemExit("no contacts received during the timed run")
    lat = np.array([v for _, v in timed])
    third = max(1, len(lat) // 3)
    result = {
        "seconds": args.seconds, "input_rate_hz": args.rate, "backend": args.backend, "markers": args.markers,
        "image_qos": args.image_qos,
        "frames_published": published, "frames_received": int(diagnostics.get("frames_received", -1)),
        "frames_processed": int(diagnostics.get("frames_processed", -1)),
        "frames_dropped": int(diagnostics.get("frames_dropped", -1)),
        "output_rate_hz": round(len(timed) / args.seconds, 2),
        "latency_p50_ms": round(float(np.percentile(lat, 50)), 1),
        "latency_p95_ms": round(float(np.percentile(lat, 95)), 1),
        "latency_p50_first_third_ms": round(float(np.median(lat[:third])), 1),
        "latency_p50_last_third_ms": round(float(np.median(lat[-third:])), 1),
        "backend_p50_ms": float(diagnostics.get("backend_p50_ms", "nan")),
        "node_overhead_p50_ms": float(diagnostics.get("node_overhead_p50_ms", "nan")),
        "node_overhead_p95_ms": float(diagnostics.get("node_overhead_p95_ms", "nan")),
        "rss_after_warmup_mb": round(rss_base or 0.0, 1),
        "rss_peak_mb": round(rss_peak, 1),
        "rss_growth_mb": round(rss_peak - (rss_base or 0.0), 1),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
