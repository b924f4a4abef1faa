"""The body a human-contact checkpoint was trained on, its four SAM renders, and where its contact goes.

The released human-contact models were trained and demoed on fixed renders of the SMPL-H neutral body
(10 zero betas, InteractVLM's Vitruvian pose: hips +-30 deg about z, flat hands) in its native frame
(no re-centring, no global orientation, no translation): `preprocess_data/generate_damon_human_mask.py`
(`body_model(body_pose=VIRTUVIAN_POSE)`) and `run_demo.py` (`data/hcontact_vitruvian/`) in
github.com/saidwivedi/InteractVLM. A different body, or the same body shifted, gives the model inputs it
never saw. So:

- the rig renders `trained_body_name(arch)` (SMPL-H for released checkpoints; checkpoints fine-tuned
  here record theirs in config.json as `ivlm_body_model`) at `BodyModel.native_vertices`;
- when the user's InteractVLM data folder holds the official renders and lift tables
  (`hcontact_vitruvian/body_render_norm_<view>.png`, `pixel_to_vertex_map_1024.npz`,
  `bary_coords_map_1024.npz`), those exact files are used instead;
- contact reaches another output body only through an explicit vertex correspondence (`VertexTransfer`):
  SMPL-H -> SMPL is the identity (SMPL-H's body mesh is SMPL's 6890 vertices and faces), SMPL-H ->
  SMPL-X needs the user's correspondence matrix (InteractVLM's `data/smpl_to_smplx.pkl` `matrix`,
  (10475, 6890), saved as .npz), anything else is refused with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from scipy import sparse

from ivlm_core.backends.interactvlm.model import MVLocArchitecture
from ivlm_core.body import BodyModel
from ivlm_core.render import (
    HUMAN_VIEWS,
    LiftTables,
    Rasterizer,
    RigRender,
    render_body_views,
    rig_cam_params,
)

TRAINED_BODY_KEY = "ivlm_body_model"  # config.json field written by exports of checkpoints fine-tuned here
RELEASED_BODY = "smplh"  # the body of every released InteractVLM human-contact checkpoint
OFFICIAL_RIG_FOLDER = "hcontact_vitruvian"
PIXEL_TO_VERTEX_FILE = "pixel_to_vertex_map_1024.npz"
BARY_COORDS_FILE = "bary_coords_map_1024.npz"
SAME_MESH = {frozenset({"smpl", "smplh"})}  # bodies sharing one vertex list (SMPL-H = SMPL body + hands)


def trained_body_name(arch: MVLocArchitecture) -> str:
    """The body model whose renders the checkpoint was trained on ("smplh" unless config.json says)."""
    return str(arch.extra.get(TRAINED_BODY_KEY) or RELEASED_BODY)


def official_rig_files(data_folder: str | Path) -> tuple[Path, list[Path], Path, Path]:
    """(rig folder, the 4 render PNGs in view order, pixel-to-vertex .npz, barycentric .npz) under the
    user's InteractVLM `data` folder or its `hcontact_vitruvian` subfolder; ValueError naming what is
    missing."""
    root = Path(data_folder).expanduser()
    folder = root / OFFICIAL_RIG_FOLDER if (root / OFFICIAL_RIG_FOLDER).is_dir() else root
    renders = [folder / f"body_render_norm_{view.name}.png" for view in HUMAN_VIEWS]
    tables = (folder / PIXEL_TO_VERTEX_FILE, folder / BARY_COORDS_FILE)
    missing = [str(p) for p in (*renders, *tables) if not p.is_file()]
    if missing:
        raise ValueError(
            f"interactvlm_data {str(root)!r} lacks the official body renders / lift tables: {missing}. "
            f"Point it at InteractVLM's unpacked data folder (from data.zip; it holds "
            f"{OFFICIAL_RIG_FOLDER}/), or leave it empty to render the body here"
        )
    return folder, renders, *tables


def load_official_rig(data_folder: str | Path, body: BodyModel, mask_size: int) -> RigRender:
    """The official SAM inputs and lift tables of the human rig, checked against `body` and the model."""
    folder, render_paths, p2v_path, bary_path = official_rig_files(data_folder)
    images = []
    for path in render_paths:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)  # RGB once converted, as run_demo.py (PIL) sees it
        if image is None or image.shape[:2] != (mask_size, mask_size):
            got = "unreadable" if image is None else f"{image.shape[1]}x{image.shape[0]}"
            raise ValueError(f"{path}: expected a {mask_size}x{mask_size} render for this model, got {got}")
        images.append(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
    maps = []
    for path in (p2v_path, bary_path):
        try:
            with np.load(path, allow_pickle=False) as npz:
                maps.append(np.stack([npz[view.name] for view in HUMAN_VIEWS]))
        except (OSError, ValueError, KeyError) as error:
            raise ValueError(
                f"{path} is not InteractVLM's per-view map file (arrays named "
                f"{[v.name for v in HUMAN_VIEWS]}): {error}"
            ) from error
    p2v, bary = maps
    if p2v.shape != (len(HUMAN_VIEWS), mask_size, mask_size, 3) or bary.shape != p2v.shape:
        raise ValueError(
            f"{folder}: lift maps have shapes {p2v.shape} / {bary.shape}, expected "
            f"({len(HUMAN_VIEWS)}, {mask_size}, {mask_size}, 3) for this model"
        )
    try:
        tables = LiftTables.from_dense(p2v, bary, body.faces, body.num_vertices)
    except ValueError as error:
        raise ValueError(f"{p2v_path} does not fit the {body.name} mesh: {error}") from error
    return RigRender(
        images=np.stack(images),
        tables=tables,
        views=HUMAN_VIEWS,
        cam_params=rig_cam_params(HUMAN_VIEWS),
        vertices=body.native_vertices,
    )


def body_rig(body: BodyModel, rasterizer: Rasterizer, data_folder: str | Path = "") -> tuple[RigRender, str]:
    """The human rig of `body`: the official files when `data_folder` is set, else rendered here at the
    body's native frame. Also says which, for the results' evidence."""
    if data_folder:
        rig = load_official_rig(data_folder, body, rasterizer.size[0])
        return rig, "official renders and lift tables"
    rig = render_body_views(rasterizer, body.native_vertices, body.faces)
    return rig, f"{body.name} rendered in its native frame"


@dataclass(frozen=True)
class VertexTransfer:
    """Per-vertex contact of the trained body -> per-vertex contact of the output body."""

    source: str
    target: str
    # (V_target, V_source) float32, sparse (a correspondence has a few weights per row: SMPL -> SMPL-X
    # dense would hold 10475 x 6890 floats, 289 MB), or None for the identity
    matrix: sparse.csr_array | None

    def __call__(self, probabilities: np.ndarray) -> np.ndarray:
        if self.matrix is None:
            return probabilities
        return np.clip(self.matrix @ probabilities, 0.0, 1.0).astype(np.float32)


def _load_correspondence(path: Path) -> sparse.csr_array:
    """A .npz with a dense `matrix`, or scipy.sparse.save_npz's format; no pickles either way."""
    with np.load(path, allow_pickle=False) as npz:
        if "matrix" in npz.files:
            return sparse.csr_array(np.asarray(npz["matrix"], dtype=np.float32))
    return sparse.csr_array(sparse.load_npz(path), dtype=np.float32)


