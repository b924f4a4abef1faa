"""The anny body model (NAVER, Apache-2.0, shipped) behind the BodyModel interface.

anny's native frame is z up, facing -y, person's left +x (Blender/MakeHuman); the body frame is y up,
facing +z, so body = C @ anny with C a -90 degree rotation about x. Poses use anny's "local-ref"
parameterization: each bone's delta rotation is in world-aligned axes, which after conjugation by C is
exactly the SMPL convention (rotation relative to the parent, in body-frame axes).
"""

from __future__ import annotations

import numpy as np
import roma
import torch
from scipy.spatial.transform import Rotation

from ivlm_core.body.disk_cache import anny_cache_dir, build_lock
from ivlm_core.body.model import COCO_KEYPOINT_NAMES, KEYPOINT_NAMES, BodyModel
from ivlm_core.body.parts import part_labels_from_skinning

# anny -> body frame: x stays, anny z (up) becomes y, anny -y (front) becomes z.
ANNY_TO_BODY = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])

HIP_SPREAD_DEG = 30.0  # InteractVLM's Vitruvian pose: each hip rotated by this about the forward axis

# Arm chains straightened to the T-pose: (bone, bone whose head ends the segment), outward along +-x.
_ARM_SEGMENTS = (("upperarm01", "lowerarm01"), ("lowerarm01", "wrist"), ("wrist", "finger3-1"))

# MediaPipe hand keypoints as bone heads (MakeHuman: finger1 thumb ... finger5 pinky; -1 proximal, -3 distal).
_HAND_KEYPOINT_BONES = {"pinky": "finger5-1", "index": "finger2-1", "thumb": "finger1-3"}


