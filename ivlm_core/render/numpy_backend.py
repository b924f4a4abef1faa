"""Rasterizer backend without dependencies: a vectorized numpy z-buffer, for machines without EGL or CUDA.

Faces reaching closer than half the nearest vertex depth (e.g. behind the camera) are dropped whole.
"""

from __future__ import annotations

import numpy as np

from ivlm_core.render.raster import CameraSpaceMesh, Raster


class NumpyBackend:
    """Dependency-free vectorized z-buffer: every (face, pixel-in-bounding-box) pair at once, in chunks."""

    name = "numpy"
    chunk = 1_000_000  # candidate (face, pixel) pairs per pass; bounds the working memory to ~100 MB

    def __init__(self, size: tuple[int, int]) -> None:
        self.size = size

    def rasterize(self, mesh: CameraSpaceMesh) -> Raster:
        H, W = self.size
        v = mesh.vertices.astype(np.float64)
        _, near, _ = mesh.clip_params()
        z = v[:, 2]
        uv = mesh.intrinsics.project(v)  # faces reaching in front of `near` are dropped below
        f = mesh.faces
        tri = uv[f]  # (F, 3, 2)
        fz = z[f]  # (F, 3)
        area = (tri[:, 1, 0] - tri[:, 0, 0]) * (tri[:, 2, 1] - tri[:, 0, 1]) - (
            tri[:, 2, 0] - tri[:, 0, 0]
        ) * (tri[:, 1, 1] - tri[:, 0, 1])
        # Pixel centres j + 0.5 inside the bounding box: j in [ceil(min - 0.5), floor(max - 0.5)].
        j0 = np.clip(np.ceil(tri[..., 0].min(1) - 0.5), 0, W).astype(np.int64)
        j1 = np.clip(np.floor(tri[..., 0].max(1) - 0.5), -1, W - 1).astype(np.int64)
        i0 = np.clip(np.ceil(tri[..., 1].min(1) - 0.5), 0, H).astype(np.int64)
        i1 = np.clip(np.floor(tri[..., 1].max(1) - 0.5), -1, H - 1).astype(np.int64)
        nx, ny = np.maximum(j1 - j0 + 1, 0), np.maximum(i1 - i0 + 1, 0)
        keep = (fz.min(1) >= near) & (np.abs(area) > 1e-12) & (nx > 0) & (ny > 0)
        faces_kept = np.flatnonzero(keep)
        counts = (nx * ny)[faces_kept]

        zbuf = np.full(H * W, np.inf)
        tid = np.full(H * W, -1, dtype=np.int32)
        bary = np.zeros((H * W, 3), dtype=np.float32)
        ends = np.cumsum(counts)
        start = 0
        while start < faces_kept.size:
            stop = int(np.searchsorted(ends, (ends[start - 1] if start else 0) + self.chunk, side="right"))
            stop = max(stop, start + 1)
            self._pass(
                faces_kept[start:stop], counts[start:stop], tri, fz, area, j0, i0, nx, W, zbuf, tid, bary
            )
            start = stop
        depth = np.where(tid >= 0, zbuf, 0.0).astype(np.float32)
        return Raster(
            triangle_id=tid.reshape(H, W), barycentrics=bary.reshape(H, W, 3), depth=depth.reshape(H, W)
        )

    @staticmethod
    def _pass(fids, counts, tri, fz, area, j0, i0, nx, W, zbuf, tid, bary) -> None:
        """Rasterize faces `fids` and merge the nearest hits into the z-buffer, in place."""
        owner = np.repeat(fids, counts)
        local = np.arange(owner.size) - np.repeat(np.cumsum(counts) - counts, counts)
        px = j0[owner] + local % nx[owner]
        py = i0[owner] + local // nx[owner]
        cx, cy = px + 0.5, py + 0.5
        t = tri[owner]
        x0, y0, x1, y1, x2, y2 = t[:, 0, 0], t[:, 0, 1], t[:, 1, 0], t[:, 1, 1], t[:, 2, 0], t[:, 2, 1]
        a = area[owner]
        l0 = ((x1 - cx) * (y2 - cy) - (x2 - cx) * (y1 - cy)) / a
        l1 = ((x2 - cx) * (y0 - cy) - (x0 - cx) * (y2 - cy)) / a
        l2 = 1.0 - l0 - l1
        inside = (l0 >= 0) & (l1 >= 0) & (l2 >= 0)
        owner, px, py = owner[inside], px[inside], py[inside]
        zf = fz[owner]
        q = np.stack([l0[inside], l1[inside], l2[inside]], axis=1) / zf  # perspective-correct weights
        s = q.sum(1)
        d = 1.0 / s
        pix = py * W + px
        order = np.lexsort((d, pix))
        first = np.ones(order.size, dtype=bool)
        first[1:] = pix[order][1:] != pix[order][:-1]
        sel = order[first]
        pix, d = pix[sel], d[sel]
        nearer = d < zbuf[pix]
        sel, pix = sel[nearer], pix[nearer]
        zbuf[pix] = d[nearer]
        tid[pix] = owner[sel]
        bary[pix] = q[sel] / s[sel, None]

    def close(self) -> None:
        """Nothing to release."""
