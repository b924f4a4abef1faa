"""Messages ⇄ ivlm_core types: images without cv_bridge, camera info, detections, contact results.

Images are converted with numpy (cv_bridge is used only for encodings numpy does not cover, and
only when it is importable); vision_msgs is imported lazily, so the node runs without it.
"""

from __future__ import annotations

import array
import sys
from collections.abc import Callable, Sequence
from typing import Any

import cv2
import numpy as np
from geometry_msgs.msg import Point, Pose, Vector3
from scipy.spatial.transform import Rotation
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, RegionOfInterest

from ivlm_core.contact_report import ContactReport, PlacedObject
from ivlm_core.image_limits import MAX_IMAGE_PIXELS, check_complete, check_encoded_image, check_image_pixels
from ivlm_core.labels import ParsedDetections, RawDetection, parse_detections
from ivlm_core.types import CameraIntrinsics, Detection
from ivlm_ros.msg import Contact, ObjectDetectionArray

# encoding -> (channels, numpy dtype) of the pixels as sent; how each becomes RGB is in image_to_rgb
_ENCODINGS: dict[str, tuple[int, str]] = {
    "rgb8": (3, "u1"),
    "bgr8": (3, "u1"),
    "rgba8": (4, "u1"),
    "bgra8": (4, "u1"),
    "mono8": (1, "u1"),
    "8UC1": (1, "u1"),
    "8UC3": (3, "u1"),  # OpenCV's default channel order: BGR
    "mono16": (1, "u2"),
    "rgb16": (3, "u2"),
    "bgr16": (3, "u2"),
    "rgba16": (4, "u2"),
    "bgra16": (4, "u2"),
}
# Bayer mosaics (sensor_msgs/image_encodings.hpp names the 2x2 tile from the top-left pixel; OpenCV
# names it from the second row's second and third pixels, hence rggb -> BayerBG; the mapping of
# cv_bridge's cv_bridge.cpp). 8 and 16 bit.
_BAYER = {"bayer_rggb": cv2.COLOR_BayerBG2RGB, "bayer_bggr": cv2.COLOR_BayerRG2RGB,
          "bayer_gbrg": cv2.COLOR_BayerGR2RGB, "bayer_grbg": cv2.COLOR_BayerGB2RGB}
for _pattern in _BAYER:
    _ENCODINGS[f"{_pattern}8"], _ENCODINGS[f"{_pattern}16"] = (1, "u1"), (1, "u2")
# packed 4:2:2 (2 bytes a pixel): ROS 'yuv422' is UYVY, 'yuv422_yuy2' is YUYV
_YUV422 = {"yuv422": cv2.COLOR_YUV2RGB_UYVY, "uyvy": cv2.COLOR_YUV2RGB_UYVY,
           "yuv422_yuy2": cv2.COLOR_YUV2RGB_YUYV, "yuyv": cv2.COLOR_YUV2RGB_YUYV}
_ENCODINGS.update({enc: (2, "u1") for enc in _YUV422})
# semi-planar 4:2:0: a full-size Y plane, then a half-size plane of interleaved V, U (height * 3 / 2 rows)
_NV21 = {"nv21": cv2.COLOR_YUV2RGB_NV21}
_ENCODINGS.update({enc: (1, "u1") for enc in _NV21})
SUPPORTED_ENCODINGS = tuple(_ENCODINGS)
# single-channel 16-bit / float images of distances, not pictures: a depth camera's depth or disparity stream
_DEPTH_LIKE = ("16UC1", "16SC1", "32SC1", "32FC1", "64FC1")


def _rows(msg: Image, n_rows: int, row_bytes: int) -> np.ndarray:
    """The (n_rows, row_bytes) uint8 pixel bytes of `msg`, honouring `step` (row stride)."""
    enc, step = msg.encoding, int(msg.step)
    if step < row_bytes:
        raise ValueError(f"image step {step} is smaller than width*channels*bytes = {row_bytes} ('{enc}')")
    data = np.frombuffer(msg.data, np.uint8)
    if data.size < step * n_rows:
        raise ValueError(f"image data has {data.size} bytes, header needs step*rows = {step * n_rows} "
                         f"('{enc}')")
    return np.ascontiguousarray(data[: step * n_rows].reshape(n_rows, step)[:, :row_bytes])


def _to_8bit(pixels: np.ndarray) -> np.ndarray:
    """16-bit pixels stretched to their own maximum (10/12-bit sensors are not black) -> uint8."""
    if pixels.dtype == np.uint8:
        return pixels
    peak = int(pixels.max())
    return (pixels.astype(np.float32) * (255.0 / max(peak, 1))).round().astype(np.uint8)


