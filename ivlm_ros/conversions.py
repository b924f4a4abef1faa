"""Messages ⇄ ivlm_core types: images without cv_bridge, camera info, detections, contact results.

Images are converted with numpy (cv_bridge is used only for encodings numpy does not cover, and
only when it is importable); vision_msgs is imported lazily, so the node runs without it.
"""

from __future__ import annotations

import array
import sys
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
from geometry_msgs.msg import Point, Pose, Vector3
from scipy.spatial.transform import Rotation
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, RegionOfInterest

from ivlm_core.contact_report import ContactReport
from ivlm_core.types import CameraIntrinsics, Detection
from ivlm_ros.msg import Contact, ObjectDetectionArray

# encoding -> (channels, numpy dtype, channel order as converted to RGB)
_ENCODINGS: dict[str, tuple[int, str]] = {
    "rgb8": (3, "u1"),
    "bgr8": (3, "u1"),
    "rgba8": (4, "u1"),
    "bgra8": (4, "u1"),
    "mono8": (1, "u1"),
    "8UC1": (1, "u1"),
    "8UC3": (3, "u1"),  # OpenCV's default channel order: BGR
    "mono16": (1, "u2"),
    "16UC1": (1, "u2"),
}
SUPPORTED_ENCODINGS = tuple(_ENCODINGS)


def image_to_rgb(msg: Image) -> np.ndarray:
    """sensor_msgs/Image -> (H, W, 3) uint8 RGB, honouring `step` (row stride) and `is_bigendian`.

    16-bit mono images are stretched to their own maximum, so 10/12-bit sensors are not black.
    Other encodings go through cv_bridge when it is importable. Bad input raises ValueError.
    """
    h, w, enc = int(msg.height), int(msg.width), msg.encoding
    if h == 0 or w == 0:
        raise ValueError(f"empty image ({w}x{h}, encoding '{enc}')")
    if enc not in _ENCODINGS:
        return _image_via_cv_bridge(msg)
    channels, kind = _ENCODINGS[enc]
    itemsize = int(kind[1])
    row_bytes = w * channels * itemsize
    step = int(msg.step)
    if step < row_bytes:
        raise ValueError(f"image step {step} is smaller than width*channels*bytes = {row_bytes} ('{enc}')")
    data = np.frombuffer(msg.data, np.uint8)
    if data.size < step * h:
        raise ValueError(f"image data has {data.size} bytes, header needs step*height = {step * h} ('{enc}')")
    rows = data[: step * h].reshape(h, step)[:, :row_bytes]
    dtype = np.dtype(kind).newbyteorder(">" if msg.is_bigendian else "<")
    pixels = np.ascontiguousarray(rows).view(dtype).reshape(h, w, channels)
    if itemsize == 2:
        peak = int(pixels.max())
        pixels = (pixels.astype(np.float32) * (255.0 / max(peak, 1))).round().astype(np.uint8)
    if channels == 1:
        return np.repeat(pixels, 3, axis=2)
    if enc in ("bgr8", "bgra8", "8UC3"):
        return np.ascontiguousarray(pixels[:, :, 2::-1])
    return np.ascontiguousarray(pixels[:, :, :3])


def _image_via_cv_bridge(msg: Image) -> np.ndarray:
    try:
        from cv_bridge import CvBridge
    except ImportError:
        raise ValueError(
            f"unsupported image encoding '{msg.encoding}'; supported without cv_bridge: "
            f"{', '.join(SUPPORTED_ENCODINGS)}"
        ) from None
    try:
        return np.ascontiguousarray(CvBridge().imgmsg_to_cv2(msg, desired_encoding="rgb8"))
    except Exception as exc:  # cv_bridge raises its own CvBridgeError
        raise ValueError(f"cv_bridge cannot convert encoding '{msg.encoding}': {exc}") from exc


