"""Camera transport: do full-size frames from a camera driver in another process reach the node?

Per case (size x writer reliability) a camera process publishes a real photo (test/data/player,
resized) as rgb8 Image + CameraInfo at 15 Hz, a detector process answers every CameraInfo with a
vision_msgs/Detection2DArray (ivlm_ros/ObjectDetectionArray without vision_msgs) of the same stamp,
and the contact node (shipped defaults: image_qos auto, and the DDS set-up the launch file applies:
FASTDDS_DEFAULT_PROFILES_FILE=config/fastdds_node.xml) runs in this process. Discovery range: ROS's
default (SUBNET) unless ROS_AUTOMATIC_DISCOVERY_RANGE is set; ROS_DOMAIN_ID 101..200 (tests use 1..100).
Printed per case: the share of the published frames that reached the node's image callback, and the
ContactArray rate (over the camera stamps it answers; max_rate_hz 10 caps it below the camera's 15 Hz).

    PYTHONPATH=. .venv/bin/python bench/camera_transport.py [--seconds 20] [--sizes 1280x720,...]

The same file is the camera and detector processes (`--role camera|detector`); test/test_transport.py
starts the camera role as the driver of its transport tests. Last line: one JSON object with
received_ratio_<reliable|besteffort>_<W>x<H> and output_hz_<W>x<H> (reliable writer).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SIZES = ((640, 480), (1280, 720), (1920, 1080))
DDS_VARIABLES = ("FASTDDS_BUILTIN_TRANSPORTS", "FASTDDS_DEFAULT_PROFILES_FILE")
STOCK_ENV = {k: v for k, v in os.environ.items() if k not in DDS_VARIABLES}  # a stock camera driver's


def _qos(reliable: bool, depth: int = 5) -> object:
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    return QoSProfile(depth=depth, reliability=ReliabilityPolicy.RELIABLE if reliable else
                      ReliabilityPolicy.BEST_EFFORT)


def camera(width: int, height: int, rate_hz: float, seconds: float, reliable: bool, wait_s: float) -> None:
    """Publish the photo at `width`x`height`, `rate_hz`, for `seconds` once a subscriber matched.

    Prints 'published N' at the end (the frames sent), like a driver's own counter would.
    """
    import rclpy
    from sensor_msgs.msg import CameraInfo, Image
    from std_msgs.msg import Header

    from bench.node_flood import photo_frame
    from ivlm_core.types import CameraIntrinsics
    from ivlm_ros import conversions

    rclpy.init()
    node = rclpy.create_node("bench_camera")
    image_pub = node.create_publisher(Image, "image", _qos(reliable))
    info_pub = node.create_publisher(CameraInfo, "camera_info", _qos(True, 10))
    rgb, _ = photo_frame(width, height)
    image = conversions.rgb_to_image(rgb, Header(frame_id="camera_optical"), "rgb8")
    info = conversions.camera_to_info(CameraIntrinsics.from_fov(width, height, 60.0), image.header)
    deadline = time.monotonic() + wait_s
    while image_pub.get_subscription_count() == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # let a subscriber that adapts its QoS to this writer re-subscribe first
    print("ready", flush=True)
    sent, start = 0, time.monotonic()
    while time.monotonic() - start < seconds:
        stamp = node.get_clock().now().to_msg()
        image.header.stamp = info.header.stamp = stamp
        image_pub.publish(image)
        info_pub.publish(info)
        sent += 1
        time.sleep(max(0.0, start + sent / rate_hz - time.monotonic()))
    time.sleep(0.5)  # a reliable writer finishes sending before it goes away
    print(f"published {sent}", flush=True)
    node.destroy_node()
    rclpy.shutdown()


def detector(width: int, height: int, delay_s: float) -> None:
    """Answer every CameraInfo with detections of the photo's person and cup (boxes scaled), same stamp."""
    import rclpy

    from bench.node_flood import photo_frame
    from ivlm_ros import conversions
    from ivlm_ros.spin import spin_until_shutdown

    _, dets = photo_frame(width, height)
    try:
        from vision_msgs.msg import Detection2DArray

        msg_type, convert = Detection2DArray, conversions.detections_to_vision_msgs
    except ImportError:
        from ivlm_ros.msg import ObjectDetectionArray

        msg_type, convert = ObjectDetectionArray, conversions.detections_to_ivlm_msg
    from sensor_msgs.msg import CameraInfo

    rclpy.init()
    node = rclpy.create_node("bench_detector")
    pub = node.create_publisher(msg_type, "detections", _qos(True, 10))

    def on_info(info: CameraInfo) -> None:
        time.sleep(delay_s)  # inference time
        pub.publish(convert(dets, info.header))

    node.create_subscription(CameraInfo, "camera_info", on_info, _qos(True, 10))
    spin_until_shutdown(node)  # Ctrl-C ends it cleanly