def image_to_rgb(msg: Image, max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """sensor_msgs/Image -> (H, W, 3) uint8 RGB, honouring `step` (row stride) and `is_bigendian`.

    Colour, mono, Bayer (demosaiced), YUV 4:2:2 and NV21 encodings; 16-bit images are stretched to
    their own maximum. Depth-like encodings (16UC1, 32FC1, ...) are refused: they hold distances, not
    a picture. Other encodings go through cv_bridge when it is importable. Bad input raises ValueError.
    """
    h, w, enc = int(msg.height), int(msg.width), msg.encoding
    check_image_pixels(w, h, max_pixels, f"encoding '{enc}'")
    if enc in _DEPTH_LIKE:
        raise ValueError(f"image encoding '{enc}' is a depth-like image (one channel of distances), not a "
                         f"camera picture; remap 'image' to the camera's colour or mono stream "
                         f"(e.g. .../color/image_raw)")
    if enc not in _ENCODINGS:
        return _image_via_cv_bridge(msg)
    channels, kind = _ENCODINGS[enc]
    itemsize = int(kind[1])
    if enc in _NV21 or enc in _YUV422:
        if w % 2 or (enc in _NV21 and h % 2):
            even = "width and height" if enc in _NV21 else "width"
            raise ValueError(f"'{enc}' needs an even {even}, got {w}x{h}")
        if enc in _NV21:  # planes one after the other, each row `step` bytes
            return cv2.cvtColor(_rows(msg, h * 3 // 2, w), _NV21[enc])
        return cv2.cvtColor(_rows(msg, h, w * 2).reshape(h, w, 2), _YUV422[enc])
    dtype = np.dtype(kind).newbyteorder(">" if msg.is_bigendian else "<")
    pixels = _rows(msg, h, w * channels * itemsize).view(dtype).reshape(h, w, channels)
    pattern = enc.rstrip("0123456789")  # bayer_rggb8, bayer_rggb16 -> bayer_rggb
    if pattern in _BAYER:  # OpenCV demosaics 8 and 16 bit in native byte order
        return _to_8bit(cv2.cvtColor(pixels[:, :, 0].astype(dtype.newbyteorder("=")), _BAYER[pattern]))
    pixels = _to_8bit(pixels)
    if channels == 1:
        return np.repeat(pixels, 3, axis=2)
    if enc.startswith("bgr") or enc == "8UC3":
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


def compressed_to_rgb(msg: CompressedImage, max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """sensor_msgs/CompressedImage (jpeg, png, ...) -> (H, W, 3) uint8 RGB.

    The size is read from the encoded header first (Pillow parses headers without decoding), so a
    small file that decodes to a huge frame (a decompression bomb) is refused before it takes memory;
    a truncated JPEG or PNG is refused rather than decoded with its missing part grey.
    compressed_depth_image_transport's 'compressedDepth' frames are refused (distances, not a picture).
    """
    buf = np.frombuffer(msg.data, np.uint8)
    what = f"compressed '{msg.format}', {buf.size} bytes"
    if "compresseddepth" in msg.format.replace(" ", "").lower():
        raise ValueError(f"compressed image format '{msg.format}' is a depth image, not a camera picture; "
                         f"subscribe to the camera's colour stream")
    data = buf.tobytes()
    check_encoded_image(data, max_pixels, what)
    check_complete(data, what)
    bgr = cv2.imdecode(buf, cv2.IMREAD_COLOR) if buf.size else None
    if bgr is None:
        raise ValueError(f"cannot decode compressed image ({what})")
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


def camera_from_info(msg: CameraInfo, rectified: bool = False) -> CameraIntrinsics | None:
    """sensor_msgs/CameraInfo -> pinhole CameraIntrinsics of the image it goes with.

    K describes the raw image; for a `rectified` image (image_proc's image_rect) the intrinsics are the
    left 3x3 of P (sensor_msgs/CameraInfo: P holds "the intrinsic (camera) matrix of the processed
    (rectified) image"), or K where a driver leaves P all zeros. None when K is all zeros: what drivers
    of uncalibrated cameras publish ("K = 0 ... indicates an uncalibrated camera"); the caller falls
    back to an assumed field of view. ValueError for other implausible intrinsics or an empty size.

    Binning and region of interest (REP 104): K and P describe the full sensor; an image binned by
    binning_x/y (0 = 1) or cut to a non-zero `roi` gets them shifted by the ROI's offset and divided by
    the binning, and its size is the ROI's (else width x height) over the binning (as image_geometry's
    PinholeCameraModel.fromCameraInfo).
    """
    K = np.asarray(msg.k, np.float64).reshape(3, 3)
    if CameraIntrinsics.is_uncalibrated(K):
        return None
    P = np.asarray(msg.p, np.float64).reshape(3, 4)[:, :3]
    M = (P if rectified and not CameraIntrinsics.is_uncalibrated(P) else K).copy()
    bx, by = max(1, int(msg.binning_x)), max(1, int(msg.binning_y))
    roi = msg.roi
    if roi.x_offset or roi.y_offset or roi.width or roi.height:
        x0, y0, width, height = roi.x_offset, roi.y_offset, roi.width, roi.height
    else:
        x0, y0, width, height = 0, 0, msg.width, msg.height
    M[0, :3] = [M[0, 0] / bx, M[0, 1] / bx, (M[0, 2] - x0) / bx]
    M[1, 1:3] = [M[1, 1] / by, (M[1, 2] - y0) / by]
    return CameraIntrinsics(K=M, width=int(width) // bx, height=int(height) // by)


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


def detections_from_vision_msgs(msg: Any, class_names: Sequence[str] = ()) -> ParsedDetections:
    """vision_msgs/Detection2DArray -> Detections, taking each detection's best hypothesis.

    Boxes are centre + size in pixels; detections without a hypothesis are skipped. Each detection is
    checked on its own (ivlm_core.labels.parse_detections): a bad one is dropped with the reason.
    """
    raw = []
    for det in msg.detections:
        if not det.results:
            continue
        best = max(det.results, key=lambda r: r.hypothesis.score)
        cx, cy = det.bbox.center.position.x, det.bbox.center.position.y
        sx, sy = det.bbox.size_x, det.bbox.size_y
        box = [cx - sx / 2, cy - sy / 2, cx + sx / 2, cy + sy / 2]
        raw.append(RawDetection(best.hypothesis.class_id, box, best.hypothesis.score, det.id))
    return parse_detections(raw, class_names)


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


def detections_from_ivlm_msg(msg: ObjectDetectionArray, class_names: Sequence[str] = ()) -> ParsedDetections:
    """ivlm_ros/ObjectDetectionArray (fallback without vision_msgs) -> Detections, each checked on its own."""
    raw = [RawDetection(d.label, [d.roi.x_offset, d.roi.y_offset, d.roi.x_offset + d.roi.width,
                                  d.roi.y_offset + d.roi.height], d.score, d.id) for d in msg.detections]
    return parse_detections(raw, class_names)


def detection_messages(wanted: str) -> tuple[type, Callable[..., ParsedDetections], Callable[..., Any]]:
    """(message type, message -> ParsedDetections, (detections, header) -> message) for `detections_type`.

    auto: vision_msgs/Detection2DArray when vision_msgs is installed, else ivlm_ros/ObjectDetectionArray.
    """
    if wanted not in ("auto", "vision_msgs", "ivlm"):
        raise ValueError(f"detections_type is {wanted!r}; choose one of: auto, vision_msgs, ivlm")
    if wanted == "vision_msgs" and not vision_msgs_installed():
        raise ValueError("detections_type is 'vision_msgs' but vision_msgs is not installed; install it "
                         "or set detections_type to 'ivlm'")
    if wanted != "ivlm" and vision_msgs_installed():
        from vision_msgs.msg import Detection2DArray

        return Detection2DArray, detections_from_vision_msgs, detections_to_vision_msgs
    return ObjectDetectionArray, detections_from_ivlm_msg, detections_to_ivlm_msg


def detections_to_ivlm_msg(detections: Sequence[Detection], header: Any) -> ObjectDetectionArray:
    """Detections -> ivlm_ros/ObjectDetectionArray."""
    from ivlm_ros.msg import ObjectDetection

    items = [ObjectDetection(id=d.id, label=d.label, score=float(d.score), roi=_roi(d.box_xyxy))
             for d in detections]
    return ObjectDetectionArray(header=header, detections=items)


def vision_msgs_installed() -> bool:
    """Whether vision_msgs (an optional dependency) can be imported."""
    try:
        import vision_msgs.msg  # noqa: F401
    except ImportError:
        return False
    return True


def placed_objects_to_vision_msgs(header: Any, placed: Sequence[PlacedObject]) -> Any:
    """Objects placed in 3D (contact_report.placed_objects) -> vision_msgs/Detection3DArray (needs
    vision_msgs), for consumers of the standard message.

    Per object: `id` = the 2D detection's id, one hypothesis (label, score, pose = Contact.object_pose),
    `bbox` = the placed mesh's box (centre and orientation in the camera frame, size in metres along
    the object's own axes). Header = the image's.
    """
    from vision_msgs.msg import Detection3D, Detection3DArray, ObjectHypothesisWithPose

    msg = Detection3DArray(header=header)
    for obj in placed:
        pose = pose_from_matrix(obj.pose)
        det = Detection3D(header=header, id=obj.detection.id)
        hyp = ObjectHypothesisWithPose()
        hyp.hypothesis.class_id, hyp.hypothesis.score = obj.detection.label, float(obj.detection.score)
        hyp.pose.pose = pose
        det.results.append(hyp)
        (det.bbox.center.position,) = _points(obj.box_centre[None])
        det.bbox.center.orientation = pose.orientation
        (det.bbox.size,) = _vectors(obj.box_size[None])
        msg.detections.append(det)
    return msg


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