class AnnySkinner(torch.nn.Module):
    """(rotations (B, J, 3, 3) body-frame axes, phenotypes (B, 6) in [0, 1]) -> vertices (B, V, 3), joints
    (B, J, 3), in metres in the body frame; joints are the posed bone heads.

    The rest shape of the default phenotypes is computed once: posing it skips anny's blend shapes
    and rest-bone solve, about 40% of a forward pass on CPU.
    """

    def __init__(
        self, anny_model: torch.nn.Module, default_phenotypes: torch.Tensor, origin: np.ndarray
    ) -> None:
        super().__init__()
        self.anny = anny_model
        self.register_buffer("to_body", torch.as_tensor(ANNY_TO_BODY, dtype=torch.float32))
        self.register_buffer("origin", torch.as_tensor(origin, dtype=torch.float32))
        self.register_buffer("default_phenotypes", default_phenotypes)
        with torch.no_grad():
            rest = anny_model(phenotype_kwargs=default_phenotypes)
        self.register_buffer("default_rest_vertices", rest["rest_vertices"])
        self.register_buffer("default_rest_bone_poses", rest["rest_bone_poses"])

    def forward(self, rotations: torch.Tensor, phenotypes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        to_body = self.to_body
        anny_rotations = to_body.T @ rotations @ to_body
        deltas = torch.cat(
            [
                torch.cat([anny_rotations, torch.zeros_like(anny_rotations[..., :1])], dim=-1),
                torch.eye(4, dtype=rotations.dtype, device=rotations.device)[3].expand(
                    *rotations.shape[:-2], 1, 4
                ),
            ],
            dim=-2,
        )
        is_default = torch.equal(phenotypes, self.default_phenotypes.expand_as(phenotypes))
        if is_default and not phenotypes.requires_grad:
            transforms, bone_poses = self.anny.get_bone_transforms(
                deltas, self.default_rest_bone_poses, pose_parameterization="local-ref"
            )
            anny_vertices = self.anny.get_skinned_vertices(
                self.default_rest_vertices.expand(len(deltas), -1, -1), transforms
            )
        else:
            output = self.anny(
                pose_parameters=deltas, phenotype_kwargs=phenotypes, pose_parameterization="local-ref"
            )
            anny_vertices, bone_poses = output["vertices"], output["bone_poses"]
        vertices = anny_vertices @ to_body.T - self.origin
        joints = bone_poses[..., :3, 3] @ to_body.T - self.origin
        return vertices, joints


def _build_anny(device: str) -> torch.nn.Module:
    """anny's default full-body model (104 bones, 13,718 vertices), float32, dense LBS (fastest on CPU)."""
    import anny
    import anny.paths

    directory = anny_cache_dir()
    anny.paths.set_anny_cache_path(directory)
    with build_lock(directory):
        model = anny.Anny(skinning_method="lbs")
    return model.to(device=device, dtype=torch.float32)


def vitruvian_pose(skinner: AnnySkinner, bone_names: list[str], parents: list[int],
                   phenotypes: torch.Tensor) -> np.ndarray:
    """(J, 3) axis-angle pose: arms straight out along +-x (T-pose), hips spread by +-HIP_SPREAD_DEG.

    Bones are set one at a time from the root down, because in this parameterization a bone's
    world rotation is the product of its ancestors' rotations and its own.
    """
    index = {name: i for i, name in enumerate(bone_names)}
    rotations = np.tile(np.eye(3), (len(bone_names), 1, 1))

    def world_rotation(bone: int) -> np.ndarray:
        chain = np.eye(3)
        while bone >= 0:
            chain = rotations[bone] @ chain
            bone = parents[bone]
        return chain

    def posed_joints() -> np.ndarray:
        with torch.no_grad():
            rotation_t = torch.as_tensor(rotations, dtype=torch.float32, device=phenotypes.device)
            _, joints = skinner(rotation_t[None], phenotypes)
        return joints[0].cpu().numpy().astype(np.float64)

    for side, sign in (("L", 1.0), ("R", -1.0)):
        for bone, end in _ARM_SEGMENTS:
            joints = posed_joints()
            b, e = index[f"{bone}.{side}"], index[f"{end}.{side}"]
            parent_world = world_rotation(parents[b])
            # the smallest rotation taking the segment onto the outward x axis
            turn = Rotation.align_vectors([[sign, 0.0, 0.0]], [joints[e] - joints[b]])[0].as_matrix()
            rotations[b] = parent_world.T @ turn @ parent_world @ rotations[b]
        hip = index[f"upperleg01.{side}"]
        spread = Rotation.from_rotvec([0.0, 0.0, sign * np.radians(HIP_SPREAD_DEG)]).as_matrix()
        rotations[hip] = spread @ rotations[hip]
    return Rotation.from_matrix(rotations).as_rotvec().astype(np.float32)


def load_anny(device: str = "cpu") -> BodyModel:
    """The anny body model, built from (or into) the on-disk cache; see cache.py."""
    from anny import KeypointsRegressor

    anny_model = _build_anny(device)
    bone_names = list(anny_model.bone_labels)
    parents = [int(p) for p in anny_model.bone_parents]
    phenotypes = torch.full((1, len(anny_model.phenotype_labels)), 0.5, dtype=torch.float32, device=device)
    skinner = AnnySkinner(anny_model, phenotypes, origin=np.zeros(3)).to(device)

    pose = vitruvian_pose(skinner, bone_names, parents, phenotypes)
    with torch.no_grad():
        vertices, _ = skinner(roma.rotvec_to_rotmat(torch.as_tensor(pose, device=device))[None], phenotypes)
    vertices = vertices[0].cpu().numpy()
    origin = 0.5 * (vertices.min(axis=0) + vertices.max(axis=0))
    skinner.origin.copy_(torch.as_tensor(origin, dtype=torch.float32))
    canonical = (vertices - origin).astype(np.float32)

    sparse_weights = anny_model.vertex_bone_weights.cpu().numpy()
    skinning_weights = np.zeros((len(canonical), len(bone_names)))
    vertex_ids = np.arange(len(canonical))[:, None]
    np.add.at(skinning_weights, (vertex_ids, anny_model.vertex_bone_indices.cpu().numpy()), sparse_weights)
    part_labels = part_labels_from_skinning(skinning_weights, bone_names, "anny", canonical)

    regressor = KeypointsRegressor.coco(anny_model, labels=list(COCO_KEYPOINT_NAMES))
    keypoint_weights = torch.zeros(len(KEYPOINT_NAMES), len(canonical) + len(bone_names), device=device)
    keypoint_weights[: len(COCO_KEYPOINT_NAMES), : len(canonical)] = regressor.regression_weights
    for name, bone in _HAND_KEYPOINT_BONES.items():
        for side, suffix in (("left", "L"), ("right", "R")):
            row = KEYPOINT_NAMES.index(f"{side}_{name}")
            keypoint_weights[row, len(canonical) + bone_names.index(f"{bone}.{suffix}")] = 1.0
    return BodyModel(
        name="anny",
        faces=anny_model.faces.cpu().numpy().astype(np.int64),
        canonical_vertices=canonical,
        part_labels=part_labels,
        joint_names=tuple(bone_names),
        canonical_pose=pose,
        shape_names=tuple(anny_model.phenotype_labels),
        default_shape=np.full(len(anny_model.phenotype_labels), 0.5, dtype=np.float32),
        skinner=skinner,
        keypoint_weights=keypoint_weights,
        device=device,
    )
