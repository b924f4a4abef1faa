"""Parametric body models (anny shipped; SMPL, SMPL-H, SMPL-X from the user's files) behind one interface.

    model = load_body_model("anny")
    model.canonical_vertices      # (V, 3) float32 metres, Vitruvian render pose, y up, facing +z
    model.part_labels             # (V,) int16 into PART_NAMES
    out = model.forward(pose, shape, global_orient, transl)   # torch, differentiable
    out.vertices, out.joints, out.keypoints                   # (B, V, 3), (B, J, 3), (B, K, 3)
"""

from ivlm_core.body.loader import BODY_MODEL_NAMES, clear_body_model_cache, load_body_model
from ivlm_core.body.model import KEYPOINT_NAMES, BodyModel, BodyOutput
from ivlm_core.body.parts import PART_NAMES

__all__ = [
    "BODY_MODEL_NAMES",
    "KEYPOINT_NAMES",
    "PART_NAMES",
    "BodyModel",
    "BodyOutput",
    "clear_body_model_cache",
    "load_body_model",
]
