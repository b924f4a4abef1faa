"""CUDA rasterizer backend through nvdiffrast (imported lazily; needs a CUDA build of nvdiffrast).

The mesh is drawn un-indexed (3 vertices per face) and a one-hot corner attribute is interpolated, so
the barycentrics come out per corner without depending on nvdiffrast's (u, v) ordering; `rast[..., 3]`
is the face index + 1 (0 = background). Row 0 of nvdiffrast's output is clip-space y = -1, which our
projection maps to the top image row, as in the moderngl backend.
"""

from __future__ import annotations

import numpy as np

from ivlm_core.render.raster import CameraSpaceMesh, Raster


class NvdiffrastBackend:
    """Owns one `RasterizeCudaContext` on `device`."""

    name = "nvdiffrast"

    def __init__(self, size: tuple[int, int], device: str = "cuda") -> None:
        import nvdiffrast.torch as dr
        import torch

        if not torch.cuda.is_available():
            raise ImportError("torch reports no CUDA device")
        self._dr = dr
        self._torch = torch
        self.size = size
        self.device = torch.device(device)
        self._glctx = dr.RasterizeCudaContext(device=self.device)

    def rasterize(self, mesh: CameraSpaceMesh) -> Raster:
        torch, dr = self._torch, self._dr
        H, W = self.size
        ab, near, far = mesh.clip_params()
        ax, ay, bx, by = (float(c) for c in ab)
        F = mesh.faces.shape[0]
        v = torch.from_numpy(mesh.vertices[mesh.faces].reshape(-1, 3)).to(self.device)  # (3F, 3)
        x, y, z = v[:, 0], v[:, 1], v[:, 2]
        zc = (far + near) / (far - near) * z - 2.0 * far * near / (far - near)
        pos = torch.stack([ax * x + bx * z, ay * y + by * z, zc, z], dim=1)[None].contiguous()
        tri = torch.arange(3 * F, dtype=torch.int32, device=self.device).reshape(F, 3)
        corner = torch.eye(3, device=self.device).repeat(F, 1)  # (3F, 3) one-hot corner per vertex
        attr = torch.cat([corner, z[:, None]], dim=1)[None].contiguous()  # (1, 3F, 4)
        rast, _ = dr.rasterize(self._glctx, pos, tri, resolution=[H, W])
        interp, _ = dr.interpolate(attr, rast, tri)
        tid = (rast[0, ..., 3].round().to(torch.int64) - 1).to(torch.int32)
        background = tid < 0
        bary = interp[0, ..., :3].masked_fill(background[..., None], 0.0)
        depth = interp[0, ..., 3].masked_fill(background, 0.0)
        return Raster(
            triangle_id=tid.cpu().numpy(),
            barycentrics=bary.cpu().numpy().astype(np.float32),
            depth=depth.cpu().numpy().astype(np.float32),
        )

    def close(self) -> None:
        """Drop the CUDA context."""
        self._glctx = None
