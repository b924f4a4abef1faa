"""SMPL, SMPL-H and SMPL-X (through `smplx`) behind the BodyModel interface.

The model files are licensed (smpl.is.tue.mpg.de, mano.is.tue.mpg.de, smpl-x.is.tue.mpg.de) and never
shipped: the user points `model_path` at their own folder. SMPL's native frame already is the body
frame (y up, facing +z, left +x), and its pose convention is the BodyModel one.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch
from roma import rotvec_to_rotmat

from ivlm_core.body.model import KEYPOINT_NAMES, BodyModel
from ivlm_core.body.parts import part_labels_from_skinning
from ivlm_core.safe_pickle import READ_ERRORS, restricted_load

HIP_SPREAD_DEG = 30.0  # InteractVLM's Vitruvian pose: body_pose[0, 2] = +30 deg, body_pose[1, 2] = -30 deg

NUM_BETAS = 10

# File formats smplx reads for each model, in the order looked for.
_EXTENSIONS = {"smpl": (".pkl", ".npz"), "smplh": (".pkl", ".npz"), "smplx": (".npz", ".pkl")}

# Keypoints taken from joints; the others come from single vertices (smplx.vertex_ids).
_JOINT_KEYPOINTS = (
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
)
# MediaPipe's hand points: finger joints where the model has them (SMPL-H, SMPL-X), else fingertip vertices.
_HAND_JOINTS = {"pinky": "pinky1", "index": "index1", "thumb": "thumb3"}
_VERTEX_KEYPOINTS = {
    "left_pinky": "lpinky", "right_pinky": "rpinky", "left_index": "lindex", "right_index": "rindex",
    "left_thumb": "lthumb", "right_thumb": "rthumb",
    "nose": "nose", "left_eye": "leye", "right_eye": "reye", "left_ear": "lear", "right_ear": "rear",
    "left_big_toe": "LBigToe", "right_big_toe": "RBigToe", "left_small_toe": "LSmallToe",
    "right_small_toe": "RSmallToe", "left_heel": "LHeel", "right_heel": "RHeel",
}


_MODEL_HINT = (
    "a genuine model file holds only numpy arrays and scipy.sparse matrices; if this is your licensed "
    "file, re-save it as .npz (np.savez with plain arrays) in a trusted environment"
)


def read_model_file(path: Path, what: str = "body model") -> dict[str, object]:
    """The arrays of an SMPL / SMPL-H / SMPL-X file, without executing anything from it.

    .pkl: a restricted unpickler (numpy arrays, scipy.sparse matrices, str, numbers only);
    .npz: numpy without pickle. ValueError naming the file for anything else or anything unreadable.
    """
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as npz:
                data = {key: npz[key] for key in npz.files}
        else:
            with open(path, "rb") as file:
                data = restricted_load(file, path, "SMPL-family model file", _MODEL_HINT)
    except ValueError as error:
        if str(path) in str(error):
            raise
        raise ValueError(f"{path} is not a readable {what} file ({error}); a model .npz must "
                         f"hold plain numeric arrays (no object arrays)") from error
    except READ_ERRORS as error:
        raise ValueError(f"{path} is not a readable {what} file ({error!r})") from error
    if not isinstance(data, dict) or not all(isinstance(key, str) for key in data):
        raise ValueError(f"{path} is not a {what} file: expected a dict of named arrays, "
                         f"got {type(data).__name__}")
    return data


def _joint_names(name: str) -> tuple[str, ...]:
    from smplx.joint_names import JOINT_NAMES, SMPLH_JOINT_NAMES

    if name == "smpl":
        return (*SMPLH_JOINT_NAMES[:22], "left_hand", "right_hand")
    if name == "smplh":
        return tuple(SMPLH_JOINT_NAMES[:52])
    return tuple(JOINT_NAMES[:55])


def model_file(name: str, model_path: str | None) -> Path:
    """The neutral model file of `name` under `model_path`, or ValueError naming what was expected.

    Accepts the file itself, `<model_path>/<name>/<NAME>_NEUTRAL.<ext>` (smplx's layout, as in
    InteractVLM's data/body_models) or `<model_path>/<NAME>_NEUTRAL.<ext>`, ext from _EXTENSIONS.
    """
    stem = f"{name.upper()}_NEUTRAL"
    if model_path is None:
        expected = " or ".join(f"{name}/{stem}{ext}" for ext in _EXTENSIONS[name])
        raise ValueError(
            f"body model '{name}' needs licensed model files: pass model_path=<folder> containing "
            f"{expected} (from the {name.upper()} website)"
        )
    root = Path(model_path).expanduser()
    if root.is_file():
        return root
    candidates = [folder / f"{stem}{ext}" for folder in (root / name, root) for ext in _EXTENSIONS[name]]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise ValueError(
        f"body model '{name}': none of the expected files exists: {', '.join(map(str, candidates))}. "
        f"Put the licensed neutral model there (for SMPL-H as used by InteractVLM: "
        f"<model_path>/smplh/SMPLH_NEUTRAL.pkl)"
    )


class SmplSkinner(torch.nn.Module):
    """(rotations (B, J, 3, 3), betas (B, 10)) -> vertices (B, V, 3), joints (B, J, 3), metres, body frame."""

    def __init__(self, smplx_model: torch.nn.Module, origin: np.ndarray) -> None:
        super().__init__()
        for buffer in ("v_template", "shapedirs", "posedirs", "J_regressor", "parents", "lbs_weights"):
            self.register_buffer(buffer, getattr(smplx_model, buffer).detach().clone())
        self.register_buffer("origin", torch.as_tensor(origin, dtype=torch.float32))

    def forward(self, rotations: torch.Tensor, betas: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        from smplx.lbs import lbs

        vertices, joints = lbs(
            betas, rotations, self.v_template, self.shapedirs, self.posedirs, self.J_regressor,
            self.parents, self.lbs_weights, pose2rot=False,
        )
        return vertices - self.origin, joints - self.origin


def _smplx_model(name: str, path: Path, data: dict[str, object]) -> torch.nn.Module:
    """smplx's model built from already-read arrays (smplx itself would unpickle the file unrestricted)."""
    import scipy.sparse
    import smplx
    from smplx.utils import Struct

    common = {"gender": "neutral", "num_betas": NUM_BETAS}
    if name == "smpl":
        return smplx.SMPL(model_path=str(path), data_struct=Struct(**data), **common)
    hands = {"use_pca": False, "flat_hand_mean": True}
    if name == "smplh":
        return smplx.SMPLH(model_path=str(path), data_struct=Struct(**data), **common, **hands)
    # smplx.SMPLX takes no data_struct: hand it a plain-array .npz written from the vetted arrays.
    dense = {key: value.toarray() if scipy.sparse.issparse(value) else np.asarray(value)
             for key, value in data.items()}
    with tempfile.TemporaryDirectory() as folder:
        clean = Path(folder) / "SMPLX_NEUTRAL.npz"
        np.savez(clean, **dense)
        return smplx.SMPLX(model_path=str(clean), ext="npz", **common, **hands)


def load_smpl_family(name: str, model_path: str | None, device: str = "cpu") -> BodyModel:
    """SMPL / SMPL-H / SMPL-X (neutral, 10 betas, flat hands, no expression) from the user's files."""
    from smplx.vertex_ids import vertex_ids

    path = model_file(name, model_path)
    if path.suffix not in _EXTENSIONS[name]:
        raise ValueError(f"{path}: a {name.upper()} model file must end in {' or '.join(_EXTENSIONS[name])}")
    data = read_model_file(path, f"{name.upper()} model")
    try:
        smplx_model = _smplx_model(name, path, data)
    except (KeyError, AttributeError, IndexError, TypeError, ValueError) as error:
        raise ValueError(f"{path} is not a readable {name.upper()} model file ({error!r})") from error

    joint_names = _joint_names(name)
    if smplx_model.J_regressor.shape[0] != len(joint_names):
        raise ValueError(
            f"{path} has {smplx_model.J_regressor.shape[0]} joints, but {name.upper()} has "
            f"{len(joint_names)}; is it the right model type?"
        )
    skinner = SmplSkinner(smplx_model, origin=np.zeros(3)).to(device)
    num_vertices = int(smplx_model.v_template.shape[0])

    pose = np.zeros((len(joint_names), 3), dtype=np.float32)
    pose[joint_names.index("left_hip"), 2] = np.radians(HIP_SPREAD_DEG)
    pose[joint_names.index("right_hip"), 2] = -np.radians(HIP_SPREAD_DEG)
    default_shape = np.zeros(smplx_model.num_betas, dtype=np.float32)
    with torch.no_grad():
        vertices, _ = skinner(
            rotvec_to_rotmat(torch.as_tensor(pose, device=device))[None],
            torch.as_tensor(default_shape, device=device)[None],
        )
    vertices = vertices[0].cpu().numpy()
    origin = 0.5 * (vertices.min(axis=0) + vertices.max(axis=0))
    skinner.origin.copy_(torch.as_tensor(origin, dtype=torch.float32))
    canonical = (vertices - origin).astype(np.float32)

    skinning_weights = smplx_model.lbs_weights.cpu().numpy()
    part_labels = part_labels_from_skinning(skinning_weights, joint_names, "smpl", canonical)

    ids = vertex_ids["smplx" if name == "smplx" else "smplh"]
    keypoint_weights = torch.zeros(len(KEYPOINT_NAMES), num_vertices + len(joint_names), dtype=torch.float32)
    for k, keypoint in enumerate(KEYPOINT_NAMES):
        side, _, point = keypoint.partition("_")
        hand_joint = f"{side}_{_HAND_JOINTS[point]}" if point in _HAND_JOINTS else None
        if keypoint in _JOINT_KEYPOINTS:
            keypoint_weights[k, num_vertices + joint_names.index(keypoint)] = 1.0
        elif hand_joint in joint_names:
            keypoint_weights[k, num_vertices + joint_names.index(hand_joint)] = 1.0
        elif ids[_VERTEX_KEYPOINTS[keypoint]] < num_vertices:
            keypoint_weights[k, ids[_VERTEX_KEYPOINTS[keypoint]]] = 1.0
        else:
            raise ValueError(
                f"{path} has {num_vertices} vertices, fewer than the standard {name.upper()} topology "
                f"({keypoint} is vertex {ids[_VERTEX_KEYPOINTS[keypoint]]})"
            )
    return BodyModel(
        name=name,
        faces=np.asarray(smplx_model.faces, dtype=np.int64),
        canonical_vertices=canonical,
        part_labels=part_labels,
        joint_names=joint_names,
        canonical_pose=pose,
        shape_names=tuple(f"beta{i}" for i in range(smplx_model.num_betas)),
        default_shape=default_shape,
        skinner=skinner,
        keypoint_weights=keypoint_weights.to(device),
        device=device,
        native_origin=origin.astype(np.float32),
    )