def compressed_to_rgb(msg: CompressedImage) -> np.ndarray:
    """sensor_msgs/CompressedImage (jpeg/png) -> (H, W, 3) uint8 RGB."""
    buf = np.frombuffer(msg.data, np.uint8)
    bgr = cv2.imdecode(buf, cv2.IMREAD_COLOR) if buf.size else None
    if bgr is None:
        raise ValueError(f"cannot decode compressed image (format '{msg.format}', {buf.size} bytes)")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def rgb_to_image(rgb: np.ndarray, header: Any, encoding: str = "rgb8") -> Image:
    """(H, W, 3) uint8 RGB -> sensor_msgs/Image in `encoding` (rgb8, bgr8, rgba8, bgra8 or mono8)."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected (H, W, 3) uint8 RGB, got {rgb.shape} {rgb.dtype}")
    conversions = {
        "rgb8": lambda a: a,
        "bgr8": lambda a: a[:, :, ::-1],
        "rgba8": lambda a: np.dstack([a, np.full(a.shape[:2], 255, np.uint8)]),
        "bgra8": lambda a: np.dstack([a[:, :, ::-1], np.full(a.shape[:2], 255, np.uint8)]),
        "mono8": lambda a: cv2.cvtColor(a, cv2.COLOR_RGB2GRAY)[:, :, None],
    }
    if encoding not in conversions:
        raise ValueError(f"cannot encode '{encoding}'; choose one of {', '.join(conversions)}")
    pixels = np.ascontiguousarray(conversions[encoding](rgb))
    msg = Image(header=header, height=pixels.shape[0], width=pixels.shape[1], encoding=encoding)
    msg.is_bigendian = sys.byteorder == "big"
    msg.step = pixels.shape[1] * pixels.shape[2]
    msg.data = array.array("B", pixels.tobytes())  # array.array skips rclpy's per-element check
    return msg


def camera_from_info(msg: CameraInfo) -> CameraIntrinsics:
    """sensor_msgs/CameraInfo -> CameraIntrinsics (K only; rectified images are assumed).

    Raises ValueError for NaN/zero intrinsics or an empty size, as CameraIntrinsics checks.
    """
    return CameraIntrinsics(K=np.asarray(msg.k, np.float64).reshape(3, 3), width=int(msg.width),
                            height=int(msg.height))


def camera_to_info(camera: CameraIntrinsics, header: Any) -> CameraInfo:
    """CameraIntrinsics -> sensor_msgs/CameraInfo (plumb_bob, no distortion)."""
    msg = CameraInfo(header=header, width=camera.width, height=camera.height, distortion_model="plumb_bob")
    msg.d = [0.0] * 5
    msg.k = camera.K.reshape(-1).tolist()
    msg.r = np.eye(3).reshape(-1).tolist()
    msg.p = np.hstack([camera.K, np.zeros((3, 1))]).reshape(-1).tolist()
    return msg


def _roi(box: np.ndarray | None) -> RegionOfInterest:
    if box is None:
        return RegionOfInterest()
    x0, y0, x1, y1 = (float(v) for v in box)
    x0, y0 = max(x0, 0.0), max(y0, 0.0)
    return RegionOfInterest(x_offset=round(x0), y_offset=round(y0),
                            width=max(round(x1 - x0), 0), height=max(round(y1 - y0), 0))


def _label(class_id: str, class_names: Sequence[str]) -> str:
    """Detector class id -> label: numeric ids index `class_names` (e.g. COCO) when given."""
    if class_names and class_id.isdigit() and int(class_id) < len(class_names):
        return class_names[int(class_id)]
    return class_id


def detections_from_vision_msgs(msg: Any, class_names: Sequence[str] = ()) -> list[Detection]:
    """vision_msgs/Detection2DArray -> Detections, taking each detection's best hypothesis.

    Boxes are centre + size in pixels; detections without a hypothesis are skipped.
    """
    out = []
    for det in msg.detections:
        if not det.results:
            continue
        best = max(det.results, key=lambda r: r.hypothesis.score)
        cx, cy = det.bbox.center.position.x, det.bbox.center.position.y
        sx, sy = det.bbox.size_x, det.bbox.size_y
        out.append(Detection(label=_label(best.hypothesis.class_id, class_names),
                             box_xyxy=np.array([cx - sx / 2, cy - sy / 2, cx + sx / 2, cy + sy / 2]),
                             score=float(best.hypothesis.score), id=det.id))
    return out


def detections_to_vision_msgs(detections: Sequence[Detection], header: Any) -> Any:
    """Detections -> vision_msgs/Detection2DArray (needs vision_msgs)."""
    from vision_msgs.msg import Detection2D, Detection2DArray, ObjectHypothesisWithPose

    msg = Detection2DArray(header=header)
    for d in detections:
        det = Detection2D(header=header, id=d.id)
        x0, y0, x1, y1 = d.box_xyxy
        det.bbox.center.position.x, det.bbox.center.position.y = (x0 + x1) / 2, (y0 + y1) / 2
        det.bbox.size_x, det.bbox.size_y = x1 - x0, y1 - y0
        hyp = ObjectHypothesisWithPose()
        hyp.hypothesis.class_id, hyp.hypothesis.score = d.label, float(d.score)
        det.results.append(hyp)
        msg.detections.append(det)
    return msg


def detections_from_ivlm_msg(msg: ObjectDetectionArray, class_names: Sequence[str] = ()) -> list[Detection]:
    """ivlm_ros/ObjectDetectionArray (fallback without vision_msgs) -> Detections."""
    return [
        Detection(label=_label(d.label, class_names),
                  box_xyxy=np.array([d.roi.x_offset, d.roi.y_offset, d.roi.x_offset + d.roi.width,
                                     d.roi.y_offset + d.roi.height], np.float64),
                  score=float(d.score), id=d.id)
        for d in msg.detections
    ]


def detections_to_ivlm_msg(detections: Sequence[Detection], header: Any) -> ObjectDetectionArray:
    """Detections -> ivlm_ros/ObjectDetectionArray."""
    from ivlm_ros.msg import ObjectDetection

    items = [ObjectDetection(id=d.id, label=d.label, score=float(d.score), roi=_roi(d.box_xyxy))
             for d in detections]
    return ObjectDetectionArray(header=header, detections=items)


def _points(xyz: np.ndarray) -> list[Point]:
    return [Point(x=float(p[0]), y=float(p[1]), z=float(p[2])) for p in np.asarray(xyz, np.float64)]


def _vectors(xyz: np.ndarray) -> list[Vector3]:
    return [Vector3(x=float(p[0]), y=float(p[1]), z=float(p[2])) for p in np.asarray(xyz, np.float64)]


def pose_from_matrix(T: np.ndarray) -> Pose:
    """(4, 4) rigid transform (rotation may carry scale; it is removed) -> geometry_msgs/Pose."""
    R = np.asarray(T, np.float64)[:3, :3]
    scale = np.cbrt(abs(np.linalg.det(R))) or 1.0
    x, y, z, w = Rotation.from_matrix(R / scale).as_quat()
    pose = Pose()
    pose.position.x, pose.position.y, pose.position.z = (float(v) for v in np.asarray(T)[:3, 3])
    pose.orientation.x, pose.orientation.y, pose.orientation.z, pose.orientation.w = (
        float(x), float(y), float(z), float(w))
    return pose


def points_to_array(points: Sequence[Point] | Sequence[Vector3]) -> np.ndarray:
    """geometry_msgs Points or Vector3s -> (N, 3) float64."""
    return np.array([[p.x, p.y, p.z] for p in points], np.float64).reshape(-1, 3)


def contact_to_msg(report: ContactReport, person_id: int) -> Contact:
    """ContactReport (ivlm_core.contact_report) -> ivlm_ros/Contact, field for field.

    The pose, object contact points and grasp points are filled only when `report.reconstructed`;
    otherwise the pose is the identity, scale and quality 0, and `reconstruction_reason` says why.
    """
    result, obj = report.result, report.result.obj
    msg = Contact(
        person_id=int(person_id), person_roi=_roi(result.person_box),
        object_id=obj.id, object_label=obj.label, object_score=float(obj.score),
        object_roi=_roi(obj.box_xyxy),
        in_contact=report.in_contact, contact_threshold=float(report.config.contact_threshold),
        body_model=result.body_model, body_vertex_count=int(np.size(result.body_probabilities)),
        body_vertex_ids=report.body_vertex_ids.astype(np.uint32).tolist(),
        body_vertex_probabilities=report.body_vertex_probabilities.tolist(),
        body_parts=list(result.body_parts),
        body_part_probabilities=[float(v) for v in result.body_parts.values()],
        object_mesh_id=result.object_mesh_id, object_vertex_count=int(np.size(result.object_probabilities)),
        object_vertex_ids=report.object_vertex_ids.astype(np.uint32).tolist(),
        object_vertex_probabilities=report.object_vertex_probabilities.tolist(),
        grasp_clearance=float(report.config.grasp_clearance_m),
        backend=result.backend, evidence=list(result.evidence),
        body_contact_points=_points(report.body_contact_points),
        body_contact_normals=_vectors(report.body_contact_normals),
        reconstructed=report.reconstructed, reconstruction_reason=report.reconstruction_reason,
    )
    if not report.reconstructed:
        return msg
    msg.object_pose = pose_from_matrix(report.object_pose)
    msg.object_scale = report.object_scale
    msg.reconstruction_quality = report.reconstruction_quality
    msg.object_contact_points = _points(report.object_contact_points)
    msg.object_contact_normals = _vectors(report.object_contact_normals)
    msg.grasp_points, msg.grasp_normals = _points(report.grasp_points), _vectors(report.grasp_normals)
    return msg
