"""Player: publishes images (a file, a folder or a video) with detections and camera info at a set rate.

It lets the whole chain run with no camera and no detector. Every frame gets one stamp, shared by
its Image, CameraInfo and detections (as a camera driver and a detector would). Detections come
from a labels file (the `labels.json` format of the team's photos: per file, pairs of `box_xyxy`
object boxes and `person_box_xyxy`) or from the `detections` parameter (the same boxes every frame).
"""

from __future__ import annotations

import array
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import rclpy
import yaml
from rcl_interfaces.msg import FloatingPointRange, ParameterDescriptor
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header

from ivlm_core.types import CameraIntrinsics, Detection
from ivlm_ros import conversions
from ivlm_ros.spin import spin_until_shutdown

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v"}
BUILTIN = ("skimage:camera", "skimage:astronaut")


@dataclass
class Frame:
    name: str  # file name (labels are looked up by it) or "<video>#<index>"
    rgb: np.ndarray  # (H, W, 3) uint8


def _read(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"cannot read image {path}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def load_stills(source: str) -> list[Frame]:
    """The frames of an image file, a folder of images (sorted by name) or a built-in skimage photo."""
    if source in BUILTIN:
        import skimage.data

        rgb = getattr(skimage.data, source.split(":")[1])()
        return [Frame(source, np.ascontiguousarray(np.dstack([rgb] * 3) if rgb.ndim == 2 else rgb[:, :, :3]))]
    path = Path(source).expanduser()
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise ValueError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in folder {path}")
        return [Frame(p.name, _read(p)) for p in files]
    if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
        return [Frame(path.name, _read(path))]
    raise ValueError(f"player source {source!r} is not an image, a folder of images, a video "
                     f"({', '.join(sorted(VIDEO_SUFFIXES))}) or one of {BUILTIN}")


def video_frames(path: Path) -> Iterator[Frame]:
    """Frames of a video file, decoded one at a time (OpenCV)."""
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise ValueError(f"cannot open video {path}")
    try:
        index = 0
        while True:
            ok, bgr = cap.read()
            if not ok:
                return
            yield Frame(f"{path.name}#{index}", cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            index += 1
    finally:
        cap.release()


def load_labels(path: str) -> dict[str, list[Detection]]:
    """labels.json (list of {file, pairs: [{object, box_xyxy, person_box_xyxy}]}) -> detections per file.

    Each distinct person box becomes a "person" detection (id "person<k>"); each pair's object box an
    object detection (id "object<k>").
    """
    entries = json.loads(Path(path).expanduser().read_text())
    if not isinstance(entries, list):
        raise ValueError(f"labels file {path} must hold a list of {{file, pairs}} entries")
    out = {}
    for entry in entries:
        people: list[tuple[float, ...]] = []
        objects: list[tuple[str, tuple[float, ...]]] = []
        for pair in entry.get("pairs", []):
            if "person_box_xyxy" in pair and tuple(pair["person_box_xyxy"]) not in people:
                people.append(tuple(pair["person_box_xyxy"]))
            if (pair["object"], tuple(pair["box_xyxy"])) not in objects:
                objects.append((pair["object"], tuple(pair["box_xyxy"])))
        dets = [Detection("person", np.array(b), 1.0, id=f"person{k}") for k, b in enumerate(people)]
        dets += [Detection(label, np.array(b), 1.0, id=f"object{k}") for k, (label, b) in enumerate(objects)]
        out[entry["file"]] = dets
    return out


def parse_detections(text: str) -> list[Detection]:
    """'[{label: cup, box: [x0, y0, x1, y1], score: 0.9, id: a}, ...]' (YAML) -> detections."""
    items = yaml.safe_load(text) if text.strip() else []
    if not isinstance(items, list):
        raise ValueError(f"detections must be a YAML list of {{label, box}} mappings, got {text!r}")
    try:
        return [Detection(str(d["label"]), np.asarray(d["box"], np.float64), float(d.get("score", 1.0)),
                          id=str(d.get("id", ""))) for d in items]
    except (KeyError, TypeError) as exc:
        raise ValueError(f"each detection needs 'label' and 'box' [x0, y0, x1, y1]: {exc}") from exc


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
        self._fixed = parse_detections(p["detections"])
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
