"""Dataclasses shared by every stage: camera, detections, body, contact result.

Conventions: images are (H, W, 3) uint8 RGB; boxes are [x0, y0, x1, y1] in pixels; 3D
quantities are in the camera's optical frame (x right, y down, z forward), in metres.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from ivlm_core.objects.mesh import ObjectMesh


# Distortion models of sensor_msgs/CameraInfo (sensor_msgs/distortion_models.hpp) this code can evaluate
DISTORTION_MODELS = ("plumb_bob", "rational_polynomial", "equidistant")
# Below this shift of the image border (px) a lens is as good as a pinhole for boxes and keypoints
DISTORTION_WARN_PX = 5.0

# Field of view (per image axis) a pinhole camera can plausibly have: below 1 degree is a telescope,
# above 170 degrees a fisheye that no pinhole K describes. Outside it, K is a unit or typing mistake
# (fx = 1e-6 put contact points 80 km away; fx = 1e9 at 1.6e6 m).
FOV_RANGE_DEG = (1.0, 170.0)


@dataclass(frozen=True)
class CameraIntrinsics:
    """Pinhole intrinsics, as in sensor_msgs/CameraInfo's K (no distortion).

    Construction checks that K is a plausible camera (`FOV_RANGE_DEG` per axis, last row [0, 0, 1],
    principal point within the image grown by half its size) and raises ValueError with the reason.
    An all-zero K (uncalibrated drivers, see `is_uncalibrated`) is refused too: callers fall back to
    `from_fov` with an assumed field of view.
    """

    K: np.ndarray  # (3, 3) float64
    width: int
    height: int

    def __post_init__(self) -> None:
        K = np.asarray(self.K, dtype=np.float64)
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"camera size must be positive, got {self.width}x{self.height}")
        if K.shape != (3, 3) or not np.all(np.isfinite(K)):
            raise ValueError(f"camera K must be a finite 3x3 matrix, got {K!r}")
        if self.is_uncalibrated(K):
            raise ValueError(
                "camera K is all zeros (an uncalibrated camera); calibrate it, or use an assumed field "
                "of view (CameraIntrinsics.from_fov, the node's default_fov_deg)"
            )
        if not np.allclose(K[2], [0.0, 0.0, 1.0]):
            raise ValueError(f"camera K's last row must be [0, 0, 1], got {K[2].tolist()}")
        lo, hi = FOV_RANGE_DEG
        for axis, f, size in (("horizontal", K[0, 0], self.width), ("vertical", K[1, 1], self.height)):
            fov = float(np.degrees(2.0 * np.arctan2(0.5 * size, f))) if f > 0 else float("nan")
            if not lo <= fov <= hi:
                raise ValueError(
                    f"camera K gives a {axis} field of view of {fov:.3g} deg (focal length {f:.6g} px for "
                    f"{size} px); a pinhole camera has {lo:g} to {hi:g} deg: check K's units and order"
                )
        cx, cy = K[0, 2], K[1, 2]
        w, h = self.width, self.height
        if not (-0.5 * w <= cx <= 1.5 * w and -0.5 * h <= cy <= 1.5 * h):
            raise ValueError(
                f"camera principal point ({cx:.6g}, {cy:.6g}) px lies far outside the "
                f"{self.width}x{self.height} image: K does not belong to images of this size"
            )
        object.__setattr__(self, "K", K)

    @staticmethod
    def is_uncalibrated(K: np.ndarray) -> bool:
        """True for the all-zero K that drivers of uncalibrated cameras publish (sensor_msgs/CameraInfo)."""
        return not np.any(np.asarray(K, dtype=np.float64))

    @classmethod
    def from_fov(cls, width: int, height: int, fov_deg: float = 60.0) -> CameraIntrinsics:
        """A centred pinhole camera whose horizontal field of view is `fov_deg`.

        Used when no CameraInfo is available; 60 degrees is typical of webcams and RGB-D cameras.
        """
        lo, hi = FOV_RANGE_DEG
        if not lo <= fov_deg <= hi:
            raise ValueError(f"field of view must be {lo:g} to {hi:g} deg, got {fov_deg!r}")
        f = 0.5 * width / np.tan(np.radians(fov_deg) / 2.0)
        K = np.array([[f, 0.0, width / 2.0], [0.0, f, height / 2.0], [0.0, 0.0, 1.0]])
        return cls(K=K, width=width, height=height)

    @property
    def fx(self) -> float:
        return float(self.K[0, 0])

    @property
    def fy(self) -> float:
        return float(self.K[1, 1])

    @property
    def cx(self) -> float:
        return float(self.K[0, 2])

    @property
    def cy(self) -> float:
        return float(self.K[1, 2])

    def project(self, points: np.ndarray, min_depth: float = 1e-6) -> np.ndarray:
        """(..., 3) camera-frame points, metres -> (..., 2) pixel coordinates (u right, v down).

        Depths below `min_depth` are clamped to it (points on or behind the camera plane land far off
        the image instead of dividing by zero); callers that must drop them test z > 0 themselves.
        float32 points give float32 pixels.
        """
        p = np.asarray(points)
        z = np.maximum(p[..., 2], min_depth)
        return np.stack([self.fx * p[..., 0] / z + self.cx, self.fy * p[..., 1] / z + self.cy], axis=-1)

    def backproject(self, pixels: np.ndarray, depth: np.ndarray | float) -> np.ndarray:
        """(..., 2) pixel coordinates and their camera-frame depth z (metres; (...,) or a scalar) ->
        (..., 3) camera-frame points: the inverse of `project` for points in front of the camera."""
        uv = np.asarray(pixels, dtype=np.float64)
        z = np.broadcast_to(np.asarray(depth, dtype=np.float64), uv.shape[:-1])
        x, y = (uv[..., 0] - self.cx) * z / self.fx, (uv[..., 1] - self.cy) * z / self.fy
        return np.stack([x, y, z], axis=-1)

    def check_image_size(self, width: int, height: int, what: str = "image") -> None:
        """Raise ValueError unless `what` (an image, a mask) is as large as the camera's image.

        Intrinsics only hold for the image size they were calibrated at: a frame of another size
        (a resized stream, a CameraInfo of another camera) would put every 3D point in the wrong place.
        """
        if (int(width), int(height)) != (self.width, self.height):
            raise ValueError(
                f"camera is {self.width}x{self.height} but the {what} is {int(width)}x{int(height)}; "
                "pass the CameraInfo of this image stream (or resize to the calibrated size)"
            )

    def distortion_px(self, D: np.ndarray, model: str) -> float:
        """How far (px) lens distortion `D` of `model` (sensor_msgs/CameraInfo) moves the image border
        from where this pinhole K would see it: the largest shift, over the corners and edge midpoints,
        between a ray's pinhole pixel and the pixel the lens model projects it to.

        0 for no distortion (D all zero; an equidistant fisheye is never a pinhole); inf for a model
        not in DISTORTION_MODELS, or coefficients OpenCV cannot use. This code treats images as
        undistorted (pinhole K).
        """
        d = np.asarray(D, np.float64).ravel()
        if model == "equidistant":
            d = np.concatenate([d, np.zeros(4)])[:4]  # fisheye k1..k4; all zero is still a fisheye
        elif not d.size or not np.any(d):
            return 0.0
        if model not in DISTORTION_MODELS or not np.all(np.isfinite(d)):
            return float("inf")
        import cv2

        w, h = self.width, self.height
        border = np.array([[0, 0], [w / 2, 0], [w, 0], [w, h / 2], [w, h], [w / 2, h], [0, h], [0, h / 2]],
                          np.float64)
        rays = self.backproject(border, np.ones(len(border))).reshape(-1, 1, 3)  # z = 1
        zero = np.zeros(3)
        try:  # where the lens puts the rays that a pinhole K puts on the border
            if model == "equidistant":
                seen, _ = cv2.fisheye.projectPoints(rays, zero, zero, self.K, d)
            else:
                seen, _ = cv2.projectPoints(rays, zero, zero, self.K, d)
        except cv2.error:
            return float("inf")
        return float(np.max(np.linalg.norm(seen.reshape(-1, 2) - border, axis=-1)))


@dataclass
class Detection:
    """One detected object or person in the image (a vision_msgs Detection2D)."""

    label: str
    box_xyxy: np.ndarray  # (4,) float, pixels
    score: float = 1.0
    id: str = ""  # the detector's id / track id; "" when it has none
    mask: np.ndarray | None = None  # (H, W) bool, when the detector gives one

    def __post_init__(self) -> None:
        box = np.asarray(self.box_xyxy, dtype=np.float64).reshape(-1)
        if box.shape != (4,) or not np.all(np.isfinite(box)) or box[2] <= box[0] or box[3] <= box[1]:
            raise ValueError(
                f"detection '{self.label}': box must be finite [x0, y0, x1, y1] with x1>x0 and y1>y0, "
                f"got {self.box_xyxy!r}"
            )
        self.box_xyxy = box


@dataclass
class Reconstruction:
    """Object placed in 3D next to the fitted body, in the camera frame."""

    ok: bool  # passed the checks; never publish a pose whose ok is False as if it were good
    object_pose: np.ndarray  # (4, 4) mesh frame -> camera frame
    object_scale: float  # metres per mesh unit
    quality: float  # [0, 1], higher is better
    reason: str = ""  # why ok is False
    object_contact_points: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), np.float32))
    object_contact_normals: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), np.float32))
    # Ids the contact points above belong to (object mesh / body model vertices, probability >= threshold).
    object_contact_vertex_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    body_contact_vertex_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    body_contact_points: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), np.float32))
    body_contact_normals: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), np.float32))
    # Object surface with a clearance from every contact: candidate grasp regions for a robot (handover).
    grasp_points: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), np.float32))
    grasp_normals: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), np.float32))
    # Frames since this pair's pose was last searched from scratch (0: in this frame; video tracking);
    # None when no pose was fitted (nothing to place the object against).
    frames_since_search: int | None = None


@dataclass
class ContactResult:
    """Contact between one person and one object, on the body model's and the object mesh's vertices."""

    person_index: int
    obj: Detection
    body_model: str  # "anny", "smpl", "smplh", "smplx"
    body_probabilities: np.ndarray  # (V,) float32 in [0, 1], one per body-model vertex
    body_parts: dict[str, float]  # named part -> confidence, only parts judged in contact
    object_mesh_id: str  # "builtin:<name>" or "file:<path>"
    object_probabilities: np.ndarray  # (Vo,) float32 in [0, 1], one per object-mesh vertex
    backend: str
    evidence: list[str] = field(default_factory=list)  # which evidence fired, for logs and debugging
    reason: str = ""  # why the contact is empty (no person, unknown label, ...), "" otherwise
    person_box: np.ndarray | None = None  # (4,) pixels
    body_vertices: np.ndarray | None = None  # (V, 3) posed body in the camera frame, metres
    body_normals: np.ndarray | None = None  # (V, 3) unit outward normals of the posed body
    reconstruction: Reconstruction | None = None
    text: str = ""  # the generated answer (interactvlm backend), e.g. the named body parts
    # The mesh `object_probabilities` and the reconstruction refer to (id `object_mesh_id`), None when the
    # backend placed no mesh; consumers (report, markers, CLI) take it from here, never look it up again.
    object_mesh: ObjectMesh | None = None
