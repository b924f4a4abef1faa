"""`load_body_model`: the one entry point; each model is built once per process (and once per machine)."""

from __future__ import annotations

from functools import lru_cache

from ivlm_core.body.model import BodyModel

BODY_MODEL_NAMES = ("anny", "smpl", "smplh", "smplx")


@lru_cache(maxsize=8)
def load_body_model(name: str = "anny", model_path: str | None = None, device: str = "cpu") -> BodyModel:
    """The named body model, shared within the process (its numpy arrays are read-only).

    name: "anny" (shipped, default) or "smpl" / "smplh" / "smplx" (needs `model_path`, a folder with
    the user's licensed files, e.g. <model_path>/smplh/SMPLH_NEUTRAL.pkl). device: a torch device string.
    """
    if name not in BODY_MODEL_NAMES:
        raise ValueError(f"unknown body model {name!r}; expected one of {BODY_MODEL_NAMES}")
    if name == "anny":
        from ivlm_core.body.anny_body import load_anny

        model = load_anny(device)
    else:
        from ivlm_core.body.smpl_body import load_smpl_family

        model = load_smpl_family(name, model_path, device)
    for array in (model.faces, model.canonical_vertices, model.part_labels, model.canonical_pose,
                  model.default_shape):
        array.flags.writeable = False
    return model

