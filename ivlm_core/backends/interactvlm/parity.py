"""Comparing our per-vertex contact with the official demo's saved output, vertex by vertex.

The official `run_demo.py` (github.com/saidwivedi/InteractVLM) writes `<name>_hcontact_vertices.npz`
with `pred_contact_3d_smplh` ((1, 6890) probabilities on SMPL-H); `scripts/compare_official.py`
runs our backend on the same image and object name and reports the agreement with `compare_contact`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ivlm_core.metrics import contact_prf

OFFICIAL_HCONTACT_KEY = "pred_contact_3d_smplh"


@dataclass(frozen=True)
class ContactComparison:
    """How far two per-vertex contact vectors of one body agree (official = the reference)."""

    num_vertices: int
    threshold: float
    agreement: float  # fraction of vertices on the same side of `threshold`
    f1: float  # ours >= threshold against official >= threshold (InteractVLM's vertex F1)
    precision: float
    recall: float
    mean_abs_diff: float
    max_abs_diff: float
    ours_in_contact: int
    official_in_contact: int
    largest: list[dict]  # the vertices that differ most: {"vertex", "ours", "official"}, largest first

    def to_dict(self) -> dict:
        return asdict(self)


def load_official_contact(
    path: str | Path, num_vertices: int | None = None, key: str = OFFICIAL_HCONTACT_KEY
) -> np.ndarray:
    """(V,) float32 probabilities from the official demo's .npz (V checked when num_vertices is given);
    ValueError naming the file."""
    path = Path(path).expanduser()
    try:
        with np.load(path, allow_pickle=False) as npz:
            if key not in npz.files:
                raise ValueError(f"it has {npz.files}, not {key!r}")
            values = np.asarray(npz[key], dtype=np.float32).reshape(-1)
    except (OSError, ValueError) as error:
        raise ValueError(f"{path} is not the official demo's vertex-contact file: {error}") from error
    if not np.all(np.isfinite(values)) or (num_vertices is not None and values.size != num_vertices):
        raise ValueError(
            f"{path}: {key} has {values.size} values (finite: {bool(np.all(np.isfinite(values)))}), "
            f"expected {num_vertices or 'only'} finite probabilities (one per vertex of the trained body)"
        )
    return values


def compare_contact(
    ours: np.ndarray, official: np.ndarray, threshold: float = 0.5, top: int = 10
) -> ContactComparison:
    """Per-vertex agreement, F1 and the `top` largest differences of two (V,) probability vectors."""
    ours, official = np.asarray(ours, np.float64), np.asarray(official, np.float64)
    if ours.shape != official.shape or ours.ndim != 1:
        raise ValueError(f"expected two (V,) vectors of one body, got {ours.shape} and {official.shape}")
    diff = np.abs(ours - official)
    prf = contact_prf(ours, (official >= threshold).astype(np.float64), threshold)
    order = np.argsort(-diff, kind="stable")[:top]
    return ContactComparison(
        num_vertices=int(ours.size),
        threshold=float(threshold),
        agreement=float(np.mean((ours >= threshold) == (official >= threshold))),
        f1=prf.f1,
        precision=prf.precision,
        recall=prf.recall,
        mean_abs_diff=float(diff.mean()),
        max_abs_diff=float(diff.max()),
        ours_in_contact=int((ours >= threshold).sum()),
        official_in_contact=int((official >= threshold).sum()),
        largest=[{"vertex": int(v), "ours": float(ours[v]), "official": float(official[v])} for v in order],
    )