def vertex_transfer(
    source: BodyModel, target: BodyModel, correspondence: str | Path = ""
) -> VertexTransfer:
    """How contact on `source` (the trained body) becomes contact on `target` (the requested output).

    correspondence: a .npz with `matrix` (V_target, V_source), e.g. InteractVLM's smpl_to_smplx mapping
    saved with numpy (`np.savez(f, matrix=joblib.load('data/smpl_to_smplx.pkl')['matrix'])`), or the
    same matrix saved with scipy.sparse.save_npz. ValueError when no documented correspondence exists.
    """
    if correspondence:
        path = Path(correspondence).expanduser()
        try:
            matrix = _load_correspondence(path)
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise ValueError(
                f"body_correspondence {str(path)!r} must be a .npz holding 'matrix' "
                f"({target.num_vertices}, {source.num_vertices}) or a scipy.sparse.save_npz file: {error}"
            ) from error
        if matrix.shape != (target.num_vertices, source.num_vertices):
            raise ValueError(
                f"body_correspondence {path}: matrix is {matrix.shape}, expected ({target.num_vertices}, "
                f"{source.num_vertices}): ({target.name} vertices, {source.name} vertices)"
            )
        if not np.all(np.isfinite(matrix.data)):
            raise ValueError(f"body_correspondence {path}: matrix has non-finite weights; re-export it")
        return VertexTransfer(source.name, target.name, matrix)
    if source.name == target.name or frozenset({source.name, target.name}) in SAME_MESH:
        if source.num_vertices != target.num_vertices:
            raise ValueError(
                f"{source.name} has {source.num_vertices} vertices but {target.name} has "
                f"{target.num_vertices}; they should share one mesh: check the model files"
            )
        return VertexTransfer(source.name, target.name, None)
    raise ValueError(
        f"the checkpoint predicts contact on {source.name}, and no vertex correspondence from "
        f"{source.name} to {target.name} is known (contact is never moved by rendering another body). "
        f"Set body_model to {source.name}"
        + (" or smpl (same mesh)" if source.name == "smplh" else "")
        + f", or give body_correspondence: a .npz 'matrix' ({target.num_vertices}, {source.num_vertices})"
    )
