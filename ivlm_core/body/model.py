"""One small interface for every parametric body model (anny, SMPL, SMPL-H, SMPL-X).

Body frame (all models): metres, y up, the body faces +z, the person's own left is +x, and the
origin is the bounding-box centre of the canonical ("Vitruvian") body with the default shape.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import roma
import torch

from ivlm_core.body.parts import PART_NAMES

# Named 3D keypoints every model provides, in this order: COCO-WholeBody body + feet, then MediaPipe
# Pose's hand points. MediaPipe landmarks map onto them by name (its "foot_index" is the big toe;
# "pinky"/"index" are the first knuckles, "thumb" the thumb's last joint).
COCO_KEYPOINT_NAMES: tuple[str, ...] = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
    "left_big_toe", "right_big_toe", "left_small_toe", "right_small_toe", "left_heel", "right_heel",
)
HAND_KEYPOINT_NAMES: tuple[str, ...] = (
    "left_pinky", "right_pinky", "left_index", "right_index", "left_thumb", "right_thumb",
)
KEYPOINT_NAMES: tuple[str, ...] = COCO_KEYPOINT_NAMES + HAND_KEYPOINT_NAMES


@dataclass(frozen=True, eq=False)
class BodyOutput:
    """A posed body in the body frame (or wherever global_orient/transl put it)."""

    vertices: torch.Tensor  # (B, V, 3) float32, metres
    joints: torch.Tensor  # (B, J, 3) float32, metres, BodyModel.joint_names order
    keypoints: torch.Tensor  # (B, K, 3) float32, metres, KEYPOINT_NAMES order


@dataclass(frozen=True, eq=False)
class BodyModel:
    """A parametric body: read-only numpy rest data (shared process-wide), a differentiable torch `forward`.

    Pose convention (all models): `pose` is (B, J, 3) axis-angle, one rotation per joint relative to
    its parent, in the body frame's axes; zeros give the model's own rest pose (T-pose for SMPL,
    A-pose for anny), `canonical_pose` gives `canonical_vertices`.
    """

    name: str  # "anny" | "smpl" | "smplh" | "smplx"
    faces: np.ndarray  # (F, 3) int64
    canonical_vertices: np.ndarray  # (V, 3) float32 metres, Vitruvian pose, y up, facing +z, bbox centre at 0
    part_labels: np.ndarray  # (V,) int16 index into PART_NAMES
    joint_names: tuple[str, ...]  # (J,) the model's own joint / bone names
    canonical_pose: np.ndarray  # (J, 3) float32 axis-angle of the Vitruvian render pose
    shape_names: tuple[str, ...]  # (S,) anny phenotypes, or "beta0".."beta9" for the SMPL family
    default_shape: np.ndarray  # (S,) float32: anny 0.5 (average phenotype), SMPL zeros (mean shape)
    skinner: torch.nn.Module = field(repr=False)  # (rotations (B,J,3,3), shape (B,S)) -> (verts, joints)
    keypoint_weights: torch.Tensor = field(repr=False)  # (K, V + J) float32, rows sum to 1
    device: str = "cpu"
    # (3,) metres: where the body-frame origin lies in the model's own native frame (the SMPL family's
    # root-joint frame, which InteractVLM renders in); zeros for anny. native = canonical + native_origin.
    native_origin: np.ndarray = field(default_factory=lambda: np.zeros(3, np.float32))

    @property
    def native_vertices(self) -> np.ndarray:
        """(V, 3) float32 canonical (Vitruvian, default shape) vertices in the model's native frame."""
        return (self.canonical_vertices + self.native_origin).astype(np.float32)

    @property
    def num_vertices(self) -> int:
        return int(self.canonical_vertices.shape[0])

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    def part_vertex_ids(self, name: str) -> np.ndarray:
        """Vertex ids (sorted int64) of the named part; ValueError for an unknown name."""
        if name not in PART_NAMES:
            raise ValueError(f"unknown body part {name!r}; expected one of {PART_NAMES}")
        return np.flatnonzero(self.part_labels == PART_NAMES.index(name))

    def joint_index(self, name: str) -> int:
        """Index of a joint in `joint_names`; ValueError for an unknown name."""
        if name not in self.joint_names:
            raise ValueError(f"{self.name} has no joint {name!r}; it has {self.joint_names}")
        return self.joint_names.index(name)

    def keypoint_index(self, name: str) -> int:
        """Index of a keypoint in KEYPOINT_NAMES; ValueError for an unknown name."""
        if name not in KEYPOINT_NAMES:
            raise ValueError(f"unknown keypoint {name!r}; expected one of {KEYPOINT_NAMES}")
        return KEYPOINT_NAMES.index(name)

    def forward(
        self,
        pose: torch.Tensor | np.ndarray | None = None,
        shape: torch.Tensor | np.ndarray | None = None,
        global_orient: torch.Tensor | np.ndarray | None = None,
        transl: torch.Tensor | np.ndarray | None = None,
    ) -> BodyOutput:
        """Posed vertices, joints and keypoints, differentiable in every input.

        pose: (B, J, 3) or (J, 3) axis-angle (see class doc); None = `canonical_pose`.
        shape: (B, S) or (S,); None = `default_shape`.
        global_orient: (B, 3) axis-angle about the body-frame origin, applied after posing; None = none.
        transl: (B, 3) metres, added last; None = zero.
        Batch sizes must agree or be 1.
        """
        pose_t = self._batched(self.canonical_pose if pose is None else pose, (self.num_joints, 3), "pose")
        num_shape = len(self.shape_names)
        shape_t = self._batched(self.default_shape if shape is None else shape, (num_shape,), "shape")
        batches = (pose_t.shape[0], shape_t.shape[0])
        if 1 not in batches and batches[0] != batches[1]:
            raise ValueError(f"pose batch {batches[0]} and shape batch {batches[1]} must agree or be 1")
        batch = max(batches)
        rotations = roma.rotvec_to_rotmat(pose_t)
        vertices, joints = self.skinner(rotations.expand(batch, -1, -1, -1), shape_t.expand(batch, -1))
        keypoints = torch.einsum("kn,bnd->bkd", self.keypoint_weights, torch.cat([vertices, joints], dim=1))
        if global_orient is not None:
            rotation = roma.rotvec_to_rotmat(self._batched(global_orient, (3,), "global_orient"))
            rotate = rotation.transpose(-1, -2)
            vertices, joints, keypoints = vertices @ rotate, joints @ rotate, keypoints @ rotate
        if transl is not None:
            offset = self._batched(transl, (3,), "transl")[:, None]
            vertices, joints, keypoints = vertices + offset, joints + offset, keypoints + offset
        return BodyOutput(vertices=vertices, joints=joints, keypoints=keypoints)

    def _batched(
        self, value: torch.Tensor | np.ndarray, item_shape: tuple[int, ...], what: str
    ) -> torch.Tensor:
        """`value` as a float32 tensor of shape (B, *item_shape) on this model's device."""
        if isinstance(value, np.ndarray):
            value = np.array(value, dtype=np.float32)  # a writable copy: the model's own arrays are read-only
        tensor = torch.as_tensor(value, dtype=torch.float32, device=self.device)
        if tensor.shape == item_shape:
            tensor = tensor[None]
        if tensor.dim() != len(item_shape) + 1 or tuple(tensor.shape[1:]) != item_shape:
            raise ValueError(
                f"{self.name} {what} must have shape (B, {', '.join(map(str, item_shape))}) "
                f"or ({', '.join(map(str, item_shape))}), got {tuple(tensor.shape)}"
            )
        return tensor
