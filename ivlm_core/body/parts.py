"""Named body parts, derived per vertex from a body model's own skinning weights.

Each vertex takes the part of the bone that moves it most (argmax skinning weight), through a
bone-name table per model family; thigh vertices that the pelvis bones still move (glutes, groin)
join the pelvis. The torso and the pelvis are then split front/back by the vertex's depth relative
to that part's mid-plane in the canonical pose (body facing +z): torso_front/torso_back and
hips/buttocks.
"""

from __future__ import annotations

import re

import numpy as np

# The one list of body parts: every backend, prior table, message and metric names parts from it.
CENTRAL_PARTS = ("head", "neck", "torso_front", "torso_back", "hips", "buttocks")
SIDED_PARTS = ("upper_arm", "forearm", "hand", "thigh", "calf", "foot")  # each as left_<part>, right_<part>

PART_NAMES: tuple[str, ...] = (
    *CENTRAL_PARTS,
    *(f"{side}_{part}" for side in ("left", "right") for part in SIDED_PARTS),
)

# Bone group before the front/back split: "torso" -> torso_front/torso_back, "pelvis" -> hips/buttocks.
_FRONT_BACK = {"torso": ("torso_front", "torso_back"), "pelvis": ("hips", "buttocks")}

# anny (MakeHuman "default" rig): regex on the bone name -> part; ".L" is the person's own left.
_ANNY_BONE_PARTS: tuple[tuple[str, str], ...] = (
    (r"^(root|pelvis\.[LR]|spine05)$", "pelvis"),
    (r"^spine0[1-4]$", "torso"),
    (r"^clavicle\.[LR]$", "torso"),
    (r"^neck0[12]$", "neck"),
    (r"^(neck03|head|eye\.[LR])$", "head"),
    (r"^(shoulder01|upperarm0[12])\.(?P<side>[LR])$", "upper_arm"),
    (r"^lowerarm0[12]\.(?P<side>[LR])$", "forearm"),
    (r"^(wrist|metacarpal\d|finger\d-\d)\.(?P<side>[LR])$", "hand"),
    (r"^upperleg0[12]\.(?P<side>[LR])$", "thigh"),
    (r"^lowerleg0[12]\.(?P<side>[LR])$", "calf"),
    (r"^(foot|toe\d-\d)\.(?P<side>[LR])$", "foot"),
)

# SMPL / SMPL-H / SMPL-X joint names (smplx.joint_names.JOINT_NAMES order) -> part.
_SMPL_BONE_PARTS: tuple[tuple[str, str], ...] = (
    (r"^pelvis$", "pelvis"),
    (r"^(spine[123]|(?P<side>left|right)_collar)$", "torso"),
    (r"^neck$", "neck"),
    (r"^(head|jaw|(left|right)_eye_smplhf)$", "head"),
    (r"^(?P<side>left|right)_shoulder$", "upper_arm"),
    (r"^(?P<side>left|right)_elbow$", "forearm"),
    (r"^(?P<side>left|right)_(wrist|hand|index\d|middle\d|pinky\d|ring\d|thumb\d)$", "hand"),
    (r"^(?P<side>left|right)_hip$", "thigh"),
    (r"^(?P<side>left|right)_knee$", "calf"),
    (r"^(?P<side>left|right)_(ankle|foot)$", "foot"),
)

# A thigh vertex whose pelvis-bone weights reach this share counts as pelvis (hips / buttocks).
PELVIS_SHARE = 0.1

_SIDE = {"L": "left", "R": "right", "left": "left", "right": "right"}


def bone_part_table(bone_names: list[str] | tuple[str, ...], family: str) -> list[str]:
    """The part (or "torso"/"pelvis" group, split later) of every bone, in `bone_names` order.

    family: "anny" or "smpl" (SMPL, SMPL-H and SMPL-X share joint names). Raises ValueError naming
    the bones no rule matches, so a changed rig fails loudly instead of mislabelling vertices.
    """
    rules = {"anny": _ANNY_BONE_PARTS, "smpl": _SMPL_BONE_PARTS}.get(family)
    if rules is None:
        raise ValueError(f"unknown bone-name family {family!r}; expected 'anny' or 'smpl'")
    table, unmatched = [], []
    for bone in bone_names:
        for pattern, part in rules:
            match = re.search(pattern, bone)
            if match is None:
                continue
            side = match.groupdict().get("side")
            table.append(f"{_SIDE[side]}_{part}" if part in SIDED_PARTS else part)
            break
        else:
            unmatched.append(bone)
    if unmatched:
        raise ValueError(f"no body part is known for the {family} bones {unmatched}; extend parts.py")
    return table


def _front_mask(points: np.ndarray, bins: int = 16) -> np.ndarray:
    """True where a point lies in front (+z) of its part's mid-plane at the same height.

    points: (N, 3) canonical vertices of one part. The mid-plane depth is the middle of the
    part's z-extent in each of `bins` height slices, interpolated over y, so a curved back or
    belly does not tip whole slices to one side.
    """
    y, z = points[:, 1], points[:, 2]
    edges = np.linspace(y.min(), y.max() + 1e-9, bins + 1)
    slice_ids = np.clip(np.digitize(y, edges) - 1, 0, bins - 1)
    centres_y, centres_z = [], []
    for b in range(bins):
        in_slice = slice_ids == b
        if np.any(in_slice):
            centres_y.append(y[in_slice].mean())
            centres_z.append(0.5 * (z[in_slice].min() + z[in_slice].max()))
    mid_z = np.interp(y, centres_y, centres_z)
    return z > mid_z


def part_labels_from_skinning(
    skinning_weights: np.ndarray, bone_names: list[str] | tuple[str, ...], family: str,
    canonical_vertices: np.ndarray,
) -> np.ndarray:
    """Per-vertex part index into PART_NAMES.

    skinning_weights: (V, J) float, each vertex's weight on each bone (dense).
    canonical_vertices: (V, 3) float, metres, y up, body facing +z (used for front/back splits).
    Each vertex takes the part of its heaviest bone, except that thigh vertices which the pelvis
    bones still move noticeably (the gluteal fold and the groin) join the pelvis, as in SMPL's
    segmentation where the buttocks belong to the hips. Returns (V,) int16.
    """
    table = np.array(bone_part_table(bone_names, family), dtype=object)
    groups = table[skinning_weights.argmax(axis=1)]
    pelvis_share = skinning_weights[:, table == "pelvis"].sum(axis=1)
    groups[np.isin(groups, ["left_thigh", "right_thigh"]) & (pelvis_share >= PELVIS_SHARE)] = "pelvis"
    labels = np.full(len(groups), -1, dtype=np.int16)
    for index, name in enumerate(PART_NAMES):
        labels[groups == name] = index
    for group, (front, back) in _FRONT_BACK.items():
        members = np.flatnonzero(groups == group)
        if members.size == 0:
            continue
        is_front = _front_mask(canonical_vertices[members])
        labels[members[is_front]] = PART_NAMES.index(front)
        labels[members[~is_front]] = PART_NAMES.index(back)
    return labels