def role_command(role: str, width: int, height: int, **options: object) -> list[str]:
    """The command line that starts `role` ('camera' or 'detector') as its own process."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--role", role, "--size", f"{width}x{height}"]
    for key, value in options.items():
        cmd += [f"--{key.replace('_', '-')}", str(value)]
    return cmd


def _run_case(node: object, contacts: list, width: int, height: int, reliable: bool, seconds: float,
              camera_dds: str, camera_profile: str) -> dict:
    """One case: camera + detector processes for `seconds`; frames sent and received, output rate."""
    env = dict(STOCK_ENV, ROS_DOMAIN_ID=os.environ["ROS_DOMAIN_ID"])
    if camera_dds:
        env["FASTDDS_BUILTIN_TRANSPORTS"] = camera_dds
    if camera_profile:
        env["FASTDDS_DEFAULT_PROFILES_FILE"] = camera_profile
    env["PYTHONPATH"] = str(REPO)
    det = subprocess.Popen(role_command("detector", width, height, delay_s=0.03), env=env)
    cam = subprocess.Popen(role_command("camera", width, height, rate_hz=15.0, seconds=seconds,
                                        reliable=int(reliable)), env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert cam.stdout is not None
        line = cam.stdout.readline()
        assert line.startswith("ready"), line
        received0, n0 = node._stats.received, len(contacts)
        out, _ = cam.communicate(timeout=seconds + 60)
        received, answered = node._stats.received - received0, contacts[n0:]
    finally:
        for proc in (cam, det):  # Ctrl-C (rclpy shuts down cleanly), then kill
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    sent = int(out.split()[-1])
    # output rate over the stream: ContactArrays per second of the camera stamps they answer
    stamps = sorted(m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 for m in answered)
    span = stamps[-1] - stamps[0] if len(stamps) > 1 else 0.0
    return {"sent": sent, "received": received, "ratio": received / max(sent, 1),
            "output_hz": (len(stamps) - 1) / span if span > 0 else 0.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--role", choices=("bench", "camera", "detector"), default="bench")
    parser.add_argument("--size", default="1280x720", help="camera/detector roles: WxH")
    parser.add_argument("--sizes", default=",".join(f"{w}x{h}" for w, h in SIZES))
    parser.add_argument("--seconds", type=float, default=20.0, help="duration of each case")
    parser.add_argument("--writers", default="reliable,besteffort", help="camera writer kinds to run")
    parser.add_argument("--rate-hz", type=float, default=15.0)
    parser.add_argument("--reliable", type=int, default=1)
    parser.add_argument("--wait-s", type=float, default=30.0, help="camera: wait this long for a subscriber")
    parser.add_argument("--delay-s", type=float, default=0.03, help="detector: inference time")
    parser.add_argument("--node-profile", default=str(REPO / "config" / "fastdds_node.xml"),
                        help="FASTDDS_DEFAULT_PROFILES_FILE of the node (what the launch file sets; "
                        "'' = none)")
    parser.add_argument("--node-dds", default="", help="FASTDDS_BUILTIN_TRANSPORTS of the node "
                        "('' = Fast DDS default)")
    parser.add_argument("--camera-dds", default="", help="FASTDDS_BUILTIN_TRANSPORTS of the camera and "
                        "detector processes ('' = Fast DDS default, as a stock driver)")
    parser.add_argument("--camera-profile", default="", help="FASTDDS_DEFAULT_PROFILES_FILE of the camera "
                        "and detector, e.g. config/fastdds_camera_shm.xml ('' = none, as a stock driver)")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    if args.role == "camera":
        return camera(width, height, args.rate_hz, args.seconds, bool(args.reliable), args.wait_s)
    if args.role == "detector":
        return detector(width, height, args.delay_s)

    os.environ.setdefault("ROS_DOMAIN_ID", str(101 + os.getpid() % 100))  # tests use 1..100
    for name, value in zip(DDS_VARIABLES, (args.node_dds, args.node_profile), strict=True):
        if value:
            os.environ[name] = value
        else:
            os.environ.pop(name, None)
    import threading

    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter

    from ivlm_ros.contact_node import ContactNode
    from ivlm_ros.msg import ContactArray

    rclpy.init()
    node = ContactNode(parameter_overrides=[Parameter("publish_markers", value=False)])
    listener = rclpy.create_node("bench_listener")
    contacts: list = []
    listener.create_subscription(ContactArray, "contacts", contacts.append, 10)
    executor = SingleThreadedExecutor()  # as the node's own process spins (rclpy.spin)
    for n in (node, listener):
        executor.add_node(n)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    node.trigger_configure()
    node.trigger_activate()
    results: dict[str, float] = {}
    print(f"node: image_qos {node.p['image_qos']}, "
          f"FASTDDS_BUILTIN_TRANSPORTS={args.node_dds or '(default)'}, "
          f"profile {args.node_profile or '(none)'}; discovery range "
          f"{os.environ.get('ROS_AUTOMATIC_DISCOVERY_RANGE', '(default)')}; "
          f"camera: 15 Hz rgb8, FASTDDS_BUILTIN_TRANSPORTS={args.camera_dds or '(default)'}, "
          f"profile {args.camera_profile or '(none)'}; "
          f"{args.seconds:.0f} s per case")
    for size in args.sizes.split(","):
        w, h = (int(v) for v in size.split("x"))
        for reliable in [kind == "reliable" for kind in args.writers.split(",")]:
            r = _run_case(node, contacts, w, h, reliable, args.seconds, args.camera_dds, args.camera_profile)
            kind = "reliable" if reliable else "besteffort"
            print(f"{size:>10} {kind:>10} writer: {r['received']:4d}/{r['sent']:4d} frames received "
                  f"({r['ratio']:.2f}), ContactArray {r['output_hz']:.2f} Hz", flush=True)
            results[f"received_ratio_{kind}_{size}"] = round(r["ratio"], 3)
            if reliable:
                results[f"output_hz_{size}"] = round(r["output_hz"], 2)
    backend_ms = node._stats.backend_ms
    results["backend_ms_p50"] = round(float(np.median(list(backend_ms))), 1) if backend_ms else None
    executor.shutdown()
    spinner.join(timeout=10)
    node.trigger_shutdown()
    node.destroy_node()
    listener.destroy_node()
    rclpy.try_shutdown()
    print(json.dumps(results))


if __name__ == "__main__":
    main()
