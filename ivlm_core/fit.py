"""Body fit stage: place the body model in the camera frame, in metres, from mediapipe landmarks.

The body's rest pose is scaled to the person's metric torso size and rotated onto mediapipe's metric
3D torso (shoulders and hips). Each limb is then articulated link by link (upper arm, forearm, hand;
thigh, calf, foot): the smallest rotation turns the link onto the direction of its mediapipe 3D
landmarks and carries the rest of the chain with it; the body model's own skinning poses the mesh
(one forward pass, no optimisation; twist about a bone and the spine's bend are not observed).
Finally the body is translated so that its keypoints project onto the 2D landmarks through the
camera intrinsics (a linear least-squares PnP with known orientation). Shape is not fitted: the
model's average shape, scaled. On video the previous frame's fit is blended in (warm start),
which steadies the mesh.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import scipy.sparse
import torch
from scipy.spatial.transform import Rotation

from ivlm_core import detect as lm
from ivlm_core.body import KEYPOINT_NAMES, BodyModel
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
    "left_index": lm.LEFT_INDEX,
    "right_index": lm.RIGHT_INDEX,
}
# kinematic chains: keypoints along the chain (body-model names, mediapipe-matched), and the bone
# each link turns, per model family (anny: MakeHuman rig; SMPL family: smplx joint names)
_CHAIN_KEYPOINTS = {
    "arm": ("shoulder", "elbow", "wrist", "index"),
    "leg": ("hip", "knee", "ankle", "big_toe"),
}
_CHAIN_BONES = {
    "anny": {
        "arm": ("upperarm01.{S}", "lowerarm01.{S}", "wrist.{S}"),
        "leg": ("upperleg01.{S}", "lowerleg01.{S}", "foot.{S}"),
    },
    "smpl": {
        "arm": ("{side}_shoulder", "{side}_elbow", "{side}_wrist"),
        "leg": ("{side}_hip", "{side}_knee", "{side}_ankle"),
    },
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
    keypoints: dict[str, np.ndarray]  # posed body keypoints (3,) in the camera frame, metres, by name
    reprojection_px: float  # RMS 2D error of the metric landmarks after translation, pixels


class BodyFitter:
    """Holds the body model's rest pose (computed once) and fits it to one person's landmarks."""

    def __init__(self, model: BodyModel) -> None:
        self.model = model
        self._rest_pose = np.zeros((model.num_joints, 3), np.float32)
        with torch.no_grad():
            out = model.forward(pose=self._rest_pose)
        self.rest_vertices = out.vertices[0].cpu().numpy().astype(np.float32)
        self.rest_keypoints = {
            name: out.keypoints[0, model.keypoint_index(name)].cpu().numpy().astype(np.float64)
            for name in MEDIAPIPE_OF_KEYPOINT
        }
        self.rest_keypoints_all = {
            name: out.keypoints[0, i].cpu().numpy().astype(np.float64)
            for i, name in enumerate(KEYPOINT_NAMES)
        }
        self._keypoint_ids = [model.keypoint_index(n) for n in MEDIAPIPE_OF_KEYPOINT]
        family = "anny" if model.name == "anny" else "smpl"
        self._chains = []  # (keypoint names, joint indices) per limb
        for side, s in (("left", "L"), ("right", "R")):
            for limb, bones in _CHAIN_BONES[family].items():
                names = tuple(f"{side}_{k}" for k in _CHAIN_KEYPOINTS[limb])
                joints = tuple(model.joint_index(b.format(S=s, side=side)) for b in bones)
                self._chains.append((names, joints))
        # (V, F) incidence: vertex normal = normalised sum of the area-weighted normals of its faces
        faces = model.faces
        rows = faces.reshape(-1)
        cols = np.repeat(np.arange(len(faces)), 3)
        self._vertex_faces = scipy.sparse.csr_matrix(
            (np.ones(len(rows)), (rows, cols)), shape=(model.num_vertices, len(faces))
        )
        self.rest_normals = self._normals(self.rest_vertices.astype(np.float64)).astype(np.float32)

    def fit(self, pose: PersonPose, camera: CameraIntrinsics, previous: BodyFit | None = None) -> BodyFit:
        """Fit the body to `pose`; `previous` (this person's last fit, on video) warm-starts it."""
        src = np.stack([self.rest_keypoints[n] for n in _TORSO])
        dst = np.stack([pose.world[MEDIAPIPE_OF_KEYPOINT[n]] for n in _TORSO]).astype(np.float64)
        src_c, dst_c = src - src.mean(0), dst - dst.mean(0)
        scale = float(np.clip(np.linalg.norm(dst_c) / max(np.linalg.norm(src_c), 1e-6), 0.5, 1.3))
        rot, _ = Rotation.align_vectors(dst_c, src_c)
        R = rot.as_matrix()  # body frame -> mediapipe's metric frame (camera-aligned)
        with torch.no_grad(), _single_thread():
            out = self.model.forward(pose=self._limb_pose(pose, R))
        body_verts = out.vertices[0].cpu().numpy().astype(np.float64)
        body_kp = out.keypoints[0, self._keypoint_ids].cpu().numpy().astype(np.float64)
        names = list(MEDIAPIPE_OF_KEYPOINT)
        oriented = scale * body_kp @ R.T
        landmark_ids = [MEDIAPIPE_OF_KEYPOINT[n] for n in names]
        translation, rms = _translation_pnp(
            oriented, pose.keypoints[landmark_ids], pose.visibility[landmark_ids], pose.box_xyxy, camera
        )
        verts = (scale * body_verts) @ R.T + translation
        if previous is not None:
            a = _WARM_START_BLEND
            translation = (1 - a) * previous.translation + a * translation
            scale = (1 - a) * previous.scale + a * scale
            verts = (1 - a) * previous.vertices + a * verts
        return BodyFit(
            vertices=verts.astype(np.float32),
            normals=self._normals(verts).astype(np.float32),
            rotation=R,
            translation=translation,
            scale=scale,
            keypoints={n: oriented[i] + translation for i, n in enumerate(names)},
            reprojection_px=rms,
        )

    def _limb_pose(self, pose: PersonPose, R: np.ndarray) -> np.ndarray:
        """(J, 3) axis-angle pose: the rest pose with each limb link turned onto its landmark direction.

        R: (3, 3) body frame -> mediapipe frame (from the torso), brings the landmark directions into
        the body frame. A joint's world rotation is its ancestors' product times its own, so a world
        turn T of a joint whose parent has world rotation P is the local rotation P^T T P.
        """
        rotations = np.tile(np.eye(3), (self.model.num_joints, 1, 1))
        for names, joints in self._chains:
            rest = [self.rest_keypoints[k] for k in names]
            seen = [R.T @ pose.world[MEDIAPIPE_OF_KEYPOINT[k]].astype(np.float64) for k in names]
            world = np.eye(3)  # world rotation of the chain so far (the torso stays in its rest pose)
            for i, joint in enumerate(joints):
                turn = _minimal_rotation(world @ (rest[i + 1] - rest[i]), seen[i + 1] - seen[i])
                rotations[joint] = world.T @ turn @ world
                world = turn @ world
        return Rotation.from_matrix(rotations).as_rotvec().astype(np.float32)

    def _normals(self, verts: np.ndarray) -> np.ndarray:
        """(V, 3) unit vertex normals of the mesh `verts` (V, 3)."""
        tri = verts[self.model.faces]
        face_normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        normals = self._vertex_faces @ face_normals
        return normals / (np.linalg.norm(normals, axis=1, keepdims=True) + 1e-12)


@contextlib.contextmanager
def _single_thread() -> Iterator[None]:
    """Run torch on one thread: one small forward pass per frame is several times faster (and far steadier)
    on a shared CPU than with threads that contend with the pose model and other processes."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _minimal_rotation(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(3, 3) smallest rotation taking direction `source` onto `target` (identity if either is ~0)."""
    ns, nt = np.linalg.norm(source), np.linalg.norm(target)
    if ns < 1e-9 or nt < 1e-9:
        return np.eye(3)
    a, b = source / ns, target / nt
    axis = np.cross(a, b)
    angle = np.arctan2(np.linalg.norm(axis), np.dot(a, b))
    return Rotation.from_rotvec(axis / (np.linalg.norm(axis) + 1e-12) * angle).as_matrix()


def _translation_pnp(
    points: np.ndarray, pixels: np.ndarray, visibility: np.ndarray, box: np.ndarray, camera: CameraIntrinsics
) -> tuple[np.ndarray, float]:
    """Translation t (3,) metres that puts the oriented body points (N, 3) on their pixels (N, 2).

    For each visible point P: fx (Px + tx) - (u - cx)(Pz + tz) = 0 and fy (Py + ty) - (v - cy)(Pz + tz) = 0,
    linear in t. Falls back to a 1.7 m person filling the box when the solve is degenerate.
    Returns t and the RMS reprojection error of the visible points, pixels.
    """
    vis = visibility >= 0.5
    if np.count_nonzero(vis) < 4:
        vis = np.ones_like(vis)
    P = points[vis].astype(np.float64)
    u = pixels[vis, 0].astype(np.float64) - camera.cx
    v = pixels[vis, 1].astype(np.float64) - camera.cy
    n = len(P)
    A = np.zeros((2 * n, 3))
    b = np.zeros(2 * n)
    A[:n, 0], A[:n, 2], b[:n] = camera.fx, -u, u * P[:, 2] - camera.fx * P[:, 0]
    A[n:, 1], A[n:, 2], b[n:] = camera.fy, -v, v * P[:, 2] - camera.fy * P[:, 1]
    t, *_ = np.linalg.lstsq(A, b, rcond=None)
    if not np.all(np.isfinite(t)) or t[2] + P[:, 2].min() < 0.2:
        z = camera.fy * 1.7 / max(1.0, box[3] - box[1])
        centre = 0.5 * (box[:2] + box[2:])
        t = np.array([(centre[0] - camera.cx) * z / camera.fx, (centre[1] - camera.cy) * z / camera.fy, z])
    Q = P + t
    proj = np.stack([camera.fx * Q[:, 0] / Q[:, 2], camera.fy * Q[:, 1] / Q[:, 2]], axis=1)
    rms = float(np.sqrt(np.mean(np.sum((proj - np.stack([u, v], axis=1)) ** 2, axis=1))))
    return t, rms
