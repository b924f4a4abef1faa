"""Object pose optimisation: rotation, translation and bounded scale of a rigid object mesh.

The object is placed so that its contact region meets the body's contact region (contact ICP, as in
PHOSA / InteractVLM's joint fitting), its projection agrees with the detector's 2D box and mask, it
does not interpenetrate the body and its size stays near the prior. Every hypothesis (one per initial
rotation) is optimised at once, as one batch, by Levenberg-Marquardt on its 7 pose parameters
(rotation increment, translation, log-scale): nearest-neighbour correspondences are searched afresh at
every step (ICP) and the robust / L1 terms enter through iteratively reweighted least squares, so a
handful of steps converge where first-order optimisers need dozens.

Frames and units: camera optical frame (x right, y down, z forward), metres, pixels for image terms.
A mesh point p lands at `R @ (scale * p) + t`. Arrays are float32 numpy unless said otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from ivlm_core.types import CameraIntrinsics

_MIN_DEPTH_M = 0.05  # projection guard: points closer than this to the camera plane are clamped
_NPARAM = 7  # rotation increment (3, radians), translation (3, metres), log-scale (1)
# Floors of the reweighting's residual magnitudes, so that a residual near zero gets a finite weight.
_L1_FLOOR = 0.02  # box / mask residuals, in units of the box diagonal / 10
_DEPTH_FLOOR_M = 0.002  # interpenetration depths


@dataclass
class PoseTargets:
    """What the pose must agree with; float32 arrays.

    camera: the image's intrinsics. box: (4,) [x0, y0, x1, y1] pixels.
    silhouette_points: (Ns, 3) object mesh frame, metres; the points whose projection forms the silhouette.
    surface_points / surface_normals: (Np, 3) object mesh frame; surface samples for interpenetration.
    object_contact_points / object_contact_weights: (Nco, 3), (Nco,); the object's contact region, mesh frame.
    All-zero object weights mean no object contact is known: only body -> object distances count.
    body_contact_points / body_contact_weights: (Ncb, 3), (Ncb,); the body's contact region, camera frame.
    body_points / body_normals: (Nb, 3); body surface near the contact, camera frame, outward unit normals.
    mask_distance: (h, w) distance in pixels to the object mask, over `mask_window` = [x0, y0, x1, y1]
    of the image; None without a mask. mask_samples: (M, 2) pixel coordinates of mask pixels.
    """

    camera: CameraIntrinsics
    box: np.ndarray
    silhouette_points: np.ndarray
    surface_points: np.ndarray
    surface_normals: np.ndarray
    object_contact_points: np.ndarray
    object_contact_weights: np.ndarray
    body_contact_points: np.ndarray
    body_contact_weights: np.ndarray
    body_points: np.ndarray
    body_normals: np.ndarray
    mask_distance: np.ndarray | None = None
    mask_window: np.ndarray | None = None
    mask_samples: np.ndarray | None = None


@dataclass(frozen=True)
class PoseWeights:
    """Loss weights; every term is normalised so that 1.0 means 'clearly wrong'."""

    box: float = 1.0  # box edges, in units of the box diagonal / 10
    mask: float = 1.0  # silhouette vs mask, same units
    contact: float = 1.0  # robust contact-region distance: 1 at `contact_scale_m`, at most 2
    penetration: float = 1.0  # interpenetration depth, in units of `contact_scale_m`
    size: float = 0.2  # log-scale away from the prior, in units of log(scale_max)
    contact_scale_m: float = 0.03


@dataclass
class PoseFit:
    """Best pose found; numpy float64, camera frame."""

    rotation: np.ndarray  # (3, 3)
    translation: np.ndarray  # (3,) metres
    scale: float
    loss: float
    terms: dict[str, float]  # the best hypothesis' individual loss terms


@dataclass(frozen=True)
class Stage:
    """One step of the schedule: keep the `keep` lowest-loss hypotheses, then run `iterations`
    Levenberg-Marquardt steps on them."""

    keep: int
    iterations: int
    penetration: bool  # include the interpenetration term (the costly one)


DEFAULT_SCHEDULE: tuple[Stage, ...] = (
    Stage(keep=12, iterations=10, penetration=False),
    Stage(keep=3, iterations=6, penetration=True),
)


def initial_rotations(
    object_normal: np.ndarray | None = None, body_normal: np.ndarray | None = None, spins: int = 12
) -> np.ndarray:
    """Starting rotations (K, 3, 3): the 24 of the cube group (any rotation is within 62.8 degrees of one),
    plus, given the contact regions' mean normals, `spins` rotations that turn the object's contact normal
    (mesh frame) against the body's (camera frame), spun about it: the surfaces then face each other.
    """
    group = Rotation.create_group("O").as_matrix()
    if object_normal is None or body_normal is None:
        return group
    n_o, n_b = (v / max(float(np.linalg.norm(v)), 1e-9) for v in (object_normal, body_normal))
    align, _ = Rotation.align_vectors(-n_b[None], n_o[None])
    spin = Rotation.from_rotvec(np.linspace(0, 2 * np.pi, spins, endpoint=False)[:, None] * n_b[None])
    return np.concatenate([(spin * align).as_matrix(), group])


class _Normal:
    """Accumulates the normal equations of weighted least squares over the K hypotheses.

    Each residual r (K, M) with weight w (K, M) and Jacobian J (K, M, 7) adds `w r^2 / 2` to the
    quadratic model, `sum w r J` to the gradient and `sum w J^T J` to the Gauss-Newton Hessian.
    """

    def __init__(self, k: int) -> None:
        self.H = np.zeros((k, _NPARAM, _NPARAM), np.float32)
        self.g = np.zeros((k, _NPARAM), np.float32)

    def add(self, r: np.ndarray, w: np.ndarray, J: np.ndarray) -> None:
        wJt = np.swapaxes(w[..., None] * J, 1, 2)  # (K, 7, M)
        self.H += wJt @ J
        self.g += (wJt @ r[..., None])[..., 0]


def _point_jacobian(q: np.ndarray) -> np.ndarray:
    """(K, N, 3, 7): derivative of a placed point X = R s p + t, q = X - t, with respect to a rotation
    increment w (X -> exp(w) q + t), a translation step and a log-scale step."""
    J = np.zeros((*q.shape, _NPARAM), np.float32)
    x, y, z = q[..., 0], q[..., 1], q[..., 2]
    J[..., 0, 1], J[..., 0, 2] = z, -y
    J[..., 1, 0], J[..., 1, 2] = -z, x
    J[..., 2, 0], J[..., 2, 1] = y, -x
    J[..., 0, 3] = J[..., 1, 4] = J[..., 2, 5] = 1.0
    J[..., 6] = q
    return J


def _vector_residuals(diff: np.ndarray, J: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, ...]:
    """Flatten (K, N, 3) vector residuals with Jacobians (K, N, 3, 7) and weights (K, N) to scalar rows."""
    k = diff.shape[0]
    return diff.reshape(k, -1), np.repeat(w, 3, axis=1), J.reshape(k, -1, _NPARAM)


def _nearest(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Index into b (K or 1, M, D) of the nearest row for each row of a (K, N, D): (K, N)."""
    d2 = (b * b).sum(-1)[:, None, :] - 2.0 * np.matmul(a, np.swapaxes(b, 1, 2))
    return d2.argmin(-1)


