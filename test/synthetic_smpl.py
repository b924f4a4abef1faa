"""Synthetic SMPL-family model files in the licensed files' format (no licensed data): for the tests."""

from __future__ import annotations

import pickle

import numpy as np
import scipy.sparse

# A stick-figure SMPL in its T-pose: joint positions (metres, y up, facing +z, left = +x) and parents.
SMPL_JOINTS = np.array([
    [0.0, 0.0, 0.0], [0.07, -0.09, 0.0], [-0.07, -0.09, 0.0], [0.0, 0.11, -0.02], [0.1, -0.48, 0.0],
    [-0.1, -0.48, 0.0], [0.0, 0.24, -0.02], [0.09, -0.88, -0.03], [-0.09, -0.88, -0.03], [0.0, 0.3, -0.01],
    [0.11, -0.93, 0.1], [-0.11, -0.93, 0.1], [0.0, 0.5, -0.02], [0.07, 0.42, -0.01], [-0.07, 0.42, -0.01],
    [0.0, 0.58, 0.03], [0.17, 0.44, -0.02], [-0.17, 0.44, -0.02], [0.43, 0.42, -0.03], [-0.43, 0.42, -0.03],
    [0.68, 0.42, -0.02], [-0.68, 0.42, -0.02], [0.77, 0.41, -0.02], [-0.77, 0.41, -0.02],
])
SMPL_PARENTS = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21]


def smplh_skeleton():
    """SMPL-H's 52 joints: SMPL's first 22, then index, middle, pinky, ring, thumb (3 each) per hand."""
    joints, parents = list(SMPL_JOINTS[:22]), list(SMPL_PARENTS[:22])
    for wrist, sign in ((20, 1.0), (21, -1.0)):
        for finger_z in (0.02, 0.0, -0.04, -0.02, 0.05):  # index, middle, pinky, ring, thumb (thumb in front)
            for knuckle in range(3):
                parents.append(wrist if knuckle == 0 else len(joints) - 1)
                joints.append(SMPL_JOINTS[wrist] + [sign * (0.06 + 0.03 * knuckle), 0.0, finger_z])
    return np.array(joints), parents


def write_synthetic_smpl(path, joints, parents, protocol=pickle.DEFAULT_PROTOCOL):
    """An SMPL-format pickle (6890 vertices, SMPL-H extras when 52 joints) with tubes around the bones.

    Each vertex is skinned to one joint and lies on a tube from that joint towards its child (leaves
    continue their parent's bone), so the body-part code sees the structure of the licensed model;
    no licensed data is used.
    """
    rng = np.random.default_rng(0)
    num_joints = len(joints)
    counts = np.full(num_joints, 6890 // num_joints)
    counts[-1] += 6890 - counts.sum()
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
    tube_end = {0: 3, 9: 12} | {p: j for j, p in reversed(list(enumerate(parents))) if p not in (0, 9)}
    vertices, weights = np.zeros((6890, 3)), np.zeros((6890, num_joints))
    for j, (offset, count) in enumerate(zip(offsets, counts, strict=True)):
        start = joints[j]
        end = joints[tube_end[j]] if j in tube_end else start + 0.4 * (start - joints[parents[j]])
        radial = rng.normal(size=(count, 3))
        radial /= np.linalg.norm(radial, axis=1, keepdims=True)
        points = start + rng.uniform(0.0, 1.0, (count, 1)) * (end - start) + 0.04 * radial
        points[0] = start  # the joint regressor reads the joint back from this vertex
        vertices[offset:offset + count] = points
        weights[offset:offset + count, j] = 1.0
    # As in the licensed files: J_regressor is a scipy.sparse csc matrix.
    j_regressor = scipy.sparse.csc_matrix(
        (np.ones(num_joints), (np.arange(num_joints), offsets)), shape=(num_joints, 6890))
    data = {
        "v_template": vertices, "weights": weights, "J_regressor": j_regressor,
        "f": np.arange(6888, dtype=np.int64).reshape(-1, 3),
        "shapedirs": rng.normal(scale=0.01, size=(6890, 3, 10)),
        "posedirs": np.zeros((6890, 3, 9 * (num_joints - 1))),
        "kintree_table": np.array([parents, list(range(num_joints))], dtype=np.int64),
    }
    if num_joints == 52:
        data |= {"hands_componentsl": np.eye(45), "hands_componentsr": np.eye(45),
                 "hands_meanl": np.zeros(45), "hands_meanr": np.zeros(45)}
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".npz":
        np.savez(path, **(data | {"J_regressor": j_regressor.toarray()}))
        return
    with open(path, "wb") as f:
        pickle.dump(data, f, protocol=protocol)
