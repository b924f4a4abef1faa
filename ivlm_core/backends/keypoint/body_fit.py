"""Body fit stage: place the body model in the camera frame, in metres, from mediapipe landmarks.

Two steps, both cheap enough for video:

1. Analytic initialisation. The body's rest pose is scaled to the person's metric torso size and
   rotated onto mediapipe's metric 3D torso (shoulders and hips); each limb is articulated link by
   link (upper arm, forearm, hand; thigh, calf, foot) by the smallest rotation onto the direction of
   its mediapipe 3D landmarks; a linear least-squares PnP with that orientation gives the translation.
2. Refinement: Levenberg-Marquardt on 45 parameters (body rotation, translation, one rotation per
   limb link and one for the head at the neck). It minimises the 2D reprojection error of the body
   keypoints to mediapipe's 2D landmarks through the camera K (visibility-weighted, robust Cauchy
   loss), with weak priors: 3D link, head and torso directions near mediapipe's metric landmarks,
   links within plausible bend angles and near their initial rotation (twist about a bone is not
   observed), and the body depth implied by the person's metric size (`_size_depth`). Residuals are
   evaluated on a keypoint skeleton of the body model (each keypoint a calibrated blend of the torso
   and the links that meet at it, pivoting at the model's own joints; ~1 cm from the skinned model),
   so an LM step costs about a millisecond; the body model's own skinning then poses the mesh once.

Shape is not fitted: the model's average shape, scaled. On video the previous frame's fit is the
starting point (fewer steps) when it explains the landmarks better than the analytic start; temporal
smoothing is left to mediapipe's tracking filter on the landmarks, so the mesh does not lag the image.
The spine does not bend: a rounded back shows up as a torso tilt.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from ivlm_core.backends.keypoint import landmarks as lm
from ivlm_core.backends.keypoint.landmarks import PersonPose
from ivlm_core.body import KEYPOINT_NAMES, BodyModel
from ivlm_core.geometry import vertex_normals
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
_NECK_BONE = {"anny": "neck01", "smpl": "neck"}
_FACE = ("nose", "left_eye", "right_eye", "left_ear", "right_ear")
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
# body segments whose metric length and pixel length give the person's depth (see _size_depth)
_SIZE_SEGMENTS = (
    ("left_shoulder", "right_shoulder"),
    ("left_shoulder", "left_hip"),
    ("right_shoulder", "right_hip"),
    ("left_hip", "left_knee"),
    ("right_hip", "right_knee"),
    ("left_knee", "left_ankle"),
    ("right_knee", "right_ankle"),
    ("left_shoulder", "left_elbow"),
    ("right_shoulder", "right_elbow"),
)
_NUM_LINKS = 13  # 3 links x (2 arms + 2 legs), then the head (HEAD_LINK)
_HEAD_LINK = 12  # turns at the neck and carries the face keypoints
_NUM_PARAMS = 6 + 3 * _NUM_LINKS  # body rotation, translation, link rotations (axis-angle deltas)
_CALIBRATION_POSES = 16  # random limb poses that calibrate the keypoint skeleton
_STEPS_COLD, _STEPS_WARM = 10, 4  # LM steps for a single image / a video frame after the first
_ROBUST_PX = 0.05  # Cauchy scale of the reprojection error, as a fraction of the body's pixel length
_W_DIRECTION = 0.05  # weight of mediapipe's 3D link / torso directions (unit vectors)
_TORSO_DIRECTION_SHARE = 0.25  # mediapipe's overall torso orientation is its least reliable 3D output
_W_LINK_DELTA = 0.02  # pull of each link towards its initial rotation (radians)
_W_DEPTH = 0.3  # weight of log(torso depth / depth from the person's size)
_W_JOINT_LIMIT = 1.0  # weight of link bends beyond _JOINT_LIMIT_RAD (radians past the limit)
_JOINT_LIMIT_RAD = np.radians([160.0] * 12 + [50.0])  # per link: limbs, then the neck


@dataclass
class BodyFit:
    """The body placed in the camera frame.

    vertices/normals: (V, 3) float32, metres / unit; rotation: (3, 3) body frame -> camera frame;
    translation: (3,) metres; scale: body-model size factor (1 = the model's default adult).
    link_rotations: (13, 3, 3) world rotations of the limb links in the body frame (the warm start
    of the next video frame); None for fits made elsewhere.
    """

    vertices: np.ndarray
    normals: np.ndarray
    rotation: np.ndarray
    translation: np.ndarray
    scale: float
    keypoints: dict[str, np.ndarray]  # posed body keypoints (3,) in the camera frame, metres, by name
    reprojection_px: float  # RMS 2D error of the visible keypoints (visibility >= 0.5), pixels
    link_rotations: np.ndarray | None = None


@dataclass
class _Problem:
    """One person's fitting targets, in the arrays the residuals need."""

    pixels: np.ndarray  # (N, 2) mediapipe 2D landmarks of the fitted keypoints, pixels
    weights: np.ndarray  # (N,) visibility in [0, 1]
    directions: np.ndarray  # (13 + 2, 3) unit mediapipe 3D directions: links, head (body frame), torso up /
    # across (camera frame)
    direction_weights: np.ndarray  # (13 + 2,)
    depth: float  # torso depth implied by the person's metric size, metres
    body_px: float  # the body's pixel length (PersonPose.scale_px)
    camera: CameraIntrinsics


class BodyFitter:
    """Holds the body model's rest pose and keypoint skeleton (computed once) and fits it to a person."""

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
        rest_joints = out.joints[0].cpu().numpy().astype(np.float64)
        self._names = list(MEDIAPIPE_OF_KEYPOINT)
        self._landmark_ids = np.array([MEDIAPIPE_OF_KEYPOINT[n] for n in self._names])
        self._keypoint_ids = [model.keypoint_index(n) for n in self._names]
        family = "anny" if model.name == "anny" else "smpl"
        self._chains = []  # (keypoint names, joint indices) per limb
        for side, s in (("left", "L"), ("right", "R")):
            for limb, bones in _CHAIN_BONES[family].items():
                names = tuple(f"{side}_{k}" for k in _CHAIN_KEYPOINTS[limb])
                joints = tuple(model.joint_index(b.format(S=s, side=side)) for b in bones)
                self._chains.append((names, joints))
        self._neck = model.joint_index(_NECK_BONE[family])
        self._build_skeleton(rest_joints)
        self.rest_normals = vertex_normals(self.rest_vertices, model.faces).astype(np.float32)

    def _build_skeleton(self, rest_joints: np.ndarray) -> None:
        """Keypoint skeleton: each fitted keypoint is a blend of where the torso and its limb links put it.

        Link l (chain c = l // 3, position i = l % 3) pivots at its bone's rest joint. A keypoint at a
        joint (shoulder, elbow, ...) is skinned to both links that meet there, so its blend weights over
        those segments are calibrated once, by least squares, against the body model's own keypoints
        in a few random limb poses.
        """
        self._pivots = np.zeros((_NUM_LINKS, 3))  # rest joint of each link
        self._link_vectors = np.zeros((_NUM_LINKS, 3))  # rest keypoint-to-keypoint vector of each link
        candidates = [[0] for _ in self._names]  # segments (0: torso, 1 + l: link l) moving each keypoint
        for c, (names, joints) in enumerate(self._chains):
            for i, joint in enumerate(joints):
                link = 3 * c + i
                self._pivots[link] = rest_joints[joint]
                self._link_vectors[link] = self.rest_keypoints[names[i + 1]] - self.rest_keypoints[names[i]]
            ends = [names[0]], [names[1]], [names[2]], [names[3]]
            if names[-1].endswith("big_toe"):
                ends[3].append(names[-1].replace("big_toe", "heel"))
            for i, group in enumerate(ends):
                for name in group:
                    segments = [3 * c + j + 1 for j in (i - 1, i) if 0 <= j < 3]
                    candidates[self._names.index(name)] = ([0] if i == 0 else []) + segments
        self._pivots[_HEAD_LINK] = rest_joints[self._neck]
        self._link_vectors[_HEAD_LINK] = _head_vector(self.rest_keypoints)
        for name in _FACE:
            candidates[self._names.index(name)] = [1 + _HEAD_LINK]
        self._rest_points = np.stack([self.rest_keypoints[n] for n in self._names])
        self._locals = self._rest_points[None] - self._pivots[:, None]  # (13, N, 3) keypoints from pivots
        self._torso_ids = [self._names.index(n) for n in _TORSO]
        torso = self._rest_points[self._torso_ids]
        self._torso_axes = np.stack(  # (2, 3): up (hips to shoulders) and across (right to left shoulder)
            [0.5 * (torso[0] + torso[1] - torso[2] - torso[3]), torso[0] - torso[1]]
        )
        self._blend = np.zeros((1 + _NUM_LINKS, len(self._names)))
        for k, segments in enumerate(candidates):
            self._blend[segments[-1], k] = 1.0
        rng = np.random.default_rng(0)
        links = _rotvec(rng.normal(scale=0.6, size=(_CALIBRATION_POSES, _NUM_LINKS, 3)))
        poses = np.stack([self._pose_of_links(one) for one in links])
        with torch.no_grad():
            out = self.model.forward(pose=poses)
        truth = out.keypoints[:, self._keypoint_ids].cpu().numpy().astype(np.float64)
        positions = self._segment_positions(links)  # (B, 13, N, 3)
        for k, segments in enumerate(candidates):
            if len(segments) < 2:
                continue
            a, b = positions[:, segments[0], k], positions[:, segments[1], k]
            d = (a - b).reshape(-1)  # truth = b + w (a - b): least squares in w
            w = float(d @ (truth[:, k] - b).reshape(-1) / max(d @ d, 1e-12))
            self._blend[segments, k] = [w, 1.0 - w]

    def _segment_positions(self, links: np.ndarray) -> np.ndarray:
        """(B, 13, N, 3) where each segment (torso, 12 links) would put every keypoint, body frame, unscaled.

        links: (B, 13, 3, 3) world rotations of the links in the body frame. The four limb chains are
        posed together, link by link from the torso out.
        """
        positions = np.empty((len(links), 1 + _NUM_LINKS, len(self._names), 3))
        positions[:, 0] = self._rest_points
        first = 3 * np.arange(len(self._chains))
        pivot = self._pivots[first]  # (C, 3), then (B, C, 3) once posed
        for i in range(3):
            ids = first + i
            rot_t = links[:, ids].swapaxes(-1, -2)  # (B, C, 3, 3)
            positions[:, 1 + ids] = pivot[..., None, :] + self._locals[ids] @ rot_t
            if i < 2:
                step = (self._pivots[ids + 1] - self._pivots[ids])[:, None, :]  # (C, 1, 3)
                pivot = pivot + (step @ rot_t)[..., 0, :]
        neck = self._pivots[_HEAD_LINK]
        positions[:, 1 + _HEAD_LINK] = neck + self._locals[_HEAD_LINK] @ links[:, _HEAD_LINK].swapaxes(-1, -2)
        return positions

    def _skeleton(self, links: np.ndarray) -> np.ndarray:
        """(B, N, 3) posed keypoints in the body frame, unscaled, for link world rotations (B, 13, 3, 3)."""
        positions = self._segment_positions(links)  # (B, S, N, 3)
        return np.einsum("sn,bsnd->bnd", self._blend, positions)

    def fit(self, pose: PersonPose, camera: CameraIntrinsics, previous: BodyFit | None = None) -> BodyFit:
        """Fit the body to `pose`; `previous` (this person's last fit, on video) warm-starts it."""
        src = np.stack([self.rest_keypoints[n] for n in _TORSO])
        dst = np.stack([pose.world[MEDIAPIPE_OF_KEYPOINT[n]] for n in _TORSO]).astype(np.float64)
        src_c, dst_c = src - src.mean(0), dst - dst.mean(0)
        scale = float(np.clip(np.linalg.norm(dst_c) / max(np.linalg.norm(src_c), 1e-6), 0.5, 1.3))
        R = Rotation.align_vectors(dst_c, src_c)[0].as_matrix()  # body -> mediapipe's metric frame
        problem = self._problem(pose, camera, scale, R)
        links = self._limb_links(pose, R)
        points = scale * self._skeleton(links[None])[0] @ R.T
        translation = _translation_pnp(points, problem.pixels, problem.weights, pose.box_xyxy, camera)
        steps = _STEPS_COLD
        if previous is not None and previous.link_rotations is not None:
            # the previous fit is the better start unless the person moved or turned a lot
            start = (previous.rotation, previous.link_rotations, previous.translation)
            if self._cost(problem, scale, *start) < self._cost(problem, scale, R, links, translation):
                R, links, translation = start
                steps = _STEPS_WARM
        R, links, translation = self._refine(problem, scale, R, links, translation, steps)
        with torch.no_grad(), _single_thread():
            out = self.model.forward(pose=self._pose_of_links(links))
        body_verts = out.vertices[0].cpu().numpy().astype(np.float64)
        body_kp = out.keypoints[0, self._keypoint_ids].cpu().numpy().astype(np.float64)
        keypoints = scale * body_kp @ R.T + translation
        verts = (scale * body_verts) @ R.T + translation
        return BodyFit(
            vertices=verts.astype(np.float32),
            normals=vertex_normals(verts, self.model.faces).astype(np.float32),
            rotation=R,
            translation=translation,
            scale=scale,
            keypoints={n: keypoints[i] for i, n in enumerate(self._names)},
            reprojection_px=_rms_px(keypoints, problem.pixels, problem.weights, camera),
            link_rotations=links,
        )

    def _problem(self, pose: PersonPose, camera: CameraIntrinsics, scale: float, R: np.ndarray) -> _Problem:
        """The fitting targets of one person: 2D landmarks, 3D directions, depth from metric size.

        R: (3, 3) body frame -> mediapipe's metric frame, from its torso. The link and head directions
        are taken relative to mediapipe's own torso (in the body frame), so an error in mediapipe's
        overall orientation (a torso leaning towards the camera) does not bend the limbs with it.
        """
        world = pose.world.astype(np.float64)
        vis = pose.visibility.astype(np.float64)
        directions, weights = [], []
        for names, _ in self._chains:
            ids = [MEDIAPIPE_OF_KEYPOINT[n] for n in names]
            for a, b in itertools.pairwise(ids):
                directions.append(world[b] - world[a])
                weights.append(min(vis[a], vis[b]))
        directions.append(_head_vector({n: world[MEDIAPIPE_OF_KEYPOINT[n]] for n in MEDIAPIPE_OF_KEYPOINT}))
        weights.append(min(vis[lm.LEFT_EAR], vis[lm.RIGHT_EAR]))
        directions = [d @ R for d in directions]  # R^T d: into the body frame
        ls, rs, lh, rh = (MEDIAPIPE_OF_KEYPOINT[n] for n in _TORSO)
        directions.append(0.5 * (world[ls] + world[rs] - world[lh] - world[rh]))  # torso up
        directions.append(world[ls] - world[rs])  # across the shoulders, to the person's left
        weights += [_TORSO_DIRECTION_SHARE] * 2
        directions = np.stack(directions)
        directions /= np.linalg.norm(directions, axis=1, keepdims=True) + 1e-9
        pixels = pose.keypoints[self._landmark_ids].astype(np.float64)
        return _Problem(
            pixels=pixels,
            weights=vis[self._landmark_ids],
            directions=directions,
            direction_weights=np.asarray(weights),
            depth=self._size_depth(pose, camera, scale),
            body_px=pose.scale_px,
            camera=camera,
        )

    def _size_depth(self, pose: PersonPose, camera: CameraIntrinsics, scale: float) -> float:
        """Depth (metres) at which the person's metric size matches the landmarks' pixel size.

        A segment of metric length L seen at depth z spans at most f L / z pixels (less when it points
        at the camera), so f L / l bounds z from above for each segment; the second tightest bound of
        the clearly visible segments (one outlier tolerated) estimates the depth.
        """
        f = 0.5 * (camera.fx + camera.fy)
        bounds = []
        for a, b in _SIZE_SEGMENTS:
            ia, ib = MEDIAPIPE_OF_KEYPOINT[a], MEDIAPIPE_OF_KEYPOINT[b]
            if min(pose.visibility[ia], pose.visibility[ib]) < 0.5:
                continue
            length_px = float(np.linalg.norm(pose.keypoints[ia] - pose.keypoints[ib]))
            length_m = scale * float(np.linalg.norm(self.rest_keypoints[a] - self.rest_keypoints[b]))
            if length_px > 2.0:
                bounds.append(f * length_m / length_px)
        if not bounds:
            return f * scale * 1.7 / max(1.0, float(pose.box_xyxy[3] - pose.box_xyxy[1]))
        bounds.sort()
        return bounds[1] if len(bounds) > 2 else bounds[0]

    def _residuals(
        self,
        x: np.ndarray,
        problem: _Problem,
        scale: float,
        R0: np.ndarray,
        links0: np.ndarray,
        t0: np.ndarray,
        robust: np.ndarray,
    ) -> np.ndarray:
        """(B, M) weighted residuals for parameter vectors x (B, 45); `robust` (N,) IRLS weights."""
        batch = len(x)
        R = _rotvec(x[:, :3]) @ R0  # (B, 3, 3) body -> camera
        R_t = R.swapaxes(-1, -2)
        links = _rotvec(x[:, 6:].reshape(batch, _NUM_LINKS, 3)) @ links0
        cam = scale * self._skeleton(links) @ R_t + (t0 + x[:, 3:6])[:, None]
        uv = problem.camera.project(cam, min_depth=1e-3)
        w = np.sqrt(problem.weights * robust)[None, :, None]
        reproj = (w * (uv - problem.pixels) / problem.body_px).reshape(batch, -1)

        link_dirs = (links @ self._link_vectors[:, :, None])[..., 0]  # body frame
        model_dirs = np.concatenate([link_dirs, self._torso_axes @ R_t], axis=1)
        model_dirs /= np.linalg.norm(model_dirs, axis=-1, keepdims=True) + 1e-9
        dw = (_W_DIRECTION * np.sqrt(problem.direction_weights))[None, :, None]
        direction = (dw * (model_dirs - problem.directions)).reshape(batch, -1)

        torso_z = cam[:, self._torso_ids, 2].mean(1)
        depth = _W_DEPTH * np.log(np.maximum(torso_z, 1e-3) / problem.depth)[:, None]

        link_delta = _W_LINK_DELTA * x[:, 6:]
        parents = np.concatenate([np.broadcast_to(np.eye(3), (batch, 1, 3, 3)), links[:, :-1]], axis=1)
        parents[:, ::3] = np.eye(3)  # the first link of each chain, and the head, hang off the torso
        relative = parents.swapaxes(-1, -2) @ links
        cos = np.clip(0.5 * (np.trace(relative, axis1=-2, axis2=-1) - 1.0), -1.0, 1.0)
        limit = _W_JOINT_LIMIT * np.maximum(0.0, np.arccos(cos) - _JOINT_LIMIT_RAD)
        parts = [reproj, direction, depth, link_delta, limit]
        return np.concatenate(parts, axis=1)

    def _refine(
        self,
        problem: _Problem,
        scale: float,
        R0: np.ndarray,
        links0: np.ndarray,
        t0: np.ndarray,
        steps: int,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Levenberg-Marquardt with IRLS robust weights; forward-difference Jacobian, one batched call."""
        x = np.zeros(_NUM_PARAMS)
        eps = 1e-5
        probe = np.vstack([x, x + eps * np.eye(_NUM_PARAMS)])
        damping = 1e-3
        robust = np.ones(len(self._names))
        for _ in range(steps):
            robust = self._robust_weights(x, problem, scale, R0, links0, t0)
            res = self._residuals(probe - probe[0] + x, problem, scale, R0, links0, t0, robust)
            r, J = res[0], (res[1:] - res[0]).T / eps
            cost = float(r @ r)
            JtJ, Jtr = J.T @ J, J.T @ r
            for _ in range(4):
                A = JtJ + damping * (np.diag(np.diag(JtJ)) + 1e-6 * np.eye(_NUM_PARAMS))
                candidate = x - np.linalg.solve(A, Jtr)
                r_new = self._residuals(candidate[None], problem, scale, R0, links0, t0, robust)[0]
                if float(r_new @ r_new) < cost:
                    x, damping = candidate, max(damping / 3.0, 1e-7)
                    break
                damping *= 4.0
        R = _rotvec(x[:3]) @ R0
        links = _rotvec(x[6:].reshape(_NUM_LINKS, 3)) @ links0
        return R, links, t0 + x[3:6]

    def _cost(
        self, problem: _Problem, scale: float, R: np.ndarray, links: np.ndarray, translation: np.ndarray
    ) -> float:
        """Sum of squared residuals (robust weights 1) of the placement R, links, translation."""
        ones = np.ones(len(self._names))
        r = self._residuals(np.zeros((1, _NUM_PARAMS)), problem, scale, R, links, translation, ones)[0]
        return float(r @ r)

    def _robust_weights(
        self, x: np.ndarray, problem: _Problem, scale: float, R0: np.ndarray, links0: np.ndarray,
        t0: np.ndarray,
    ) -> np.ndarray:
        """(N,) Cauchy IRLS weights of the keypoints' current reprojection errors."""
        ones = np.ones(len(self._names))
        r = self._residuals(x[None], problem, scale, R0, links0, t0, ones)[0]
        err = r[: 2 * len(ones)].reshape(-1, 2)
        err = np.linalg.norm(err, axis=1) / np.sqrt(np.maximum(problem.weights, 1e-6))
        return 1.0 / (1.0 + (err / _ROBUST_PX) ** 2)

    def _limb_links(self, pose: PersonPose, R: np.ndarray) -> np.ndarray:
        """(13, 3, 3) world rotations (body frame) of the limb links turned onto mediapipe's 3D directions.

        R: (3, 3) body frame -> mediapipe frame (from the torso), brings the landmark directions into
        the body frame. Each link's world rotation is the smallest turn of its rest direction (as
        carried by the links before it) onto the landmark direction, composed with those links'.
        """
        links = np.tile(np.eye(3), (_NUM_LINKS, 1, 1))  # the head starts in line with the torso
        for c, (names, _) in enumerate(self._chains):
            rest = [self.rest_keypoints[k] for k in names]
            seen = [R.T @ pose.world[MEDIAPIPE_OF_KEYPOINT[k]].astype(np.float64) for k in names]
            world = np.eye(3)  # world rotation of the chain so far (the torso stays in its rest pose)
            for i in range(3):
                turn = _minimal_rotation(world @ (rest[i + 1] - rest[i]), seen[i + 1] - seen[i])
                world = turn @ world
                links[3 * c + i] = world
        return links

    def _pose_of_links(self, links: np.ndarray) -> np.ndarray:
        """(J, 3) axis-angle pose of the link world rotations (13, 3, 3).

        A joint's world rotation is its ancestors' product times its own, so a link whose parent
        link has world rotation P and which itself has world rotation W has local rotation P^T W.
        """
        rotations = np.tile(np.eye(3), (self.model.num_joints, 1, 1))
        for c, (_, joints) in enumerate(self._chains):
            parent = np.eye(3)
            for i, joint in enumerate(joints):
                rotations[joint] = parent.T @ links[3 * c + i]
                parent = links[3 * c + i]
        rotations[self._neck] = links[_HEAD_LINK]
        return Rotation.from_matrix(rotations).as_rotvec().astype(np.float32)

def _head_vector(points: dict[str, np.ndarray]) -> np.ndarray:
    """(3,) from the shoulders' midpoint to the ears' midpoint: the direction the neck link turns."""
    ears = 0.5 * (points["left_ear"] + points["right_ear"])
    return ears - 0.5 * (points["left_shoulder"] + points["right_shoulder"])


def _rotvec(v: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotation matrices of axis-angle vectors v (..., 3)."""
    return Rotation.from_rotvec(v.reshape(-1, 3)).as_matrix().reshape(*v.shape[:-1], 3, 3)


def _rms_px(
    points: np.ndarray, pixels: np.ndarray, visibility: np.ndarray, camera: CameraIntrinsics
) -> float:
    """RMS distance (pixels) between the projections of camera-frame points (N, 3) and pixels (N, 2), over
    the points with visibility >= 0.5 (all points when fewer than 4 are)."""
    vis = visibility >= 0.5
    if np.count_nonzero(vis) < 4:
        vis = np.ones_like(vis)
    uv = camera.project(points, min_depth=1e-3)
    return float(np.sqrt(np.mean(np.sum((uv - pixels)[vis] ** 2, axis=1))))

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
) -> np.ndarray:
    """Translation t (3,) metres that puts the oriented body points (N, 3) on their pixels (N, 2).

    For each visible point P: fx (Px + tx) - (u - cx)(Pz + tz) = 0 and fy (Py + ty) - (v - cy)(Pz + tz) = 0,
    linear in t. Falls back to a 1.7 m person filling the box when the solve is degenerate.
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
        t = camera.backproject(0.5 * (box[:2] + box[2:]), z)
    return t
