"""Joint human-object reconstruction: place the object in 3D against the fitted body, in the camera frame.

One call per (person, object) pair: the posed body, its contact probabilities, the object's metric mesh
and contact probabilities, the object's box (and mask) give the object pose, contact points and normals
on both surfaces, candidate grasp regions away from the person, and a quality score with checks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import trimesh
from scipy.ndimage import distance_transform_edt
from scipy.spatial import cKDTree

from ivlm_core.geometry import box_iou, validate_mesh, vertex_normals
from ivlm_core.reconstruct.pose import (
    DEFAULT_SCHEDULE,
    PoseFit,
    PoseTargets,
    PoseWeights,
    Stage,
    fit_object_pose,
    initial_rotations,
)
from ivlm_core.types import CameraIntrinsics, Reconstruction


class MeshLike(Protocol):
    """Any metric triangle mesh, e.g. `ivlm_core.objects.ObjectMesh`: vertices (V, 3) metres, faces (F, 3).

    A mesh with a `derived(key, make)` method (ObjectMesh, `ivlm_core.testing.SceneObject`) keeps what
    the reconstruction derives from it (normals, surface samples, hull) on itself, computed once.
    """

    vertices: np.ndarray
    faces: np.ndarray


@dataclass(frozen=True)
class ReconstructConfig:
    """Every knob of the reconstruction, with the defaults used by the backends."""

    contact_threshold: float = 0.5  # vertices at or above this probability form the contact regions
    scale_range: tuple[float, float] = (0.75, 1.33)  # bounds on the scale, relative to the mesh's metric size
    unknown_size_range: tuple[float, float] = (
        0.5,
        2.0,
    )  # the same for meshes of unknown size (see reconstruct)
    contact_box_margin: float = 0.25  # body contact must project within the box grown by this fraction
    grasp_clearance_m: float = 0.05  # grasp candidates keep at least this distance from every contact
    grasp_samples: int = 256  # object surface samples the grasp candidates are drawn from
    silhouette_points: int = 128  # object points whose projection is compared with the box and mask
    contact_points: int = 64  # at most this many points per contact region in the optimisation
    # At most this many body vertices near the contact in the interpenetration term (the check uses all).
    body_points: int = 300
    mask_samples: int = 64  # mask pixels that must be covered by the projected object
    mask_resolution: int = 96  # the mask's distance map is computed at most this many pixels wide
    # How many starting rotations survive each stage, and its Levenberg-Marquardt steps.
    schedule: tuple[Stage, ...] = DEFAULT_SCHEDULE
    contact_spins: int = 12  # starting rotations that turn the contact surfaces to face each other
    # Video: the previous frame's pose (`init`) alone is refined with this schedule; only when that
    # fails the checks (the object moved too far) is the full search run, in the same frame.
    warm_schedule: tuple[Stage, ...] = (Stage(keep=1, iterations=4, penetration=True),)
    # A pair whose previous pose failed the checks is tracked from it too (cheap), but searched from
    # scratch again after this many frames, so that a wrong pose does not stick.
    full_search_every: int = 10
    weights: PoseWeights = field(default_factory=PoseWeights)
    # Checks a pose must pass to be reported as good (Reconstruction.ok).
    # A quarter of the body's contact region must lie within this distance of the object surface.
    max_contact_gap_m: float = 0.04
    min_box_iou: float = 0.5  # projected object box vs detected box
    max_penetration_m: float = 0.03  # 90th percentile depth of object surface inside the body
    min_depth_m: float = 0.1  # every object point in front of the camera by at least this

    def __post_init__(self) -> None:
        for name in ("scale_range", "unknown_size_range"):
            lo, hi = getattr(self, name)
            if not 0 < lo <= 1 <= hi:
                raise ValueError(f"{name} must satisfy 0 < low <= 1 <= high, got {getattr(self, name)}")
        if not 0 < self.contact_threshold <= 1:
            raise ValueError(f"contact_threshold must be in (0, 1], got {self.contact_threshold}")
        if self.grasp_clearance_m < 0:
            raise ValueError(f"grasp_clearance_m must be >= 0, got {self.grasp_clearance_m}")
        if self.full_search_every < 1:
            raise ValueError(f"full_search_every must be >= 1 frame, got {self.full_search_every}")


@dataclass(frozen=True)
class _MeshData:
    """What the reconstruction needs of an object mesh beyond its vertices, in the mesh frame (metres)."""

    vertex_normals: np.ndarray  # (V, 3) unit
    samples: np.ndarray  # (S, 3) surface samples (fixed seed)
    sample_normals: np.ndarray  # (S, 3) unit, their faces' normals
    hull: np.ndarray  # (H, 3) convex hull vertices: the mesh's projected box and nearest depth are theirs
    surface: cKDTree  # over the vertices and the samples: distances to the surface, in the mesh frame


def _mesh_data(mesh: MeshLike, vertices: np.ndarray, faces: np.ndarray, n_samples: int) -> _MeshData:
    """_MeshData of `mesh` (its checked `vertices`, `faces`): kept on the mesh when it can keep derived
    data (the registry hands out the same ObjectMesh every frame), else computed for this call."""

    def make() -> _MeshData:
        tri = trimesh.Trimesh(vertices, faces, process=False)
        samples, sample_faces = trimesh.sample.sample_surface(tri, n_samples, seed=0)
        normals = vertex_normals(vertices, faces)
        arrays = (normals, samples, tri.face_normals[sample_faces], tri.convex_hull.vertices)
        arrays = tuple(np.array(a, np.float64) for a in arrays)
        for a in arrays:
            a.setflags(write=False)  # shared by every later call with this mesh
        return _MeshData(*arrays, surface=cKDTree(np.concatenate([vertices, arrays[1]])))

    derived = getattr(mesh, "derived", None)
    return make() if derived is None else derived(("reconstruct", n_samples), make)


_NEXT_SEARCH = "; searched again in "  # how a failure carried over from a previous frame says so
_LOCAL_BODY_M = 0.1  # the penetration check looks this far around the placed object for body vertices


def _even_subset(n: int, k: int) -> np.ndarray:
    """k indices spread evenly over range(n) (all of them when n <= k)."""
    return np.arange(n) if n <= k else np.linspace(0, n - 1, k).round().astype(np.int64)


def _check_inputs(
    body_vertices: np.ndarray,
    body_faces: np.ndarray,
    body_contact_probs: np.ndarray,
    object_vertices: np.ndarray,
    object_faces: np.ndarray,
    object_contact_probs: np.ndarray,
    object_box: np.ndarray,
    object_mask: np.ndarray | None,
    camera: CameraIntrinsics,
) -> None:
    for name, v, f, p in (
        ("body", body_vertices, body_faces, body_contact_probs),
        ("object", object_vertices, object_faces, object_contact_probs),
    ):
        validate_mesh(v, f, name, min_vertices=4)
        if p.shape != (len(v),) or not np.all(np.isfinite(p)):
            raise ValueError(
                f"{name} contact probabilities must be finite with shape ({len(v)},), got {p.shape}"
            )
    if (
        object_box.shape != (4,)
        or not np.all(np.isfinite(object_box))
        or np.any(object_box[2:] <= object_box[:2])
    ):
        raise ValueError(f"object box must be finite [x0, y0, x1, y1] with x1>x0, y1>y0, got {object_box}")
    if object_mask is not None:
        if object_mask.ndim != 2:
            raise ValueError(f"object mask must be an (H, W) array, got shape {object_mask.shape}")
        camera.check_image_size(object_mask.shape[1], object_mask.shape[0], "object mask")


def _mask_targets(
    mask: np.ndarray, box: np.ndarray, resolution: int, n_samples: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Distance map (pixels) to the mask in a window around the box, and some mask pixels; None if empty."""
    h, w = mask.shape
    pad = 0.25 * (box[2:] - box[:2])
    x0, y0 = np.maximum(np.floor(box[:2] - pad), 0).astype(int)
    x1, y1 = np.minimum(np.ceil(box[2:] + pad), [w, h]).astype(int)
    crop = mask[y0:y1, x0:x1]
    ys, xs = np.nonzero(crop)
    if len(xs) == 0:
        return None
    step = max(1, int(np.ceil(max(crop.shape) / resolution)))
    small = crop[::step, ::step]
    dist = distance_transform_edt(~small) * step
    window = np.array([x0, y0, x0 + small.shape[1] * step, y0 + small.shape[0] * step], np.float32)
    pick = _even_subset(len(xs), n_samples)
    samples = np.stack([xs[pick] + x0 + 0.5, ys[pick] + y0 + 0.5], axis=1)
    return dist.astype(np.float32), window, samples.astype(np.float32)


