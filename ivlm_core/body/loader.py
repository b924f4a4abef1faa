"""`load_body_model`: the one entry point; each model is built once per process (and once per machine)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from ivlm_core.body.model import BodyModel

BODY_MODEL_NAMES = ("anny", "smpl", "smplh", "smplx")


def load_body_model(name: str = "anny", model_path: str | None = None, device: str = "cpu") -> BodyModel:
    """The named body model, shared within the process (its numpy arrays are read-only).

    name: "anny" (shipped, default) or "smpl" / "smplh" / "smplx" (needs `model_path`, a folder with
    the user's licensed files, e.g. <model_path>/smplh/SMPLH_NEUTRAL.pkl). device: a torch device string.
    However it is called (positional, keyword, "" for no path), the same model loads only once.
    """
    if name not in BODY_MODEL_NAMES:
        raise ValueError(f"unknown body model {name!r}; expected one of {BODY_MODEL_NAMES}")
    if name == "anny":
        model_path = None  # anny ships with the package; a path would only split the cache
    elif model_path:
        model_path = str(Path(model_path).expanduser().resolve())
    return _load(name, model_path or None, str(device))


def clear_body_model_cache() -> None:
    """Drop the process-wide models (they reload from the on-disk cache, about a second for anny)."""
    _load.cache_clear()


@lru_cache(maxsize=8)
def _load(name: str, model_path: str | None, device: str) -> BodyModel:
    if name == "anny":
        from ivlm_core.body.anny_body import load_anny

        model = load_anny(device)
    else:
        from ivlm_core.body.smpl_body import load_smpl_family

        model = load_smpl_family(name, model_path, device)
    for array in (model.faces, model.canonical_vertices, model.part_labels, model.canonical_pose,
                  model.default_shape, model.native_origin):
        array.flags.writeable = False
    return model
