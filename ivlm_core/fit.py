"""Body fit stage: place the body model in the camera frame, in metres, from mediapipe landmarks.

The fit is rigid: the body's canonical pose is scaled to the person's metric torso size, rotated
onto mediapipe's metric 3D torso (shoulders and hips), and translated so that the metric landmarks
project onto the 2D landmarks through the camera intrinsics (a linear least-squares PnP with known
orientation). Limbs keep the canonical pose; they are not articulated yet. On video the previous
frame's fit is blended in (warm start), which steadies the placement.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import trimesh
from scipy.spatial.transform import Rotation, Slerp

from ivlm_core import detect as lm
from ivlm_core.body import BodyModel
from ivlm_core.detect import PersonPose
from ivlm_core.types import CameraIntrinsics

# body-model keypoint name -> mediapipe landmark index
MEDIAPIPE_OF_KEYPOINT = {
    "nose": lm.NOSE,
    "left_eye": 2,
    "right_eye": 5,
    "left_ear": lm.LEFT_EAR,
    "right_ear": lm.RIGHT_EAR,
    "left_shoulder": lm.LEFT_SHOULDER,
    "right_shoulder": lm.RIGHT_SHOULDER,
    "left_elbow": lm.LEFT_ELBOW,
    "right_elbow": lm.RIGHT_ELBOW,
    "left_wrist": lm.LEFT_WRIST,
    "right_wrist": lm.RIGHT_WRIST,
    "left_hip": lm.LEFT_HIP,
    "right_hip": lm.RIGHT_HIP,
    "left_knee": lm.LEFT_KNEE,
    "right_knee": lm.RIGHT_KNEE,
    "left_ankle": lm.LEFT_ANKLE,
    "right_ankle": lm.RIGHT_ANKLE,
    "left_big_toe": lm.LEFT_FOOT_INDEX,
    "right_big_toe": lm.RIGHT_FOOT_INDEX,
    "left_heel": lm.LEFT_HEEL,
    "right_heel": lm.RIGHT_HEEL,
}
_TORSO = ("left_shoulder", "right_shoulder", "left_hip", "right_hip")
_WARM_START_BLEND = 0.5  # weight of the new frame when blending with the previous fit


@dataclass
class BodyFit:
    """The body placed in the camera frame.

    vertices/normals: (V, 3) float32, metres / unit; rotation: (3, 3) body frame -> camera frame;
    translation: (3,) metres; scale: body-model size factor (1 = the model's default adult).
    """

    vertices: np.ndarray
    normals: np.ndarray
    rotation: np.ndarray
    translation: np.ndarray
    scale: float
    landmarks_origin: np.ndarray  # (3,) camera-frame position of mediapipe's metric landmark origin, metres
    reprojection_px: float  # RMS 2D error of the metric landmarks after translation, pixels


class BodyFitter:
    """Holds the body model's canonical mesh (built once) and fits it to one person's landmarks."""

    def __init__(self, model: BodyModel) -> None:
        self.model = model
        with torch.no_grad():
            out = model.forward()
        self.rest_vertices = out.vertices[0].numpy().astype(np.float32)
        self.rest_keypoints = {
            name: out.keypoints[0, model.keypoint_index(name)].numpy().astype(np.float64)
            for name in MEDIAPIPE_OF_KEYPOINT
        }
        mesh = trimesh.Trimesh(self.rest_vertices, model.faces, process=False)
        self.rest_normals = np.asarray(mesh.vertex_normals, np.float32)

    def fit(self, pose: PersonPose, camera: CameraIntrinsics, previous: BodyFit | None = None) -> BodyFit:
        """Rigid fit of the canonical body to `pose`; `previous` (this person's last fit) warm-starts it."""
        src = np.stack([self.rest_keypoints[n] for n in _TORSO])
        dst = np.stack([pose.world[MEDIAPIPE_OF_KEYPOINT[n]] for n in _TORSO]).astype(np.float64)
        src_c, dst_c = src - src.mean(0), dst - dst.mean(0)
        scale = float(np.clip(np.linalg.norm(dst_c) / max(np.linalg.norm(src_c), 1e-6), 0.5, 1.3))
        rot, _ = Rotation.align_vectors(dst_c, src_c)
        R = rot.as_matrix()
        # body frame -> mediapipe metric frame (hip-centred, camera-aligned)
        world_offset = dst.mean(0) - scale * R @ src.mean(0)
        t, rms = _translation_pnp(pose, camera)
        translation = world_offset + t
        if previous is not None:
            rots = Rotation.from_matrix(np.stack([previous.rotation, R]))
            R = Slerp([0.0, 1.0], rots)(_WARM_START_BLEND).as_matrix()
            translation = (1 - _WARM_START_BLEND) * previous.translation + _WARM_START_BLEND * translation
            scale = (1 - _WARM_START_BLEND) * previous.scale + _WARM_START_BLEND * scale
        verts = (scale * self.rest_vertices.astype(np.float64)) @ R.T + translation
        normals = self.rest_normals.astype(np.float64) @ R.T
        return BodyFit(
            vertices=verts.astype(np.float32),
            normals=normals.astype(np.float32),
            rotation=R,
            translation=translation,
            scale=scale,
            landmarks_origin=t,
            reprojection_px=rms,
        )


def _translation_pnp(pose: PersonPose, camera: CameraIntrinsics) -> tuple[np.ndarray, float]:
    """Translation t (3,) metres putting mediapipe's metric landmarks W + t on their 2D landmarks.

    For each visible landmark: fx (Wx + tx) - (u - cx)(Wz + tz) = 0 and fy (Wy + ty) - (v - cy)(Wz + tz) = 0,
    linear in t. Falls back to a 1.7 m person filling the box when the solve is degenerate.
    """
    vis = pose.visibility >= 0.5
    if np.count_nonzero(vis) < 4:
        vis = np.ones_like(vis)
    W = pose.world[vis].astype(np.float64)
    u = pose.keypoints[vis, 0].astype(np.float64) - camera.cx
    v = pose.keypoints[vis, 1].astype(np.float64) - camera.cy
    n = len(W)
    A = np.zeros((2 * n, 3))
    b = np.zeros(2 * n)
    A[:n, 0], A[:n, 2], b[:n] = camera.fx, -u, u * W[:, 2] - camera.fx * W[:, 0]
    A[n:, 1], A[n:, 2], b[n:] = camera.fy, -v, v * W[:, 2] - camera.fy * W[:, 1]
    t, *_ = np.linalg.lstsq(A, b, rcond=None)
    if not np.all(np.isfinite(t)) or t[2] < 0.2:
        box = pose.box_xyxy
        z = camera.fy * 1.7 / max(1.0, box[3] - box[1])
        centre = 0.5 * (box[:2] + box[2:])
        t = np.array([(centre[0] - camera.cx) * z / camera.fx, (centre[1] - camera.cy) * z / camera.fy, z])
    P = W + t
    proj = np.stack([camera.fx * P[:, 0] / P[:, 2], camera.fy * P[:, 1] / P[:, 2]], axis=1)
    rms = float(np.sqrt(np.mean(np.sum((proj - np.stack([u, v], axis=1)) ** 2, axis=1))))
    return t, rms
