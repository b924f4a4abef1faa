"""Contact report: what a planner reads of one ContactResult, in 3D, in the camera frame.

One place turns a backend's per-vertex probabilities into the published answer: the vertices at or
above the contact threshold, their 3D points and normals on the posed body, the object's pose and
the listed object vertices placed by it, and grasp points kept clear of every listed contact. The
ROS message (`ivlm_ros.conversions.contact_to_msg`) and the CLI's result.json are both written from
a `ContactReport`, so the two always carry the same ids, points, pose and grasp points. The objects
placed in 3D (`placed_objects`: one per detected object, for vision_msgs/Detection3DArray) and the
RViz markers are drawn from the same reports.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.spatial import cKDTree

from ivlm_core.objects.mesh import ObjectMesh
from ivlm_core.reconstruct import ReconstructConfig
from ivlm_core.types import ContactResult, Detection, Reconstruction


@dataclass(frozen=True)
class ReportConfig:
    """The two settings of a report; their defaults are the reconstruction's (one owner each).

    contact_threshold: a vertex is in contact when its probability reaches this, in (0, 1].
    grasp_clearance_m: metres kept between a grasp point and every listed body or object contact point.
    """

    contact_threshold: float = ReconstructConfig.contact_threshold
    grasp_clearance_m: float = ReconstructConfig.grasp_clearance_m

    def __post_init__(self) -> None:
        if not 0.0 < self.contact_threshold <= 1.0:
            raise ValueError(f"contact_threshold must be in (0, 1], got {self.contact_threshold}")
        if not 0.0 <= self.grasp_clearance_m < np.inf:
            raise ValueError(f"grasp_clearance must be finite metres >= 0, got {self.grasp_clearance_m}")


def _rows3(n: int = 0) -> np.ndarray:
    return np.zeros((n, 3), np.float64)


@dataclass
class ContactReport:
    """The published contact of one (person, object) pair; arrays in the camera frame, metres.

    Body points/normals are empty when the backend gave no posed body; object points, pose and grasp
    points only when the reconstruction passed its checks (`reconstructed`), else `reconstruction_reason`
    says why and the pose is the identity with scale and quality 0.
    """

    result: ContactResult
    config: ReportConfig
    body_vertex_ids: np.ndarray  # (N,) int64, probability >= threshold
    body_vertex_probabilities: np.ndarray  # (N,) float32
    object_vertex_ids: np.ndarray  # (M,) int64
    object_vertex_probabilities: np.ndarray  # (M,) float32
    body_contact_points: np.ndarray = field(default_factory=_rows3)  # (N, 3) or (0, 3)
    body_contact_normals: np.ndarray = field(default_factory=_rows3)  # (N, 3) unit or (0, 3)
    reconstructed: bool = False
    reconstruction_reason: str = ""
    object_pose: np.ndarray = field(default_factory=lambda: np.eye(4))  # (4, 4) mesh -> camera frame
    object_scale: float = 0.0
    reconstruction_quality: float = 0.0
    object_contact_points: np.ndarray = field(default_factory=_rows3)  # (M, 3) or (0, 3)
    object_contact_normals: np.ndarray = field(default_factory=_rows3)
    grasp_points: np.ndarray = field(default_factory=_rows3)  # (G, 3)
    grasp_normals: np.ndarray = field(default_factory=_rows3)  # (G, 3) unit

    @property
    def in_contact(self) -> bool:
        return bool(self.body_vertex_ids.size)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: every field of the ROS Contact message that is not ROS-specific (lists, floats)."""
        r = self.result
        return {
            "object": r.obj.label,
            "object_id": r.obj.id,
            "in_contact": self.in_contact,
            "contact_threshold": self.config.contact_threshold,
            "grasp_clearance": self.config.grasp_clearance_m,
            "body_model": r.body_model,
            "body_vertex_count": int(np.size(r.body_probabilities)),
            "body_vertex_ids": self.body_vertex_ids.tolist(),
            "body_vertex_probabilities": self.body_vertex_probabilities.tolist(),
            "body_contact_points": self.body_contact_points.tolist(),
            "body_contact_normals": self.body_contact_normals.tolist(),
            "object_mesh_id": r.object_mesh_id,
            "object_vertex_count": int(np.size(r.object_probabilities)),
            "object_vertex_ids": self.object_vertex_ids.tolist(),
            "object_vertex_probabilities": self.object_vertex_probabilities.tolist(),
            "reconstructed": self.reconstructed,
            "reconstruction_reason": self.reconstruction_reason,
            "reconstruction_quality": self.reconstruction_quality,
            "object_pose": self.object_pose.tolist(),
            "object_scale": self.object_scale,
            "object_contact_points": self.object_contact_points.tolist(),
            "object_contact_normals": self.object_contact_normals.tolist(),
            "grasp_points": self.grasp_points.tolist(),
            "grasp_normals": self.grasp_normals.tolist(),
        }


