"""A planner's process calling the contact node's ~/estimate service once; prints the answer as JSON.

usage: estimate_client.py SERVICE IMAGE_FILE STAMP_SEC [LABEL x0 y0 x1 y1 ID]...
"""

from __future__ import annotations

import json
import sys

import cv2
import numpy as np
import rclpy
from std_msgs.msg import Header

from ivlm_core.types import Detection
from ivlm_ros import conversions
from ivlm_ros.srv import EstimateContact


def main() -> None:
    service, image_file, stamp = sys.argv[1], sys.argv[2], int(sys.argv[3])
    fields = sys.argv[4:]
    detections = [Detection(fields[i], np.array(fields[i + 1:i + 5], float), 0.9, id=fields[i + 5])
                  for i in range(0, len(fields), 6)]
    header = Header(frame_id="camera_optical")
    header.stamp.sec = stamp
    rgb = cv2.cvtColor(cv2.imread(image_file), cv2.COLOR_BGR2RGB)
    request = EstimateContact.Request(image=conversions.rgb_to_image(rgb, header, "bgr8"))
    request.detections = conversions.detections_to_ivlm_msg(detections, header).detections
    rclpy.init()
    node = rclpy.create_node("estimate_client")
    client = node.create_client(EstimateContact, service)
    if not client.wait_for_service(timeout_sec=30.0):
        sys.exit(f"service {service} not available")
    future = client.call_async(request)
    rclpy.spin_until_future_complete(node, future, timeout_sec=120.0)
    if not future.done():
        sys.exit(f"{service} did not answer")
    r = future.result()
    print(json.dumps({
        "success": r.success, "message": r.message, "stamp": r.contacts.header.stamp.sec,
        "frame_id": r.contacts.header.frame_id,
        "contacts": [{"object_id": c.object_id, "object_label": c.object_label, "person_id": c.person_id,
                      "body_vertex_ids": list(c.body_vertex_ids), "reconstructed": c.reconstructed}
                     for c in r.contacts.contacts]}))
    node.destroy_node()
    rclpy.shutdown()


if __name__ == "__main__":
    main()