def _failed(reason: str, body_ids: np.ndarray, body_pts: np.ndarray, body_nrm: np.ndarray) -> Reconstruction:
    return Reconstruction(
        ok=False,
        object_pose=np.eye(4),
        object_scale=1.0,
        quality=0.0,
        reason=reason,
        body_contact_vertex_ids=body_ids,
        body_contact_points=body_pts,
        body_contact_normals=body_nrm,
    )


def reconstruct(
    body_vertices: np.ndarray,
    body_faces: np.ndarray,
    body_contact_probs: np.ndarray,
    object_mesh: MeshLike,
    object_contact_probs: np.ndarray,
    object_box: np.ndarray,
    camera: CameraIntrinsics,
    object_mask: np.ndarray | None = None,
    body_normals: np.ndarray | None = None,
    init: Reconstruction | None = None,
    object_size_known: bool | None = None,
    config: ReconstructConfig | None = None,
) -> Reconstruction:
    """Place `object_mesh` against the body so that the contact regions meet and the image agrees.

    body_vertices: (V, 3) posed body in the camera frame, metres; body_faces: (F, 3);
    body_contact_probs: (V,) in [0, 1]. object_mesh: metric mesh in its own frame (vertices (Vo, 3),
    metres); object_contact_probs: (Vo,). object_box: (4,) [x0, y0, x1, y1] pixels; object_mask:
    optional (H, W) bool. body_normals: optional (V, 3) outward unit normals (computed when None).
    init: the previous frame's result for this pair (video). After an ok frame its pose alone is
    refined (`warm_schedule`), with the full search only when that fails the checks; after a failed
    search the failure is carried over (with this frame's body contact, saying when the next search
    is) and the full search runs again every `full_search_every` frames.
    object_size_known: False when the mesh's metric size is a guess (the registry's generic boxes): its
    scale is then first set from the box at the contact's depth and bounded by `unknown_size_range`;
    None reads it from the mesh id (`generic:` meshes are of unknown size).
    Body contact vertices that project outside the object's box (grown by `contact_box_margin`) are
    ignored: the contact happens where the object is in the image.

    Returns a Reconstruction whose pose maps a mesh point p to `R @ (scale * p) + t`. When no body
    vertex is in contact, or the best pose fails the checks, `ok` is False and `reason` says why;
    such a result carries no object-side points.
    """
    cfg = config or ReconstructConfig()
    bv = np.asarray(body_vertices, dtype=np.float64)
    bf = np.asarray(body_faces, dtype=np.int64)
    bp = np.asarray(body_contact_probs, dtype=np.float64).reshape(-1)
    ov = np.asarray(object_mesh.vertices, dtype=np.float64)
    of = np.asarray(object_mesh.faces, dtype=np.int64)
    op = np.asarray(object_contact_probs, dtype=np.float64).reshape(-1)
    box = np.asarray(object_box, dtype=np.float64).reshape(-1)
    mask = None if object_mask is None else np.asarray(object_mask, dtype=bool)
    _check_inputs(bv, bf, bp, ov, of, op, box, mask, camera)

    if body_normals is None:
        body_normals = vertex_normals(bv, bf)
    bn = np.asarray(body_normals, dtype=np.float64)
    if bn.shape != bv.shape:
        raise ValueError(f"body normals must have the body vertices' shape {bv.shape}, got {bn.shape}")
    thr = cfg.contact_threshold
    body_ids = np.flatnonzero(bp >= thr)
    body_pts, body_nrm = bv[body_ids].astype(np.float32), bn[body_ids].astype(np.float32)
    if len(body_ids) == 0:
        return _failed(
            f"no body vertex reaches contact probability {thr:.2f}: nothing to place the object against",
            body_ids,
            body_pts,
            body_nrm,
        )
    grown = box + cfg.contact_box_margin * np.tile(box[2:] - box[:2], 2) * [-1, -1, 1, 1]
    uv = camera.project(bv[body_ids])
    at_object = body_ids[np.all((uv >= grown[:2]) & (uv <= grown[2:]), axis=1) & (bv[body_ids, 2] > 0)]
    if len(at_object) == 0:
        return _failed(
            f"none of the {len(body_ids)} body contact vertices projects into the object's box "
            f"{box.round().tolist()}: the body fit and the detection disagree about where the contact is",
            body_ids,
            body_pts,
            body_nrm,
        )

    tracked = init is not None and (init.ok or init.frames_since_search is not None)  # has a pose
    if tracked and not init.ok and init.frames_since_search + 1 < cfg.full_search_every:
        # Video: this pair failed its checks in a recent frame and is searched again only every
        # `full_search_every` frames (a failed pose publishes nothing; searching costs ~20 ms a pair).
        reason = init.reason.split(_NEXT_SEARCH)[0]
        left = cfg.full_search_every - init.frames_since_search - 1
        result = _failed(f"{reason}{_NEXT_SEARCH}{left} frame(s)", body_ids, body_pts, body_nrm)
        result.object_pose, result.object_scale = init.object_pose, init.object_scale
        result.frames_since_search = init.frames_since_search + 1
        return result

    mesh_data = _mesh_data(object_mesh, ov, of, max(cfg.grasp_samples, 64))
    samples, sample_normals = mesh_data.samples, mesh_data.sample_normals
    obj_ids = np.flatnonzero(op >= thr)
    obj_vertex_normals = mesh_data.vertex_normals

    # Contact regions (weighted by probability) and the body surface around the body's contact.
    cb = at_object[_even_subset(len(at_object), cfg.contact_points)]
    co = obj_ids[_even_subset(len(obj_ids), cfg.contact_points)]
    body_c_w = bp[cb]
    if len(co):
        obj_c, obj_c_w = ov[co], op[co]
    else:  # no object contact known: any object surface point may touch the body
        obj_c, obj_c_w = samples[_even_subset(len(samples), cfg.contact_points)], None
    centre_b = (bv[cb] * body_c_w[:, None]).sum(0) / body_c_w.sum()
    extent = float(np.linalg.norm(ov.max(0) - ov.min(0)))
    if object_size_known is None:
        object_size_known = not str(getattr(object_mesh, "mesh_id", "")).startswith("generic:")
    if object_size_known:
        scale_prior, scale_range = 1.0, cfg.scale_range
    else:  # the mesh's size is a guess: take the scale that fills the box at the contact's depth
        box_m = float(np.max(box[2:] - box[:2])) * centre_b[2] / camera.fx
        scale_prior = box_m / float(np.max(ov.max(0) - ov.min(0)))
        scale_range = cfg.unknown_size_range
    scale_range = (scale_prior * scale_range[0], scale_prior * scale_range[1])
    near = np.flatnonzero(np.linalg.norm(bv - centre_b, axis=1) < extent * scale_range[1] + 0.1)

    probes = _even_subset(len(near), cfg.body_points)

    def t32(a: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(a, dtype=np.float32)

    # The projected box of a mesh is that of its convex hull's vertices; samples fill the silhouette.
    hull = mesh_data.hull
    sil = np.concatenate(
        [hull[_even_subset(len(hull), cfg.silhouette_points)], samples[: cfg.silhouette_points]]
    )
    pen = _even_subset(len(samples), 128)
    targets = PoseTargets(
        camera=camera,
        box=t32(box),
        silhouette_points=t32(sil),
        surface_points=t32(samples[pen]),
        surface_normals=t32(sample_normals[pen]),
        object_contact_points=t32(obj_c),
        object_contact_weights=t32(obj_c_w if obj_c_w is not None else np.zeros(len(obj_c))),
        body_contact_points=t32(bv[cb]),
        body_contact_weights=t32(body_c_w),
        body_points=t32(bv[near[probes]]),
        body_normals=t32(bn[near[probes]]),
    )
    if mask is not None:
        mask_targets = _mask_targets(mask, box, cfg.mask_resolution, cfg.mask_samples)
        if mask_targets is not None:
            targets.mask_distance, targets.mask_window, targets.mask_samples = mask_targets

    def solve(R0: np.ndarray, t0: np.ndarray, s0: np.ndarray, schedule: tuple[Stage, ...]) -> Reconstruction:
        fit = fit_object_pose(
            targets, R0, t0, scale_prior=scale_prior, scale_range=scale_range, s0=s0, weights=cfg.weights,
            schedule=schedule,
        )
        return _checked_result(
            fit, cfg, camera, box, bv, bn, bv[cb], ov, mesh_data, obj_ids, body_ids, body_pts, body_nrm
        )

    previous = (
        (init.object_pose[None, :3, :3], init.object_pose[None, :3, 3], np.array([init.object_scale]))
        if tracked
        else (np.zeros((0, 3, 3)), np.zeros((0, 3)), np.zeros(0))
    )
    if tracked and init.ok:  # video: refine the previous frame's pose alone
        result = solve(*previous, cfg.warm_schedule)
        result.frames_since_search = (init.frames_since_search or 0) + 1
        if result.ok:
            return result
    # Starting poses: rotations that make the contact surfaces face each other, the cube group, and the
    # previous frame's pose; each translated so that the object's contact centroid sits on the body's.
    n_obj = (obj_vertex_normals[co] * obj_c_w[:, None]).sum(0) if len(co) else None
    R0 = initial_rotations(n_obj, (bn[cb] * body_c_w[:, None]).sum(0), cfg.contact_spins)
    centre_o = obj_c.mean(0) if obj_c_w is None else (obj_c * obj_c_w[:, None]).sum(0) / obj_c_w.sum()
    t0 = centre_b[None] - scale_prior * R0 @ centre_o
    if obj_c_w is None:  # keep the object outside the body: push it out along the contact normal
        n = bn[cb].mean(0)
        t0 = t0 + 0.5 * scale_prior * extent * n / max(np.linalg.norm(n), 1e-9)
    s0 = np.full(len(R0), scale_prior)
    R0, t0, s0 = (np.concatenate([p, a]) for p, a in zip(previous, (R0, t0, s0), strict=True))
    result = solve(R0, t0, s0, cfg.schedule)
    result.frames_since_search = 0
    return result


def _checked_result(
    fit: PoseFit,
    cfg: ReconstructConfig,
    camera: CameraIntrinsics,
    box: np.ndarray,
    bv: np.ndarray,
    bn: np.ndarray,
    body_contact: np.ndarray,
    ov: np.ndarray,
    mesh: _MeshData,
    obj_ids: np.ndarray,
    body_ids: np.ndarray,
    body_pts: np.ndarray,
    body_nrm: np.ndarray,
) -> Reconstruction:
    """Apply the fitted pose, run the checks, score the pair and fill the result."""
    R, t, s = fit.rotation, fit.translation, fit.scale
    placed_s = s * mesh.samples @ R.T + t
    placed_hull = s * mesh.hull @ R.T + t

    uv = camera.project(placed_hull)
    iou = float(box_iou(np.concatenate([uv.min(0), uv.max(0)]), box)[0, 0])
    # Body contact into the mesh frame (p = R^T (x - t) / s), where the surface's KD-tree is kept.
    gap = s * float(np.percentile(mesh.surface.query((body_contact - t) @ R / s)[0], 25))
    # Depth of the object's surface inside the body, from the nearest body vertex's tangent plane; only
    # the body around the placed object can be that vertex for any point within _LOCAL_BODY_M of it.
    lo, hi = placed_s.min(0) - _LOCAL_BODY_M, placed_s.max(0) + _LOCAL_BODY_M
    local = np.flatnonzero(np.all((bv >= lo) & (bv <= hi), axis=1))
    inside = np.zeros(len(placed_s))
    if len(local):
        dist, nn = cKDTree(bv[local]).query(placed_s)
        inside = -np.einsum("ij,ij->i", placed_s - bv[local[nn]], bn[local[nn]])
        inside[dist > _LOCAL_BODY_M] = 0.0  # nearest body vertex may lie outside the box: not inside
    penetration = float(np.percentile(np.clip(inside, 0, None), 90))
    min_depth = float(placed_hull[:, 2].min())

    failures = []
    if gap > cfg.max_contact_gap_m:
        failures.append(
            f"contact regions {gap * 100:.1f} cm apart (limit {cfg.max_contact_gap_m * 100:.1f} cm)"
        )
    if iou < cfg.min_box_iou:
        failures.append(f"projected object matches its box with IoU {iou:.2f} (needs {cfg.min_box_iou:.2f})")
    if penetration > cfg.max_penetration_m:
        failures.append(
            f"object {penetration * 100:.1f} cm inside the body (limit {cfg.max_penetration_m * 100:.1f} cm)"
        )
    if min_depth < cfg.min_depth_m:
        failures.append(
            f"object reaches {min_depth:.2f} m from the camera plane (needs {cfg.min_depth_m:.2f} m)"
        )
    quality = iou * np.exp(-gap / cfg.max_contact_gap_m) * np.exp(-penetration / cfg.max_penetration_m)
    pose = np.eye(4)
    pose[:3, :3], pose[:3, 3] = R, t
    if failures:
        result = _failed(
            "reconstruction failed its checks: " + "; ".join(failures), body_ids, body_pts, body_nrm
        )
        result.object_pose, result.object_scale, result.quality = pose, s, float(quality)
        return result

    placed_contact = s * ov[obj_ids] @ R.T + t
    contact_pts = np.concatenate([body_contact, placed_contact])
    clearance = cKDTree(contact_pts).query(placed_s[: cfg.grasp_samples])[0]
    grasp = np.flatnonzero(clearance >= cfg.grasp_clearance_m)
    return Reconstruction(
        ok=True,
        object_pose=pose,
        object_scale=s,
        quality=float(quality),
        object_contact_vertex_ids=obj_ids,
        object_contact_points=placed_contact.astype(np.float32),
        object_contact_normals=(mesh.vertex_normals[obj_ids] @ R.T).astype(np.float32),
        body_contact_vertex_ids=body_ids,
        body_contact_points=body_pts,
        body_contact_normals=body_nrm,
        grasp_points=placed_s[grasp].astype(np.float32),
        grasp_normals=(mesh.sample_normals[grasp] @ R.T).astype(np.float32),
    )