def _object_rows(rec: Reconstruction, obj_ids: np.ndarray) -> np.ndarray | None:
    """Rows of the reconstruction's object contact points for the listed object vertices, or None.

    The points are matched by `object_contact_vertex_ids` when the reconstruction gives them, else
    taken in order when there is exactly one per listed vertex.
    """
    points = np.asarray(rec.object_contact_points)
    ids = np.asarray(rec.object_contact_vertex_ids, np.int64)
    if ids.size and ids.size == len(points):
        row_of = {int(v): i for i, v in enumerate(ids)}
        if obj_ids.size and all(int(v) in row_of for v in obj_ids):
            return np.array([row_of[int(v)] for v in obj_ids], np.int64)
        return None
    return np.arange(len(points)) if len(points) == obj_ids.size and obj_ids.size else None


def _object_contact(rec: Reconstruction, obj_ids: np.ndarray, object_mesh: ObjectMesh | None,
                    vertex_count: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Camera-frame points (N, 3) and unit normals (N, 3) of the listed object vertices `obj_ids`, or None.

    With the object mesh, every listed vertex is placed by the reconstruction's pose (so the points
    follow the report's ids even when the threshold or smoothing selects other vertices than the
    reconstruction did); without it, the reconstruction's own points are used when they cover the ids.
    """
    if object_mesh is not None:
        vertices = np.asarray(object_mesh.vertices, np.float64)
        if len(vertices) != vertex_count:
            raise ValueError(f"object mesh has {len(vertices)} vertices but the contact result has "
                             f"{vertex_count} object probabilities; the backend must set the mesh it used")
        normals = object_mesh.vertex_normals
        pose = np.asarray(rec.object_pose, np.float64)
        R, t = pose[:3, :3], pose[:3, 3]
        return rec.object_scale * vertices[obj_ids] @ R.T + t, np.asarray(normals)[obj_ids] @ R.T
    rows = _object_rows(rec, obj_ids)
    if rows is None or len(rec.object_contact_normals) != len(rec.object_contact_points):
        return None
    return np.asarray(rec.object_contact_points)[rows], np.asarray(rec.object_contact_normals)[rows]


def _clear_of(points: np.ndarray, contacts: list[np.ndarray], clearance: float) -> np.ndarray:
    """Indices of `points` (N, 3) at least `clearance` metres from every row of `contacts` ((M_i, 3) each)."""
    others = np.concatenate([_rows3(), *contacts])
    if not len(others) or not len(points):
        return np.arange(len(points))
    return np.flatnonzero(cKDTree(others).query(points)[0] >= clearance)


def _why_not_reconstructed(result: ContactResult) -> str:
    rec = result.reconstruction
    if rec is not None:
        return rec.reason or "the reconstruction failed its checks"
    if result.reason:
        return f"not reconstructed: {result.reason}"
    if result.object_mesh is None:
        return "not reconstructed: no object mesh (object-agnostic contact has no object to place)"
    return (f"not reconstructed: the '{result.backend}' backend did not place the object in 3D (the keypoint "
            "backend does unless the node parameter 'reconstruct' is false)")


def contact_report(result: ContactResult, config: ReportConfig | None = None) -> ContactReport:
    """The report of one result: vertices with probability >= the threshold and their 3D points.

    With `result.object_mesh` every listed object vertex gets its 3D point (placed by the reconstructed
    pose); without it the reconstruction's own points are used where they cover the listed ids.
    """
    cfg = config or ReportConfig()
    body_p = np.asarray(result.body_probabilities, np.float32)
    obj_p = np.asarray(result.object_probabilities, np.float32)
    body_ids = np.flatnonzero(body_p >= cfg.contact_threshold)
    obj_ids = np.flatnonzero(obj_p >= cfg.contact_threshold)
    report = ContactReport(result=result, config=cfg, body_vertex_ids=body_ids,
                           body_vertex_probabilities=body_p[body_ids], object_vertex_ids=obj_ids,
                           object_vertex_probabilities=obj_p[obj_ids])
    if result.body_vertices is not None:
        report.body_contact_points = np.asarray(result.body_vertices, np.float64)[body_ids]
        if result.body_normals is not None:
            report.body_contact_normals = np.asarray(result.body_normals, np.float64)[body_ids]
    rec = result.reconstruction
    if rec is None or not rec.ok:  # never a failed pose as if it were good: identity, zeros, no points
        report.reconstruction_reason = _why_not_reconstructed(result)
        return report
    report.reconstructed = True
    report.object_pose = np.asarray(rec.object_pose, np.float64)
    report.object_scale = float(rec.object_scale)
    report.reconstruction_quality = float(rec.quality)
    placed = _object_contact(rec, obj_ids, result.object_mesh, obj_p.size)
    if placed is not None:
        report.object_contact_points, report.object_contact_normals = (np.asarray(a, np.float64)
                                                                       for a in placed)
    grasp = np.asarray(rec.grasp_points, np.float64).reshape(-1, 3)
    contacts = [report.body_contact_points, report.object_contact_points]
    keep = _clear_of(grasp, contacts, cfg.grasp_clearance_m)
    report.grasp_points = grasp[keep]
    report.grasp_normals = np.asarray(rec.grasp_normals, np.float64).reshape(-1, 3)[keep]
    return report


@dataclass(frozen=True)
class PlacedObject:
    """One detected object placed in 3D, in the camera frame (metres).

    pose: (4, 4) object mesh -> camera frame, as ContactReport.object_pose; quality: its
    reconstruction_quality. box_centre (3,) and box_size (3,): the bounding box of the placed (scaled)
    mesh, centred in the camera frame, sized along the object's own axes (rotated by the pose).
    """

    detection: Detection
    pose: np.ndarray
    quality: float
    box_centre: np.ndarray
    box_size: np.ndarray


def placed_objects(reports: Sequence[ContactReport]) -> list[PlacedObject]:
    """The objects that at least one pair placed, each once: the placement of the highest
    reconstruction quality when several people touch the same detection (same id, label and box)."""
    best: dict[tuple, ContactReport] = {}
    for report in reports:
        if not report.reconstructed or report.result.object_mesh is None:
            continue
        obj = report.result.obj
        key = (obj.id, obj.label, *np.round(obj.box_xyxy, 3))
        if key not in best or report.reconstruction_quality > best[key].reconstruction_quality:
            best[key] = report
    placed = []
    for report in best.values():
        vertices = np.asarray(report.result.object_mesh.vertices, np.float64)
        lo, hi = vertices.min(axis=0), vertices.max(axis=0)
        R, t = report.object_pose[:3, :3], report.object_pose[:3, 3]
        placed.append(PlacedObject(detection=report.result.obj, pose=report.object_pose,
                                   quality=report.reconstruction_quality,
                                   box_centre=R @ (report.object_scale * (lo + hi) / 2) + t,
                                   box_size=report.object_scale * (hi - lo)))
    return placed
