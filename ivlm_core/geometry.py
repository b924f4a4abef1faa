"""Geometry every stage shares: validating a mesh, its vertex normals, the overlap of pixel boxes.

One owner each: the renderer, the reconstruction, the metrics and the ROS conversions all check
meshes and compute normals here, and tracking, the pose search and the reconstruction's box check
all measure box overlap here, so a result in one stage is the same in every other.
"""

from __future__ import annotations

import numpy as np


def validate_mesh(
    vertices: np.ndarray, faces: np.ndarray, name: str = "mesh", min_vertices: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Check a triangle mesh and return it as (V, 3) float64 vertices and (F, 3) int32 faces.

    Raises ValueError naming the mesh (`name`) and what is wrong: too few vertices (< `min_vertices`),
    wrong shapes, non-integer faces, non-finite vertices or face indices out of range.
    """
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces)
    if v.ndim != 2 or v.shape[1] != 3 or v.shape[0] < max(min_vertices, 1):
        raise ValueError(
            f"{name} vertices must be a non-empty (V, 3) array with V >= {max(min_vertices, 1)}, "
            f"got shape {v.shape}"
        )
    if f.ndim != 2 or f.shape[1] != 3 or f.shape[0] == 0:
        raise ValueError(
            f"{name} faces must be a non-empty (F, 3) array of vertex indices, got shape {f.shape}"
        )
    if not np.issubdtype(f.dtype, np.integer):
        raise ValueError(f"{name} faces must hold integer vertex indices, got dtype {f.dtype}")
    if not np.all(np.isfinite(v)):
        bad = np.flatnonzero(~np.isfinite(v).all(axis=1))
        raise ValueError(
            f"{name} vertices contain NaN or inf ({bad.size} vertices, first {bad[:5].tolist()})"
        )
    if f.min() < 0 or f.max() >= v.shape[0]:
        raise ValueError(
            f"{name} faces index vertices in [{int(f.min())}, {int(f.max())}] but the mesh has "
            f"{v.shape[0]} vertices"
        )
    return v, f.astype(np.int32, copy=False)


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(V, 3) float64 unit vertex normals, area-weighted sum of face normals (as PyTorch3D's verts_normals).

    Outward for counter-clockwise faces; vertices on no face get a zero normal. Validates the mesh.
    """
    v, f = validate_mesh(vertices, faces)
    a, b, c = (np.take(v, f[:, k], axis=0) for k in range(3))
    face_n = np.cross(b - a, c - a)  # length = 2 * area
    # Every face adds its normal to its 3 corners: per axis, one bincount over the (F * 3) corners.
    corner_n = np.repeat(face_n, 3, axis=0)
    corners = f.reshape(-1)
    n = np.stack(
        [np.bincount(corners, weights=corner_n[:, axis], minlength=v.shape[0]) for axis in range(3)], axis=1
    )
    norm = np.linalg.norm(n, axis=1, keepdims=True)
    return np.divide(n, norm, out=np.zeros_like(n), where=norm > 1e-12)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of boxes a: (N, 4) and b: (M, 4), [x0, y0, x1, y1] pixels -> (N, M)."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    lo = np.maximum(a[:, None, :2], b[None, :, :2])
    hi = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=-1)
    area = lambda x: np.prod(x[:, 2:] - x[:, :2], axis=-1)  # noqa: E731
    return inter / np.maximum(area(a)[:, None] + area(b)[None, :] - inter, 1e-9)
