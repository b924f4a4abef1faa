"""Object pose optimisation: rotation, translation and bounded scale of a rigid object mesh.

The object is placed so that its contact region meets the body's contact region (contact ICP, as in
PHOSA / InteractVLM's joint fitting), its projection agrees with the detector's 2D box and mask, it
does not interpenetrate the body and its size stays near the prior. Every hypothesis (one per initial
rotation) is optimised at once, as one batch, with Adam; the few best then get the full objective.

Frames and units: camera optical frame (x right, y down, z forward), metres, pixels for image terms.
A mesh point p lands at `R @ (scale * p) + t`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.spatial.transform import Rotation

_MIN_DEPTH_M = 0.05  # projection guard: points closer than this to the camera plane are clamped


@dataclass
class PoseTargets:
    """What the pose must agree with; tensors are float32 on the CPU.

    K: (3, 3) intrinsics. box: (4,) [x0, y0, x1, y1] pixels.
    silhouette_points: (Ns, 3) object mesh frame, metres; the points whose projection forms the silhouette.
    surface_points / surface_normals: (Np, 3) object mesh frame; surface samples for interpenetration.
    object_contact_points / object_contact_weights: (Nco, 3), (Nco,); the object's contact region, mesh frame.
    All-zero object weights mean no object contact is known: only body -> object distances count.
    body_contact_points / body_contact_weights: (Ncb, 3), (Ncb,); the body's contact region, camera frame.
    body_points / body_normals: (Nb, 3); body surface near the contact, camera frame, outward unit normals.
    mask_distance: (1, 1, h, w) distance in pixels to the object mask, over `mask_window` = [x0, y0, x1, y1]
    of the image; None without a mask. mask_samples: (M, 2) pixel coordinates of mask pixels.
    """

    K: torch.Tensor
    box: torch.Tensor
    silhouette_points: torch.Tensor
    surface_points: torch.Tensor
    surface_normals: torch.Tensor
    object_contact_points: torch.Tensor
    object_contact_weights: torch.Tensor
    body_contact_points: torch.Tensor
    body_contact_weights: torch.Tensor
    body_points: torch.Tensor
    body_normals: torch.Tensor
    mask_distance: torch.Tensor | None = None
    mask_window: torch.Tensor | None = None
    mask_samples: torch.Tensor | None = None


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
    """Best pose found; numpy, camera frame."""

    rotation: np.ndarray  # (3, 3)
    translation: np.ndarray  # (3,) metres
    scale: float
    loss: float
    terms: dict[str, float]  # the best hypothesis' individual loss terms


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


def _rotation_from_6d(d6: torch.Tensor) -> torch.Tensor:
    """(K, 6) -> (K, 3, 3) by Gram-Schmidt on the first two columns (Zhou et al. 2019; smooth everywhere)."""
    a, b = d6[:, :3], d6[:, 3:]
    x = torch.nn.functional.normalize(a, dim=-1)
    b = b - (x * b).sum(-1, keepdim=True) * x
    y = torch.nn.functional.normalize(b, dim=-1)
    z = torch.cross(x, y, dim=-1)
    return torch.stack([x, y, z], dim=-1)


def _project(K: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
    """(..., 3) camera points -> (..., 2) pixels."""
    z = X[..., 2].clamp(min=_MIN_DEPTH_M)
    return torch.stack([K[0, 0] * X[..., 0] / z + K[0, 2], K[1, 1] * X[..., 1] / z + K[1, 2]], dim=-1)


class Matches:
    """Nearest-neighbour correspondences between point sets, kept between refreshes.

    As in ICP, correspondences are found without gradient and the distances to them are differentiated;
    the optimiser re-associates every few steps (`refresh`), which saves most of the search cost.
    """

    def __init__(self) -> None:
        self.refresh = True
        self._index: dict[str, torch.Tensor] = {}

    def index(self, key: str, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Index into b (K, M, D) of the nearest row for each row of a (K, N, D): (K, N)."""
        if self.refresh or key not in self._index:
            with torch.no_grad():
                self._index[key] = torch.cdist(a, b).argmin(dim=-1)
        return self._index[key]

    def distance(self, key: str, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Distance from each row of a (K, N, D) to its matched row of b (K or 1, M, D): (K, N)."""
        b = b.expand(a.shape[0], -1, -1)
        idx = self.index(key, a, b)
        return torch.linalg.norm(a - b.gather(1, idx[..., None].expand(-1, -1, a.shape[-1])), dim=-1)


class _Hypotheses(torch.nn.Module):
    """K object poses being optimised together: 6D rotation, translation, bounded log-scale."""

    def __init__(self, R0: np.ndarray, t0: np.ndarray, s0: np.ndarray, scale_range: tuple[float, float]):
        super().__init__()
        self.log_lo, self.log_hi = (float(np.log(v)) for v in scale_range)
        s0 = np.clip(s0, *scale_range)
        frac = np.clip((np.log(s0) - self.log_lo) / (self.log_hi - self.log_lo), 1e-3, 1 - 1e-3)
        self.d6 = torch.nn.Parameter(torch.as_tensor(np.concatenate([R0[:, :, 0], R0[:, :, 1]], 1)).float())
        self.t = torch.nn.Parameter(torch.as_tensor(t0).float())
        self.u = torch.nn.Parameter(torch.as_tensor(np.log(frac / (1 - frac))).float())

    def forward(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        R = _rotation_from_6d(self.d6)
        log_s = self.log_lo + (self.log_hi - self.log_lo) * torch.sigmoid(self.u)
        return R, self.t, log_s

    def optimizer(self, lr_rotation: float, lr_translation_m: float) -> torch.optim.Optimizer:
        return torch.optim.Adam(
            [
                {"params": [self.d6], "lr": lr_rotation},
                {"params": [self.t], "lr": lr_translation_m},
                {"params": [self.u], "lr": 2 * lr_rotation},
            ]
        )


def pose_losses(
    R: torch.Tensor,
    t: torch.Tensor,
    log_s: torch.Tensor,
    targets: PoseTargets,
    weights: PoseWeights,
    scale_prior: float,
    log_scale_bound: float,
    penetration: bool,
    matches: Matches | None = None,
) -> dict[str, torch.Tensor]:
    """Per-hypothesis loss terms, each (K,). R: (K, 3, 3), t: (K, 3) metres, log_s: (K,).

    matches: correspondences to reuse (see Matches); None searches them afresh.
    """
    matches = matches or Matches()
    s = torch.exp(log_s)[:, None, None]

    def place(p: torch.Tensor) -> torch.Tensor:
        return s * torch.einsum("kij,nj->kni", R, p) + t[:, None, :]

    box = targets.box
    diag = torch.linalg.norm(box[2:] - box[:2])
    uv = _project(targets.K, place(targets.silhouette_points))  # (K, Ns, 2)
    pred_box = torch.cat([uv.amin(1), uv.amax(1)], dim=-1)
    terms = {"box": weights.box * (10.0 * (pred_box - box).abs() / diag).mean(-1)}

    if targets.mask_distance is not None:
        w = targets.mask_window
        grid = (2.0 * (uv - w[:2]) / (w[2:] - w[:2]) - 1.0)[:, :, None, :]  # (K, Ns, 1, 2) in [-1, 1]
        dist = torch.nn.functional.grid_sample(
            targets.mask_distance.expand(uv.shape[0], -1, -1, -1),
            grid,
            align_corners=False,
            padding_mode="border",
        )[:, 0, :, 0]
        cover = matches.distance("cover", targets.mask_samples[None].expand(uv.shape[0], -1, -1), uv)
        terms["mask"] = weights.mask * 10.0 * (dist.mean(-1) + cover.mean(-1)) / diag

    cs = weights.contact_scale_m
    obj_c = place(targets.object_contact_points)  # (K, Nco, 3)
    body_c = targets.body_contact_points[None]
    wo, wb = targets.object_contact_weights, targets.body_contact_weights

    def robust(d: torch.Tensor) -> torch.Tensor:
        # Geman-McClure: quadratic within `cs`, saturating beyond, so that a broad contact region (a
        # whole hand) can hold a small object without every vertex having to touch it.
        r2 = (d / cs) ** 2
        return 2.0 * r2 / (1.0 + r2)

    to_body = (robust(matches.distance("to_body", obj_c, body_c)) * wo).sum(-1) / wo.sum().clamp(min=1e-9)
    to_obj = robust(matches.distance("to_obj", body_c.expand(obj_c.shape[0], -1, -1), obj_c))
    terms["contact"] = weights.contact * (to_body + (to_obj * wb).sum(-1) / wb.sum())

    if penetration:
        pts = place(targets.surface_points)  # (K, Np, 3)
        body = targets.body_points[None].expand(pts.shape[0], -1, -1)
        idx = matches.index("in_body", pts, body)
        depth_in_body = torch.relu(-((pts - targets.body_points[idx]) * targets.body_normals[idx]).sum(-1))
        nrm = torch.einsum("kij,nj->kni", R, targets.surface_normals)
        idx = matches.index("in_object", body, pts)
        gather = idx[..., None].expand(-1, -1, 3)
        near, near_n = pts.gather(1, gather), nrm.gather(1, gather)
        depth_in_obj = torch.relu(-((targets.body_points[None] - near) * near_n).sum(-1))
        terms["penetration"] = weights.penetration * (depth_in_body.mean(-1) + depth_in_obj.mean(-1)) / cs

    terms["size"] = weights.size * ((log_s - np.log(scale_prior)) / log_scale_bound) ** 2
    return terms


@dataclass(frozen=True)
class Stage:
    """One step of the schedule: keep the `keep` lowest-loss hypotheses, then run `iterations` Adam steps."""

    keep: int
    iterations: int
    penetration: bool  # include the interpenetration term (the costly one)


DEFAULT_SCHEDULE: tuple[Stage, ...] = (
    Stage(keep=8, iterations=25, penetration=False),
    Stage(keep=2, iterations=25, penetration=True),
)


def fit_object_pose(
    targets: PoseTargets,
    R0: np.ndarray,
    t0: np.ndarray,
    scale_prior: float,
    scale_range: tuple[float, float],
    weights: PoseWeights,
    schedule: tuple[Stage, ...] = DEFAULT_SCHEDULE,
    lr_rotation: float = 0.05,
    lr_translation_m: float = 0.01,
    rematch_every: int = 4,
    s0: np.ndarray | None = None,
) -> PoseFit:
    """Optimise hypotheses (R0: (K, 3, 3), t0: (K, 3) metres, s0: (K,) scales or None for the prior)
    through `schedule` and return the best.

    Every stage first ranks the surviving hypotheses by its own objective and keeps the best few, so
    the cheap terms screen the many starting rotations and the full objective polishes the last ones.
    Nearest-neighbour correspondences are searched again every `rematch_every` steps.
    """
    log_scale_bound = max(abs(float(np.log(v / scale_prior))) for v in scale_range)
    hyp = _Hypotheses(R0, t0, np.full(len(R0), scale_prior) if s0 is None else s0, scale_range)

    def evaluate(penetration: bool) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        with torch.no_grad():
            R, t, log_s = (x.detach() for x in hyp())
            terms = pose_losses(R, t, log_s, targets, weights, scale_prior, log_scale_bound, penetration)
        return terms, sum(terms.values())

    for stage in schedule:
        _, total = evaluate(stage.penetration)
        best = torch.argsort(total)[: stage.keep].numpy()
        with torch.no_grad():
            R, t, log_s = (x.detach() for x in hyp())
        hyp = _Hypotheses(R[best].numpy(), t[best].numpy(), torch.exp(log_s[best]).numpy(), scale_range)
        opt = hyp.optimizer(lr_rotation, lr_translation_m)
        matches = Matches()
        for step in range(stage.iterations):
            matches.refresh = step % rematch_every == 0
            opt.zero_grad(set_to_none=True)
            R, t, log_s = hyp()
            terms = pose_losses(
                R, t, log_s, targets, weights, scale_prior, log_scale_bound, stage.penetration, matches
            )
            sum(terms.values()).sum().backward()
            opt.step()
    terms, total = evaluate(schedule[-1].penetration if schedule else True)
    i = int(torch.argmin(total))
    with torch.no_grad():
        R, t, log_s = (x.detach() for x in hyp())
    return PoseFit(
        rotation=R[i].numpy().astype(np.float64),
        translation=t[i].numpy().astype(np.float64),
        scale=float(torch.exp(log_s[i])),
        loss=float(total[i]),
        terms={k: float(v[i]) for k, v in terms.items()},
    )
