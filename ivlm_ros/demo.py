"""The whole ROS 2 chain on a real photo, in one process, with no camera, detector or launch tools.

    python -m ivlm_ros.demo [--source skimage:camera] [--detections '[{label: camera, box: [...]}]']

Starts the contact node (configured and activated, CPU default backend), the player publishing
the photo with its detections and camera info, and a subscriber; prints the first ContactArray
a planner would receive, then exits. `ros2 launch ivlm_ros contact.launch.py` runs the same
nodes as separate processes.
"""

from __future__ import annotations

import argparse
import threading
import time

import rclpy
from rclpy.executors import MultiThreadedExecutor
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.parameter import Parameter

from ivlm_ros.contact_node import ContactNode
from ivlm_ros.msg import ContactArray
from ivlm_ros.player import Player

CAMERA_PHOTO = ("skimage:camera", "[{label: camera, box: [245, 135, 335, 245], id: camcorder}]")


def _summary(msg: ContactArray) -> str:
    lines = [f"ContactArray stamp={msg.header.stamp.sec}.{msg.header.stamp.nanosec:09d} "
             f"frame_id={msg.header.frame_id!r}, {len(msg.contacts)} person-object pair(s)"]
    for c in msg.contacts:
        scored = zip(c.body_parts, c.body_part_probabilities, strict=True)
        parts = ", ".join(f"{p} {q:.2f}" for p, q in scored)
        lines.append(f"  person {c.person_id} - {c.object_label} ({c.object_id}): "
                     f"{'in contact' if c.in_contact else 'no contact'}: {parts or '-'}")
        lines.append(f"    {len(c.body_vertex_ids)}/{c.body_vertex_count} {c.body_model} vertices, "
                     f"{len(c.object_vertex_ids)}/{c.object_vertex_count} vertices of {c.object_mesh_id}")
        if c.reconstructed:
            p = c.object_pose.position
            lines.append(f"    object at ({p.x:.2f}, {p.y:.2f}, {p.z:.2f}) m in {msg.header.frame_id}, "
                         f"quality {c.reconstruction_quality:.2f}")
        lines.append(f"    evidence: {'; '.join(c.evidence)}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default=CAMERA_PHOTO[0], help="player source (image, folder, video)")
    parser.add_argument("--detections", default=CAMERA_PHOTO[1], help="YAML list of {label, box}")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for contacts")
    args = parser.parse_args(argv)

    rclpy.init()
    received: list[ContactArray] = []
    got = threading.Event()
    node = ContactNode(parameter_overrides=[Parameter("reconstruct", value=True)])
    player = Player(parameter_overrides=[Parameter("source", value=args.source),
                                         Parameter("detections", value=args.detections),
                                         Parameter("rate_hz", value=1.0)])
    listener = rclpy.create_node("ivlm_demo_listener")
    listener.create_subscription(ContactArray, "contacts", lambda m: (received.append(m), got.set()), 10)
    executor = MultiThreadedExecutor(num_threads=4)
    for n in (node, player, listener):
        executor.add_node(n)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    active = False
    try:
        print("[demo] configuring the contact node (loads the backend and body model)")
        t0 = time.monotonic()
        if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
            print("[demo] configure failed: see the node's log above")
            return 1
        active = node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        print(f"[demo] node active after {time.monotonic() - t0:.1f} s; playing {args.source}")
        if not got.wait(args.timeout):
            print(f"[demo] no ContactArray within {args.timeout:.0f} s")
            return 1
        print(_summary(received[0]))
        return 0
    finally:
        if active:
            node.trigger_deactivate()
        executor.shutdown()
        for n in (node, player, listener):
            n.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    raise SystemExit(main())