def _nearest_both(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest rows both ways from one distance matrix: into b (K or 1, M, D) for each row of a
    (K or 1, N, D), (K, N); and into a for each row of b, (K, M)."""
    cross = -2.0 * np.matmul(a, np.swapaxes(b, 1, 2))  # (K, N, M)
    a_to_b = (cross + (b * b).sum(-1)[:, None, :]).argmin(-1)
    b_to_a = (cross + (a * a).sum(-1)[:, :, None]).argmin(1)
    return a_to_b, b_to_a


def _take(b: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Rows idx (K, N) of b (K or 1, M, D): (K, N, D)."""
    if b.shape[0] == 1:
        return b[0][idx]
    return b[np.arange(len(b))[:, None], idx]


def _project(camera: CameraIntrinsics, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(..., 3) camera points -> (..., 2) pixels and their Jacobian (..., 2, 3)."""
    uv = camera.project(X, _MIN_DEPTH_M)
    z = np.maximum(X[..., 2], _MIN_DEPTH_M)
    fx, fy = camera.fx, camera.fy
    dproj = np.zeros((*X.shape[:-1], 2, 3), np.float32)
    dproj[..., 0, 0] = fx / z
    dproj[..., 1, 1] = fy / z
    dproj[..., 0, 2] = -fx * X[..., 0] / z**2
    dproj[..., 1, 2] = -fy * X[..., 1] / z**2
    return uv, dproj


def _row_jacobian(a: np.ndarray, q: np.ndarray) -> np.ndarray:
    """(..., 7): derivative of a . X for fixed rows a (..., 3) at placed points X with q = X - t
    (see _point_jacobian), without forming the (..., 3, 7) point Jacobians."""
    q, a = np.broadcast_arrays(q, a)
    out = np.empty((*q.shape[:-1], _NPARAM), np.float32)
    out[..., 0] = q[..., 1] * a[..., 2] - q[..., 2] * a[..., 1]  # q x a
    out[..., 1] = q[..., 2] * a[..., 0] - q[..., 0] * a[..., 2]
    out[..., 2] = q[..., 0] * a[..., 1] - q[..., 1] * a[..., 0]
    out[..., 3:6] = a
    out[..., 6] = (a * q).sum(-1)
    return out


def _sample_map(image: np.ndarray, window: np.ndarray, uv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bilinear value (...,) and gradient (..., 2) per pixel of `image` (h, w) spread over `window`, at uv."""
    h, w = image.shape
    px = (uv - window[:2]) / (window[2:] - window[:2]) * [w, h] - 0.5  # pixel-centre coordinates
    clipped = np.clip(px, 0.0, [w - 1.0001, h - 1.0001])  # border padding
    inside = clipped == px  # (..., 2): beyond the border the value is constant along that axis
    px = clipped.astype(np.float32)
    i0 = px.astype(np.int64)
    f = px - i0
    x0, y0 = i0[..., 0], i0[..., 1]
    a, b = image[y0, x0], image[y0, x0 + 1]
    c, d = image[y0 + 1, x0], image[y0 + 1, x0 + 1]
    fx, fy = f[..., 0], f[..., 1]
    value = (a * (1 - fx) + b * fx) * (1 - fy) + (c * (1 - fx) + d * fx) * fy
    du = ((b - a) * (1 - fy) + (d - c) * fy) * (w / (window[2] - window[0]))
    dv = ((c - a) * (1 - fx) + (d - b) * fx) * (h / (window[3] - window[1]))
    return value, np.stack([du, dv], axis=-1) * inside


def pose_terms(
    R: np.ndarray,
    t: np.ndarray,
    log_s: np.ndarray,
    targets: PoseTargets,
    weights: PoseWeights,
    scale_prior: float,
    log_scale_bound: float,
    penetration: bool,
    normal: _Normal | None = None,
) -> dict[str, np.ndarray]:
    """Per-hypothesis loss terms, each (K,). R: (K, 3, 3), t: (K, 3) metres, log_s: (K,).

    Correspondences are the nearest neighbours at this pose. Given `normal`, the terms' reweighted
    least-squares model (gradient exact at this pose) is added to it.
    """
    s = np.exp(log_s)[:, None, None]
    k = len(R)

    def place(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        q = s * (p @ np.swapaxes(R, 1, 2))
        return q + t[:, None, :], q

    box = targets.box
    norm = 10.0 / float(np.linalg.norm(box[2:] - box[:2]))  # pixels -> units of the box diagonal / 10
    X, q = place(targets.silhouette_points)
    uv, dproj = _project(targets.camera, X)  # (K, Ns, 2), (K, Ns, 2, 3)
    lo, hi = uv.argmin(1), uv.argmax(1)  # (K, 2) extreme points per axis
    edge_ids = np.concatenate([lo, hi], axis=1)  # (K, 4): x0, y0, x1, y1
    axis = np.array([0, 1, 0, 1])
    rows = np.arange(k)[:, None]
    r_box = (uv[rows, edge_ids, axis] - box) * norm  # (K, 4)
    terms = {"box": weights.box * np.abs(r_box).mean(-1)}
    if normal is not None:
        J_uv = _row_jacobian(dproj, q[:, :, None, :])  # (K, Ns, 2, 7)
        J_box = J_uv[rows, edge_ids, axis] * norm
        normal.add(r_box, weights.box / 4 / np.maximum(np.abs(r_box), _L1_FLOOR), J_box)

    if targets.mask_distance is not None:
        dist, grad = _sample_map(targets.mask_distance, targets.mask_window, uv)
        idx = _nearest(targets.mask_samples[None].astype(np.float32), uv)  # (K, M)
        cover = _take(uv, idx) - targets.mask_samples  # (K, M, 2)
        cover_d = np.linalg.norm(cover, axis=-1)
        terms["mask"] = weights.mask * norm * (dist.mean(-1) + cover_d.mean(-1))
        if normal is not None:
            r = dist * norm
            J = np.einsum("kni,knip->knp", grad, J_uv) * norm
            normal.add(r, weights.mask / r.shape[1] / np.maximum(r, _L1_FLOOR), J)
            r = cover * norm
            w = weights.mask / cover.shape[1] / np.maximum(cover_d * norm, _L1_FLOOR)
            J = _take(J_uv.reshape(k, -1, 2 * _NPARAM), idx).reshape(k, -1, 2, _NPARAM) * norm
            normal.add(r.reshape(k, -1), np.repeat(w, 2, axis=1), J.reshape(k, -1, _NPARAM))

    cs = weights.contact_scale_m
    obj_c, q_c = place(targets.object_contact_points)  # (K, Nco, 3)
    body_c = targets.body_contact_points
    wo, wb = targets.object_contact_weights, targets.body_contact_weights
    Jc = _point_jacobian(q_c) if normal is not None else None

    def robust(diff: np.ndarray, point_w: np.ndarray, J: np.ndarray | None) -> np.ndarray:
        # Geman-McClure: quadratic within `cs`, saturating beyond, so that a broad contact region (a
        # whole hand) can hold a small object without every vertex having to touch it.
        u2 = (diff * diff).sum(-1) / cs**2
        if normal is not None:
            w = weights.contact * point_w * 4.0 / (cs**2 * (1.0 + u2) ** 2)
            normal.add(*_vector_residuals(diff, J, w))
        return (2.0 * u2 / (1.0 + u2) * point_w).sum(-1)

    idx, idx_b = _nearest_both(obj_c, body_c[None])
    wo_n = wo / max(float(wo.sum()), 1e-9)
    to_body = robust(obj_c - body_c[idx], np.broadcast_to(wo_n, idx.shape), Jc)
    idx = idx_b
    Jb = None if Jc is None else _take(Jc.reshape(k, -1, 3 * _NPARAM), idx).reshape(k, -1, 3, _NPARAM)
    to_obj = robust(_take(obj_c, idx) - body_c, np.broadcast_to(wb / wb.sum(), idx.shape), Jb)
    terms["contact"] = weights.contact * (to_body + to_obj)

    if penetration:
        pts, q_p = place(targets.surface_points)  # (K, Np, 3)
        bp, bn = targets.body_points, targets.body_normals
        idx, idx_o = _nearest_both(pts, bp[None])  # (K, Np) into the body, (K, Nb) into the object
        signed = ((pts - bp[idx]) * bn[idx]).sum(-1)  # < 0: object point inside the body
        depth_in_body = np.maximum(-signed, 0.0)
        nrm = targets.surface_normals @ np.swapaxes(R, 1, 2)
        near, near_n = _take(pts, idx_o), _take(nrm, idx_o)
        signed_o = ((bp[None] - near) * near_n).sum(-1)  # < 0: body point inside the object
        depth_in_obj = np.maximum(-signed_o, 0.0)
        c = weights.penetration / cs
        terms["penetration"] = c * (depth_in_body.mean(-1) + depth_in_obj.mean(-1))
        if normal is not None:
            J = _row_jacobian(bn[idx], q_p)
            w = (signed < 0) * c / signed.shape[1] / np.maximum(depth_in_body, _DEPTH_FLOOR_M)
            normal.add(signed, w, J)
            # signed_o = (b - X) . (R n): the point X and the normal both turn with the object.
            q_near = near - t[:, None, :]
            J = np.empty((*signed_o.shape, _NPARAM), np.float32)
            J[..., :3] = -np.cross(q_near, near_n) + np.cross(near_n, bp[None] - near)
            J[..., 3:6] = -near_n
            J[..., 6] = -(q_near * near_n).sum(-1)
            w = (signed_o < 0) * c / signed_o.shape[1] / np.maximum(depth_in_obj, _DEPTH_FLOOR_M)
            normal.add(signed_o, w, J)

    r_size = (log_s - np.log(scale_prior)) / log_scale_bound
    terms["size"] = weights.size * r_size**2
    if normal is not None:
        J = np.zeros((k, 1, _NPARAM), np.float32)
        J[..., 6] = 1.0 / log_scale_bound
        normal.add(r_size[:, None], np.full((k, 1), 2.0 * weights.size, np.float32), J)
    return terms


def _rodrigues(w: np.ndarray) -> np.ndarray:
    """(K, 3) rotation vectors -> (K, 3, 3) matrices."""
    return Rotation.from_rotvec(w.astype(np.float64)).as_matrix().astype(np.float32)


@dataclass
class _State:
    """K hypotheses with their loss and the least-squares model at that pose."""

    R: np.ndarray  # (K, 3, 3)
    t: np.ndarray  # (K, 3)
    log_s: np.ndarray  # (K,)
    loss: np.ndarray  # (K,)
    H: np.ndarray  # (K, 7, 7)
    g: np.ndarray  # (K, 7)
    terms: dict[str, np.ndarray]  # the loss terms, each (K,)

    @staticmethod
    def choose(where: np.ndarray, a: _State, b: _State) -> _State:
        """Per hypothesis, a where `where` (K,) holds, else b."""

        def pick(x: np.ndarray, y: np.ndarray) -> np.ndarray:
            return np.where(where.reshape((-1,) + (1,) * (x.ndim - 1)), x, y)

        fields = ("R", "t", "log_s", "loss", "H", "g")
        terms = {name: pick(a.terms[name], b.terms[name]) for name in a.terms}
        return _State(*(pick(getattr(a, f), getattr(b, f)) for f in fields), terms)


def fit_object_pose(
    targets: PoseTargets,
    R0: np.ndarray,
    t0: np.ndarray,
    scale_prior: float,
    scale_range: tuple[float, float],
    weights: PoseWeights,
    schedule: tuple[Stage, ...] = DEFAULT_SCHEDULE,
    s0: np.ndarray | None = None,
) -> PoseFit:
    """Optimise hypotheses (R0: (K, 3, 3), t0: (K, 3) metres, s0: (K,) scales or None for the prior)
    through `schedule` and return the best.

    Every stage first ranks the surviving hypotheses by its own objective and keeps the best few, so
    the cheap terms screen the many starting rotations and the full objective polishes the last ones
    (a stage that keeps them all skips the ranking: one warm-started hypothesis costs only its steps).
    A Levenberg-Marquardt step is kept only where it lowers a hypothesis' loss; elsewhere the damping
    grows and the step is tried again shorter.
    """
    log_scale_bound = max(abs(float(np.log(v / scale_prior))) for v in scale_range)
    log_lo, log_hi = (float(np.log(v)) for v in scale_range)
    s0 = np.full(len(R0), scale_prior) if s0 is None else np.asarray(s0)
    if not len(R0) == len(t0) == len(s0):
        raise ValueError(f"one R0, t0 and s0 per hypothesis, got {len(R0)}, {len(t0)}, {len(s0)}")
    R = np.asarray(R0, np.float32)
    t = np.asarray(t0, np.float32)
    log_s = np.log(np.clip(s0, *scale_range)).astype(np.float32)

    def evaluate(R: np.ndarray, t: np.ndarray, log_s: np.ndarray, penetration: bool) -> _State:
        normal = _Normal(len(R))
        terms = pose_terms(R, t, log_s, targets, weights, scale_prior, log_scale_bound, penetration, normal)
        return _State(R, t, log_s, sum(terms.values()), normal.H, normal.g, terms)

    eye = np.eye(_NPARAM, dtype=np.float32)
    state = None
    for stage in schedule:
        keep = slice(None)
        if len(R) > stage.keep:
            terms = pose_terms(R, t, log_s, targets, weights, scale_prior, log_scale_bound, stage.penetration)
            keep = np.argsort(sum(terms.values()))[: stage.keep]
        state = evaluate(R[keep], t[keep], log_s[keep], stage.penetration)
        damping = np.full(len(state.R), 1e-3, np.float32)
        for _ in range(stage.iterations):
            diag = np.einsum("kii->ki", state.H)[:, :, None] * eye
            step = -np.linalg.solve(
                state.H + damping[:, None, None] * (diag + 1e-6 * eye), state.g[..., None]
            )[..., 0]
            trial = evaluate(
                _rodrigues(step[:, :3]) @ state.R,
                state.t + step[:, 3:6],
                np.clip(state.log_s + step[:, 6], log_lo, log_hi),
                stage.penetration,
            )
            better = trial.loss < state.loss
            state = _State.choose(better, trial, state)
            damping = np.where(better, damping / 3.0, damping * 8.0).astype(np.float32)
        R, t, log_s = state.R, state.t, state.log_s
    if state is None:  # empty schedule: the starting poses as they are
        terms = pose_terms(R, t, log_s, targets, weights, scale_prior, log_scale_bound, True)
    else:
        terms = state.terms
    total = sum(terms.values())
    i = int(np.argmin(total))
    return PoseFit(
        rotation=Rotation.from_matrix(R[i].astype(np.float64)).as_matrix(),  # re-orthonormalised
        translation=t[i].astype(np.float64),
        scale=float(np.exp(log_s[i])),
        loss=float(total[i]),
        terms={name: float(v[i]) for name, v in terms.items()},
    )
