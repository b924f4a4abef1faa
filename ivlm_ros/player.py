"""Player: publishes images (a file, a folder or a video) with detections and camera info at a set rate.

It lets the whole chain run with no camera and no detector. Every frame gets one stamp, shared by
its Image, CameraInfo and detections (as a camera driver and a detector would). Detections come
from a labels file (the `labels.json` format of the team's photos: per file, pairs of `box_xyxy`
object boxes and `person_box_xyxy`) or from the `detections` parameter (the same boxes every frame).
"""

from __future__ import annotations

import array
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import rclpy
from rcl_interfaces.msg import FloatingPointRange, ParameterDescriptor
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header

from ivlm_core.frame_sources import VIDEO_SUFFIXES, Frame, detections_from_yaml, load_stills, video_frames
from ivlm_core.labels import load_labels
from ivlm_core.types import CameraIntrinsics
from ivlm_ros import conversions
from ivlm_ros.spin import spin_until_shutdown

PARAMETERS: dict[str, tuple[Any, str]] = {
    "source": ("skimage:camera", "image file, image folder, video file, skimage:camera or skimage:astronaut"),
    "labels": ("", "labels.json with boxes per file name ('' = <folder>/labels.json when it exists)"),
    "detections": ("", "YAML list of {label, box: [x0, y0, x1, y1], score, id} published with every frame"),
    "rate_hz": (2.0, "frames per second"),
    "loop": (True, "start again after the last frame"),
    "encoding": ("rgb8", "Image encoding: rgb8, bgr8, rgba8, bgra8 or mono8"),
    "compressed": (False, "also publish sensor_msgs/CompressedImage (jpeg) on image/compressed"),
    "frame_id": ("camera_optical_frame", "header frame_id of every message"),
    "fov_deg": (60.0, "horizontal field of view of the published CameraInfo"),
    "detections_type": ("auto", "auto (vision_msgs when installed), vision_msgs, or ivlm"),
}


class Player(Node):
    """Publishes `image`, `camera_info` and `detections` (remap them like a camera driver's topics)."""

    def __init__(self, node_name: str = "player", **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        for name, (default, description) in PARAMETERS.items():
            d = ParameterDescriptor(name=name, description=description, read_only=True)
            if name == "rate_hz":
                d.floating_point_range = [FloatingPointRange(from_value=0.01, to_value=1000.0)]
            self.declare_parameter(name, default, d)
        p = {name: self.get_parameter(name).value for name in PARAMETERS}
        self.p = p
        source = Path(p["source"]).expanduser()
        self._video = source if source.suffix.lower() in VIDEO_SUFFIXES and source.is_file() else None
        self._stills = [] if self._video else load_stills(p["source"])
        beside = source / "labels.json"
        labels_file = p["labels"] or (str(beside) if beside.is_file() else "")
        self._labels = load_labels(labels_file) if labels_file else {}
        self._fixed = detections_from_yaml(p["detections"])
        self._frames = self._frame_iter()
        self._image_pub = self.create_publisher(Image, "image", 10)
        self._compressed_pub = self.create_publisher(CompressedImage, "image/compressed", 10) \
            if p["compressed"] else None
        self._info_pub = self.create_publisher(CameraInfo, "camera_info", 10)
        self._det_pub, self._to_msg = self._detections_publisher(p["detections_type"])
        self.published = 0
        self._timer = self.create_timer(1.0 / p["rate_hz"], self.publish_next)
        self.get_logger().info(f"playing {p['source']} at {p['rate_hz']} Hz"
                               + (f", labels {labels_file}" if labels_file else ""))

    def _detections_publisher(self, wanted: str) -> tuple[Any, Any]:
        msg_type, _, to_msg = conversions.detection_messages(wanted)
        return self.create_publisher(msg_type, "detections", 10), to_msg

    def _frame_iter(self) -> Iterator[Frame]:
        while True:
            yield from (video_frames(self._video) if self._video else self._stills)
            if not self.p["loop"]:
                return

    def publish_next(self) -> bool:
        """Publish the next frame (image, camera info, detections with one stamp); False when done."""
        frame = next(self._frames, None)
        if frame is None:
            self._timer.cancel()
            self.get_logger().info(f"done: {self.published} frame(s)")
            return False
        header = Header(stamp=self.get_clock().now().to_msg(), frame_id=self.p["frame_id"])
        h, w = frame.rgb.shape[:2]
        self._info_pub.publish(conversions.camera_to_info(CameraIntrinsics.from_fov(w, h, self.p["fov_deg"]),
                                                          header))
        self._image_pub.publish(conversions.rgb_to_image(frame.rgb, header, self.p["encoding"]))
        if self._compressed_pub is not None:
            jpeg = cv2.imencode(".jpg", cv2.cvtColor(frame.rgb, cv2.COLOR_RGB2BGR))[1]
            msg = CompressedImage(header=header, format="jpeg")
            msg.data = array.array("B", jpeg.tobytes())
            self._compressed_pub.publish(msg)
        detections = self._labels.get(frame.name.split("#")[0], self._fixed)
        self._det_pub.publish(self._to_msg(detections, header))
        self.published += 1
        return True


def main(args: list[str] | None = None) -> None:
    """`ros2 run ivlm_ros player --ros-args -p source:=<file|folder|video>`."""
    rclpy.init(args=args)
    spin_until_shutdown(Player())
