"""Vertex-clustering decimation to a triangle budget that keeps, for every original vertex, its cluster.

Used for display meshes (RViz markers): per-vertex values (contact probabilities) of the full mesh are
carried to the decimated one by their cluster's maximum, so a small contact patch stays visible.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class DecimatedMesh:
    """A mesh reduced by vertex clustering: kept vertices, their faces, and each vertex's cluster."""

    kept: np.ndarray  # (K,) int, original vertex id standing for each cluster
    faces: np.ndarray  # (F', 3) int, indices into `kept`
    cluster: np.ndarray  # (V,) int, cluster of each original vertex

    def cluster_max(self, values: np.ndarray) -> np.ndarray:
        """Per kept vertex (K,), the largest of its cluster's original vertex values (V,): a small contact
        patch never vanishes in the decimated mesh."""
        out = np.zeros(len(self.kept), np.float32)
        np.maximum.at(out, self.cluster, np.asarray(values, np.float32))
        return out


def decimate(vertices: np.ndarray, faces: np.ndarray, max_triangles: int) -> DecimatedMesh:
    """Vertex-cluster `vertices`: (V, 3) / `faces`: (F, 3) down to at most `max_triangles` faces.

    The grid resolution is the finest (by bisection) whose clustered mesh fits the budget.
    """
    vertices, faces = np.asarray(vertices, np.float64), np.asarray(faces, np.int64)
    if max_triangles < 1:
        raise ValueError(f"triangle budget must be >= 1, got {max_triangles}")
    if len(faces) <= max_triangles:
        return DecimatedMesh(np.arange(len(vertices)), faces, np.arange(len(vertices)))
    lo_v, extent = vertices.min(0), np.ptp(vertices, axis=0).max()

    def cluster_at(cells: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        grid = np.floor((vertices - lo_v) / extent * cells).astype(np.int64)
        _, first, labels = np.unique(grid, axis=0, return_index=True, return_inverse=True)
        f = labels.reshape(-1)[faces]
        f = f[(f[:, 0] != f[:, 1]) & (f[:, 1] != f[:, 2]) & (f[:, 0] != f[:, 2])]
        _, unique_rows = np.unique(np.sort(f, axis=1), axis=0, return_index=True)
        return first, f[np.sort(unique_rows)], labels.reshape(-1)

    lo, hi = 1, 512
    best = cluster_at(lo)
    while lo < hi - 1:
        mid = (lo + hi) // 2
        trial = cluster_at(mid)
        if len(trial[1]) <= max_triangles:
            lo, best = mid, trial
        else:
            hi = mid
    return DecimatedMesh(*best)
