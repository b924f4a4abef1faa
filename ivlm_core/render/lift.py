"""Lift per-view 2D contact masks onto mesh vertices, and project vertex labels back into per-view masks.

This is the "Lift" of Render-Localize-Lift, as the original's `model/components.py::HumanContact3DPredictor`
does it (github.com/saidwivedi/InteractVLM):
every covered pixel of view k holds the 3 corner vertices and barycentric weights of its front-most face;
a pixel with probability p adds `w_i * p` to `votes[v_i]` and `w_i` to `cnt[v_i]`; the view's estimate
is `votes / cnt` on the vertices it sees; the result is the mean over the views that see a vertex,
clamped to [0, 1]. The lookup tables (what InteractVLM ships as `pixel_to_vertex_map` / `bary_coords_map`)
are built once per mesh and rig with `build_lift_tables` and reused for every frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse
import torch

from ivlm_core.geometry import validate_mesh
from ivlm_core.render.cameras import RenderCamera, View
from ivlm_core.render.raster import Raster
from ivlm_core.render.rasterize import Rasterizer


@dataclass(frozen=True)
class LiftTables:
    """Pixel -> (3 vertex ids, 3 barycentrics) for every covered pixel of N views, stored sparsely.

    Entries of all views are concatenated; `pixels` indexes the flattened (N, H, W) mask stack.
    """

    size: tuple[int, int]  # (H, W) of every view
    num_views: int
    num_vertices: int
    pixels: np.ndarray  # (P,) int64, index into the flattened (N, H, W) stack
    triangle_ids: np.ndarray  # (P,) int32, face seen at that pixel
    vertex_ids: np.ndarray  # (P, 3) int64, the face's corners, offset by view * num_vertices
    barycentrics: np.ndarray  # (P, 3) float32, perspective-correct weights of those corners
    weight_sums: np.ndarray  # (N, V) float64, sum of barycentric weights per vertex and view (`cnt`)
    _cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def torch_tensors(self, device: torch.device | str, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
        """(pixels, flat vertex ids, barycentrics (P, 3), flat weight sums) on `device`, copied once per
        (device, dtype) and kept, so a training loop does not re-upload the tables every step."""
        key = (str(device), dtype)
        if key not in self._cache:
            self._cache[key] = (
                torch.from_numpy(self.pixels).to(device),
                torch.from_numpy(self.vertex_ids.reshape(-1)).to(device),
                torch.from_numpy(self.barycentrics).to(device, dtype),
                torch.from_numpy(self.weight_sums.reshape(-1)).to(device, dtype),
            )
        return self._cache[key]

    def lift_operator(self) -> scipy.sparse.csr_array:
        """(V, P) float32 sparse matrix taking the covered pixels' probabilities to per-vertex ones (the
        ungated lift before clamping), built on first use and kept: one sparse product per frame.

        Entry (v, p) = w / (cnt[view, v] * views seeing v), w the barycentric weight of v at pixel p.
        """
        if "operator" not in self._cache:
            V = self.num_vertices
            flat = self.vertex_ids.reshape(-1)
            vertex = flat % V
            cnt = self.weight_sums.reshape(-1)[flat]
            views_seeing = self.visible.sum(0)[vertex]
            w = np.divide(
                self.barycentrics.reshape(-1),
                cnt * views_seeing,
                out=np.zeros(flat.size),
                where=cnt > 0,
            )
            cols = np.repeat(np.arange(self.pixels.size), 3)
            shape = (V, self.pixels.size)
            self._cache["operator"] = scipy.sparse.csr_array(
                (w.astype(np.float32), (vertex, cols)), shape=shape
            )
        return self._cache["operator"]

    @property
    def visible(self) -> np.ndarray:
        """(N, V) bool, True where a view sees the vertex (it gets lift weight from ≥ 1 pixel)."""
        return self.weight_sums > 0

    def to_dense(self) -> tuple[np.ndarray, np.ndarray]:
        """The original's layout: pixel_to_vertex_map (N, H, W, 3) int32 (-1 = background) and
        bary_coords_map (N, H, W, 3) float32 (0 on background)."""
        H, W = self.size
        p2v = np.full((self.num_views * H * W, 3), -1, dtype=np.int32)
        bary = np.zeros((self.num_views * H * W, 3), dtype=np.float32)
        view = self.pixels // (H * W)
        p2v[self.pixels] = self.vertex_ids - (view * self.num_vertices)[:, None]
        bary[self.pixels] = self.barycentrics
        return p2v.reshape(self.num_views, H, W, 3), bary.reshape(self.num_views, H, W, 3)

    @classmethod
    def from_dense(
        cls,
        pixel_to_vertex_map: np.ndarray,
        bary_coords_map: np.ndarray,
        faces: np.ndarray,
        num_vertices: int | None = None,
    ) -> LiftTables:
        """Tables from the original's layout (e.g. its shipped `pixel_to_vertex_map_1024.npz` views stacked).

        pixel_to_vertex_map: (N, H, W, 3) vertex ids, -1 = background; bary_coords_map: (N, H, W, 3);
        faces: (F, 3) of the mesh the maps were rendered from (each pixel's face is looked up by its
        corners, for `labels_to_masks`); num_vertices defaults to faces.max() + 1. ValueError when a
        pixel's corners are not a face of `faces`.
        """
        p2v = np.asarray(pixel_to_vertex_map)
        bary = np.asarray(bary_coords_map, dtype=np.float32)
        if p2v.ndim != 4 or p2v.shape[-1] != 3 or bary.shape != p2v.shape:
            raise ValueError(
                f"expected pixel_to_vertex_map and bary_coords_map of one shape (N, H, W, 3), got "
                f"{p2v.shape} and {bary.shape}"
            )
        faces = np.asarray(faces, dtype=np.int64)
        n, H, W, _ = p2v.shape
        num_vertices = int(faces.max()) + 1 if num_vertices is None else int(num_vertices)
        flat = p2v.reshape(-1, 3).astype(np.int64)
        pixels = np.flatnonzero((flat >= 0).all(1))
        corners = flat[pixels]
        if corners.size and corners.max() >= num_vertices:
            raise ValueError(
                f"pixel_to_vertex_map refers to vertex {corners.max()}, the mesh has {num_vertices}"
            )
        # Identify faces by their sorted corner triple, packed into one int64 key.
        face_keys = _triple_keys(faces, num_vertices)
        order = np.argsort(face_keys)
        keys = _triple_keys(corners, num_vertices)
        pos = np.clip(np.searchsorted(face_keys[order], keys), 0, len(order) - 1)
        if not np.all(face_keys[order][pos] == keys):
            raise ValueError("pixel_to_vertex_map holds corner triples that are not faces of the given mesh")
        return _make_tables((H, W), n, num_vertices, pixels, order[pos], corners, bary.reshape(-1, 3)[pixels])


def _triple_keys(triples: np.ndarray, num_vertices: int) -> np.ndarray:
    s = np.sort(triples, axis=1).astype(np.int64)
    return (s[:, 0] * num_vertices + s[:, 1]) * num_vertices + s[:, 2]


def _make_tables(
    size: tuple[int, int],
    num_views: int,
    num_vertices: int,
    pixels: np.ndarray,
    triangle_ids: np.ndarray,
    corners: np.ndarray,
    barycentrics: np.ndarray,
) -> LiftTables:
    """Assemble tables from stack-flat pixel indices, their faces, corner vertex ids and weights."""
    view = pixels // (size[0] * size[1])
    vertex_ids = np.add(corners, (view * num_vertices)[:, None], dtype=np.int64)
    barycentrics = barycentrics.astype(np.float32, copy=False)
    weight_sums = np.bincount(
        vertex_ids.ravel(), weights=barycentrics.ravel(), minlength=num_views * num_vertices
    )
    return LiftTables(
        size=size,
        num_views=num_views,
        num_vertices=num_vertices,
        pixels=pixels.astype(np.int64, copy=False),
        triangle_ids=triangle_ids.astype(np.int32, copy=False),
        vertex_ids=vertex_ids,
        barycentrics=barycentrics,
        weight_sums=weight_sums.reshape(num_views, num_vertices),
    )


def build_lift_tables(rasters: Sequence[Raster], faces: np.ndarray, num_vertices: int) -> LiftTables:
    """Lookup tables for lifting, from one raster per view of the same mesh (faces: (F, 3))."""
    if len(rasters) == 0:
        raise ValueError("build_lift_tables needs at least one view's raster")
    faces = np.asarray(faces)
    if faces.ndim != 2 or faces.shape[1] != 3 or faces.shape[0] == 0:
        raise ValueError(f"faces must be a non-empty (F, 3) array, got shape {faces.shape}")
    if num_vertices <= 0 or faces.max() >= num_vertices or faces.min() < 0:
        raise ValueError(
            f"faces index vertices in [{faces.min()}, {faces.max()}] but num_vertices is {num_vertices}"
        )
    size = rasters[0].size
    if any(r.size != size for r in rasters):
        raise ValueError(f"all views must have the same size, got {[r.size for r in rasters]}")
    H, W = size
    pixels, tids, barys = [], [], []
    for k, r in enumerate(rasters):
        pix = np.flatnonzero(r.triangle_id.reshape(-1) >= 0)
        tid = np.take(r.triangle_id.reshape(-1), pix)
        if tid.size and tid.max() >= faces.shape[0]:
            raise ValueError(
                f"view {k}: raster refers to face {int(tid.max())} but there are {faces.shape[0]} faces"
            )
        pixels.append(pix + k * H * W)
        tids.append(tid)
        barys.append(_covered_barycentrics(r.barycentrics, pix))
    tid = np.concatenate(tids)
    corners = np.take(faces, tid, axis=0)
    return _make_tables(
        size, len(rasters), num_vertices, np.concatenate(pixels), tid, corners, np.concatenate(barys)
    )


def _covered_barycentrics(barycentrics: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """(P, 3) weights at flat pixel indices of an (H, W, 3) map, interleaved or (as the moderngl backend
    returns it) a view of (3, H, W) planes, without copying the whole map."""
    planes = np.moveaxis(barycentrics, -1, 0)
    if planes.flags.c_contiguous:
        return np.take(planes.reshape(3, -1), pixels, axis=1).T
    return np.take(barycentrics.reshape(-1, 3), pixels, axis=0)


def render_lift_tables(
    rasterizer: Rasterizer, vertices: np.ndarray, faces: np.ndarray, views: Sequence[View | RenderCamera]
) -> LiftTables:
    """Rasterize a mesh (vertices (V, 3), faces (F, 3)) from every view and build its lift tables."""
    v, f = validate_mesh(vertices, faces)
    return build_lift_tables(rasterizer.rasterize_views(v, f, views), f, v.shape[0])


def lift(
    probabilities: np.ndarray | torch.Tensor, tables: LiftTables, min_probability: float | None = None
) -> np.ndarray | torch.Tensor:
    """Per-view 2D probabilities -> per-vertex probabilities (checked for NaN on numpy input only).

    probabilities: (N, H, W) in [0, 1] (numpy -> (V,) float32), or a torch tensor (N, H, W) / (B, N, H, W)
    -> (V,) / (B, V), differentiable, on the input's device. min_probability: when set, only pixels whose
    probability exceeds it vote and count (the original's object-mesh predictor uses 0.3); by default
    every covered pixel votes (the human predictor). Vertices no view sees get 0.
    """
    expected = (tables.num_views, *tables.size)
    if isinstance(probabilities, torch.Tensor):
        return _lift_torch(probabilities, tables, expected, min_probability)
    p = np.asarray(probabilities, dtype=np.float32)
    if p.shape != expected:
        raise ValueError(f"masks must have shape (views, H, W) = {expected}, got {p.shape}")
    if not np.all(np.isfinite(p)):
        raise ValueError(
            "masks contain NaN or inf; pass probabilities in [0, 1] (apply sigmoid to logits first)"
        )
    pix_p = p.reshape(-1)[tables.pixels]
    if min_probability is None:
        return np.clip(tables.lift_operator() @ pix_p, 0.0, 1.0).astype(np.float32, copy=False)
    n, V = tables.num_views, tables.num_vertices
    pix_p = pix_p.astype(np.float64)
    w = tables.barycentrics.astype(np.float64) * (pix_p > min_probability)[:, None]
    cnt = np.bincount(tables.vertex_ids.ravel(), weights=w.ravel(), minlength=n * V)
    votes = np.bincount(tables.vertex_ids.ravel(), weights=(w * pix_p[:, None]).ravel(), minlength=n * V)
    seen = cnt > 0
    per_view = np.divide(votes, cnt, out=np.zeros_like(votes), where=seen).reshape(n, V)
    views_seeing = seen.reshape(n, V).sum(0)
    out = np.divide(per_view.sum(0), views_seeing, out=np.zeros(V), where=views_seeing > 0)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def _lift_torch(
    p: torch.Tensor, tables: LiftTables, expected: tuple[int, int, int], min_probability: float | None
) -> torch.Tensor:
    batched = p.dim() == 4
    if tuple(p.shape[-3:]) != expected or p.dim() not in (3, 4):
        raise ValueError(
            f"masks must have shape (views, H, W) or (B, views, H, W) with (views, H, W) = "
            f"{expected}, got {tuple(p.shape)}"
        )
    pb = p if batched else p[None]
    B, dev = pb.shape[0], pb.device
    n, V = tables.num_views, tables.num_vertices
    pixels, index, w, weight_sums = tables.torch_tensors(dev, pb.dtype)
    pix_p = pb.reshape(B, -1)[:, pixels]  # (B, P)
    if min_probability is None:
        wb = w.expand(B, -1, -1)
        cnt = weight_sums.expand(B, -1)
    else:
        wb = w[None] * (pix_p > min_probability).to(pb.dtype)[..., None]
        cnt = torch.zeros(B, n * V, device=dev, dtype=pb.dtype).index_add_(1, index, wb.reshape(B, -1))
    votes = torch.zeros(B, n * V, device=dev, dtype=pb.dtype).index_add_(
        1, index, (wb * pix_p[..., None]).reshape(B, -1)
    )
    seen = cnt > 0
    per_view = torch.where(
        seen, votes / torch.where(seen, cnt, torch.ones_like(cnt)), torch.zeros_like(votes)
    )
    views_seeing = seen.reshape(B, n, V).sum(1)
    out = per_view.reshape(B, n, V).sum(1) / views_seeing.clamp(min=1).to(pb.dtype)
    out = out.clamp(0.0, 1.0)
    return out if batched else out[0]


def labels_to_masks(
    vertex_labels: np.ndarray, tables: LiftTables, faces: np.ndarray, min_vertices: int = 2
) -> np.ndarray:
    """Vertex labels (V,) bool -> per-view masks (N, H, W) bool, for training targets and tests.

    A face is positive when at least `min_vertices` of its 3 corners are; a pixel is positive when the
    face it sees is. The default 2 is the rule of InteractVLM's newest human-contact data (`mv2`, used
    to train the released `hcontact-damon-fix`; the original's older default was 3): with 3, the faces
    along a label's boundary (2 of 3 corners labelled) are negative, so after lifting the boundary
    vertices fall below 0.5 (round-trip F1 0.84-0.96 on small body parts at 1024², ≥ 0.98 with 2).
    """
    labels = np.asarray(vertex_labels)
    if labels.shape != (tables.num_vertices,):
        raise ValueError(f"vertex_labels must have shape ({tables.num_vertices},), got {labels.shape}")
    if not 1 <= min_vertices <= 3:
        raise ValueError(f"min_vertices must be 1, 2 or 3, got {min_vertices}")
    faces = np.asarray(faces)
    if faces.ndim != 2 or faces.shape[1] != 3 or faces.size == 0 or faces.max() >= tables.num_vertices:
        raise ValueError(f"faces must be (F, 3) indices below {tables.num_vertices}, got shape {faces.shape}")
    if tables.triangle_ids.size and tables.triangle_ids.max() >= faces.shape[0]:
        raise ValueError(
            f"the tables see face {tables.triangle_ids.max()} but only {faces.shape[0]} faces were given"
        )
    face_positive = labels.astype(bool)[faces].sum(1) >= min_vertices
    H, W = tables.size
    masks = np.zeros(tables.num_views * H * W, dtype=bool)
    masks[tables.pixels] = face_positive[tables.triangle_ids]
    return masks.reshape(tables.num_views, H, W)


def surface_coverage(tables: LiftTables, vertices: np.ndarray, faces: np.ndarray) -> float:
    """Fraction in [0, 1] of the mesh's surface area on faces that ≥ 1 pixel of some view sees."""
    v, f = validate_mesh(vertices, faces)
    tri = v[f]
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    seen = np.zeros(f.shape[0], dtype=bool)
    seen[tables.triangle_ids] = True
    return float(area[seen].sum() / area.sum())
