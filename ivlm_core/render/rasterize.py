"""Triangle rasterization: per pixel, the front-most face, its barycentrics and its depth.

One small functional API in the spirit of nvdiffrast: `Rasterizer.rasterize` -> `Raster`, then
`interpolate` vertex attributes through it. Three interchangeable backends give the same outputs:
nvdiffrast on CUDA, moderngl over headless EGL on CPU (Mesa llvmpipe), and a vectorized numpy z-buffer
for machines without EGL. Pixel (row i, column j) is sampled at its centre (j + 0.5, i + 0.5) in the
intrinsics' pixel coordinates; barycentrics are perspective-correct (as PyTorch3D's and OpenGL's); no
face culling (as the original's `faces_per_pixel=1`, `blur_radius=0` rasterizer). Faces reaching closer
than half the nearest vertex depth (e.g. behind the camera) are clipped by the GPU backends and dropped
whole by numpy: keep meshes in front of the camera.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ivlm_core.render.cameras import RenderCamera, View
from ivlm_core.types import CameraIntrinsics

log = logging.getLogger(__name__)

BACKENDS = ("auto", "moderngl", "numpy", "nvdiffrast")


@dataclass
class Raster:
    """What a camera sees of a mesh, per pixel. Background pixels have triangle_id -1 and zeros elsewhere."""

    triangle_id: np.ndarray  # (H, W) int32, index into faces, -1 = background
    barycentrics: np.ndarray  # (H, W, 3) float32, weights of faces[triangle_id]'s corners 0, 1, 2
    depth: np.ndarray  # (H, W) float32, camera-frame z of the surface, metres (mesh units); 0 = background

    @property
    def mask(self) -> np.ndarray:
        """(H, W) bool, True where the mesh covers the pixel."""
        return self.triangle_id >= 0

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) in pixels."""
        return self.triangle_id.shape


@dataclass(frozen=True)
class CameraSpaceMesh:
    """A validated mesh already transformed into one camera's optical frame: what every backend consumes."""

    vertices: np.ndarray  # (V, 3) float32, camera frame (x right, y down, z forward)
    faces: np.ndarray  # (F, 3) int32
    intrinsics: CameraIntrinsics
    world_to_camera: np.ndarray  # (4, 4) float64, the transform that was applied

    def clip_params(self) -> tuple[np.ndarray, float, float]:
        """OpenGL-style projection of these camera-frame vertices (see `projection_params`)."""
        return projection_params(self.intrinsics, self.vertices[:, 2])


def projection_params(intrinsics: CameraIntrinsics, depths: np.ndarray) -> tuple[np.ndarray, float, float]:
    """OpenGL-style projection of camera-frame points: (4,) float32 `(ax, ay, bx, by)` and (near, far).

    clip = (ax*x + bx*z, ay*y + by*z, ..., z), so NDC x = 2u/W - 1 and NDC y = 2v/H - 1 with (u, v) the
    pixel coordinates; row 0 of the framebuffer is therefore the top image row. depths: (V,) camera-frame
    z of the mesh's vertices; near/far bracket them so a 24-bit depth buffer keeps its precision.
    """
    K, W, H = intrinsics.K, intrinsics.width, intrinsics.height
    ab = np.array([2 * K[0, 0] / W, 2 * K[1, 1] / H, 2 * K[0, 2] / W - 1, 2 * K[1, 2] / H - 1])
    z = np.asarray(depths)
    z_front = z[z > 0]
    if z_front.size == 0:
        return ab.astype(np.float32), 1.0, 2.0
    near = max(float(z_front.min()) * 0.5, 1e-4)
    far = max(float(z_front.max()) * 2.0, near * 2.0)
    return ab.astype(np.float32), near, far


def validate_mesh(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Check a triangle mesh and return it as (V, 3) float64 vertices and (F, 3) int32 faces.

    Raises ValueError naming what is wrong: empty mesh, wrong shapes, non-finite vertices or face indices
    out of range.
    """
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces)
    if v.ndim != 2 or v.shape[1] != 3 or v.shape[0] == 0:
        raise ValueError(f"vertices must be a non-empty (V, 3) array, got shape {v.shape}")
    if f.ndim != 2 or f.shape[1] != 3 or f.shape[0] == 0:
        raise ValueError(f"faces must be a non-empty (F, 3) array of vertex indices, got shape {f.shape}")
    if not np.issubdtype(f.dtype, np.integer):
        raise ValueError(f"faces must hold integer vertex indices, got dtype {f.dtype}")
    if not np.all(np.isfinite(v)):
        bad = np.flatnonzero(~np.isfinite(v).all(axis=1))
        raise ValueError(f"vertices contain NaN or inf ({bad.size} vertices, first {bad[:5].tolist()})")
    if f.min() < 0 or f.max() >= v.shape[0]:
        raise ValueError(
            f"faces index vertices in [{int(f.min())}, {int(f.max())}] but the mesh has {v.shape[0]} vertices"
        )
    return v, f.astype(np.int32, copy=False)


class Rasterizer:
    """Rasterizes meshes into `size` images with one backend chosen once, in the constructor.

    size: int (square) or (height, width). backend: "auto" picks nvdiffrast when `device` is CUDA,
    otherwise moderngl (headless EGL), falling back to numpy when EGL is unavailable; naming a backend
    forces it (and fails loudly if it cannot start). Calls from several threads are serialised.
    """

    def __init__(self, size: int | tuple[int, int], backend: str = "auto", device: str = "cpu") -> None:
        height, width = (size, size) if isinstance(size, int | np.integer) else tuple(size)
        if int(height) <= 0 or int(width) <= 0:
            raise ValueError(f"raster size must be positive, got {size!r}")
        if backend not in BACKENDS:
            raise ValueError(f"unknown rasterizer backend {backend!r}; choose one of {BACKENDS}")
        self.size = (int(height), int(width))
        self._impl = _make_backend(self.size, backend, device)
        self.backend = self._impl.name

    def rasterize(self, vertices: np.ndarray, faces: np.ndarray, camera: View | RenderCamera) -> Raster:
        """Rasterize one mesh seen from one camera.

        vertices: (V, 3) world coordinates, metres (mesh units). faces: (F, 3) vertex indices.
        camera: a rig View (rendered at this rasterizer's size, 60° FoV) or a RenderCamera whose
        intrinsics match this rasterizer's size.
        """
        return self.rasterize_views(vertices, faces, [camera])[0]

    def rasterize_views(
        self, vertices: np.ndarray, faces: np.ndarray, cameras: Sequence[View | RenderCamera]
    ) -> list[Raster]:
        """Rasterize one mesh from several cameras: one Raster per camera, in order.

        Cheaper than one `rasterize` call per camera: the mesh is validated (and, on moderngl, uploaded)
        once. Arguments as in `rasterize`.
        """
        v, f = validate_mesh(vertices, faces)
        cams = [self._camera(c) for c in cameras]
        if hasattr(self._impl, "rasterize_views"):
            return self._impl.rasterize_views(v, f, cams)
        return [self._impl.rasterize(_to_camera_space(v, f, c)) for c in cams]

    def shade(
        self,
        vertices: np.ndarray,
        faces: np.ndarray,
        camera: View | RenderCamera,
        colors: np.ndarray,
        light_location: np.ndarray,
        normals: np.ndarray | None = None,
    ) -> tuple[Raster, np.ndarray]:
        """Rasterize and Phong-shade vertex colours: (Raster, (H, W, 3) uint8 RGB on a white background).

        colors: (V, 3) in [0, 1]; light_location: (3,) world position of the point light; normals: (V, 3)
        world vertex normals, computed from the mesh when None (pass them to reuse across views). The
        moderngl backend shades in its fragment shader; the others shade the raster with numpy.
        """
        rasters, images = self.shade_views(
            vertices, faces, [camera], colors, np.asarray(light_location)[None], normals
        )
        return rasters[0], images[0]

    def shade_views(
        self,
        vertices: np.ndarray,
        faces: np.ndarray,
        cameras: Sequence[View | RenderCamera],
        colors: np.ndarray,
        light_locations: np.ndarray,
        normals: np.ndarray | None = None,
    ) -> tuple[list[Raster], np.ndarray]:
        """`shade` from several cameras at once: (one Raster per camera, (N, H, W, 3) uint8 images).

        light_locations: (N, 3) world point light per camera; other arguments as in `shade`.
        """
        from ivlm_core.render.shading import shade_phong, vertex_normals

        v, f = validate_mesh(vertices, faces)
        cams = [self._camera(c) for c in cameras]
        col = np.asarray(colors, dtype=np.float32)
        if col.shape != v.shape:
            raise ValueError(f"colors must be (V, 3) = {v.shape}, got {col.shape}")
        lights = np.asarray(light_locations, dtype=np.float64)
        if lights.shape != (len(cams), 3):
            raise ValueError(f"light_locations must be ({len(cams)}, 3), one per camera, got {lights.shape}")
        if normals is None:
            normals = vertex_normals(v, f)
        elif np.shape(normals) != v.shape:
            raise ValueError(f"normals must be (V, 3) = {v.shape}, got {np.shape(normals)}")
        normals = np.asarray(normals, dtype=np.float32)
        # Lights into each camera's frame: R @ light + t.
        lights_cam = np.stack(
            [
                c.world_to_camera[:3, :3] @ light + c.world_to_camera[:3, 3]
                for c, light in zip(cams, lights, strict=True)
            ]
        ).astype(np.float32)
        if hasattr(self._impl, "shade_views"):
            return self._impl.shade_views(v, f, cams, normals, col, lights_cam)
        rasters, images = [], []
        for camera, light in zip(cams, lights_cam, strict=True):
            mesh = _to_camera_space(v, f, camera)
            normals_cam = normals @ camera.world_to_camera[:3, :3].T.astype(np.float32)
            raster = self._impl.rasterize(mesh)
            rasters.append(raster)
            images.append(shade_phong(raster, mesh.vertices, f, col, normals_cam, light))
        return rasters, np.stack(images)

    def to_camera_space(
        self, vertices: np.ndarray, faces: np.ndarray, camera: View | RenderCamera
    ) -> CameraSpaceMesh:
        """Validate a mesh and transform it into the camera's optical frame."""
        v, f = validate_mesh(vertices, faces)
        return _to_camera_space(v, f, self._camera(camera))

    def _camera(self, camera: View | RenderCamera) -> RenderCamera:
        """A RenderCamera of this rasterizer's size (rig views are made at it)."""
        if isinstance(camera, View):
            if self.size[0] != self.size[1]:
                raise ValueError(f"rig views need a square raster, this rasterizer is {self.size}")
            camera = camera.camera(self.size[0])
        if not isinstance(camera, RenderCamera):
            raise ValueError(f"camera must be a View or a RenderCamera, got {type(camera).__name__}")
        if camera.size != self.size:
            raise ValueError(
                f"camera '{camera.name}' is {camera.size} (H, W) but the rasterizer is {self.size}"
            )
        return camera

    def close(self) -> None:
        """Release the backend's GPU/GL resources."""
        self._impl.close()

    def __enter__(self) -> Rasterizer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _to_camera_space(v: np.ndarray, f: np.ndarray, camera: RenderCamera) -> CameraSpaceMesh:
    """A validated mesh (V, 3) float64 world, (F, 3) int32, transformed into the camera's optical frame."""
    M = camera.world_to_camera
    v_cam = (v @ M[:3, :3].T + M[:3, 3]).astype(np.float32)
    return CameraSpaceMesh(vertices=v_cam, faces=f, intrinsics=camera.intrinsics, world_to_camera=M)


def interpolate(raster: Raster, attributes: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Barycentric interpolation of per-vertex attributes (V, C) -> (H, W, C) float32, 0 on background."""
    attr = np.asarray(attributes, dtype=np.float32)
    if attr.ndim == 1:
        attr = attr[:, None]
    faces = np.asarray(faces)
    if attr.ndim != 2:
        raise ValueError(f"attributes must be (V,) or (V, C), got shape {np.shape(attributes)}")
    H, W = raster.size
    out = np.zeros((H, W, attr.shape[1]), dtype=np.float32)
    mask = raster.mask
    tid = raster.triangle_id[mask]
    if tid.size and tid.max() >= faces.shape[0]:
        raise ValueError(f"raster refers to face {int(tid.max())} but only {faces.shape[0]} faces were given")
    corners = faces[tid]  # (P, 3)
    if corners.size and corners.max() >= attr.shape[0]:
        raise ValueError(f"faces index vertex {int(corners.max())} but attributes has {attr.shape[0]} rows")
    bary = raster.barycentrics[mask]  # (P, 3)
    out[mask] = np.einsum("pk,pkc->pc", bary, attr[corners])
    return out


def vertex_visibility(
    raster: Raster, camera: RenderCamera, vertices: np.ndarray, faces: np.ndarray, tolerance_px: float = 3.0
) -> np.ndarray:
    """(V,) bool: the camera sees the vertex itself. One of its faces shows in the raster, and the surface
    seen at the pixel its projection falls in is not in front of it by more than `tolerance_px` pixel
    footprints (depth z / fx each; room for the surface's slope within a pixel).

    Stricter than "some pixel shows a face touching it" (`LiftTables.visible`), which also counts vertices
    hidden behind an occluder (e.g. under the chin) whose neighbouring faces peek out at one pixel.
    raster: of this mesh from `camera`; vertices: (V, 3) world; faces: (F, 3) as rasterized.
    """
    v, f = validate_mesh(vertices, faces)
    H, W = raster.size
    if camera.size != (H, W):
        raise ValueError(f"camera '{camera.name}' is {camera.size} (H, W) but the raster is {(H, W)}")
    shown = raster.triangle_id[raster.mask]
    if shown.size and shown.max() >= f.shape[0]:
        raise ValueError(f"raster refers to face {int(shown.max())} but only {f.shape[0]} faces were given")
    face_shown = np.zeros(f.shape[0], dtype=bool)
    face_shown[shown] = True
    touches_shown_face = np.zeros(v.shape[0], dtype=bool)
    touches_shown_face[f[face_shown]] = True
    M, K = camera.world_to_camera, camera.intrinsics.K
    p = v @ M[:3, :3].T + M[:3, 3]
    z = np.where(p[:, 2] > 0, p[:, 2], np.nan)
    with np.errstate(invalid="ignore"):
        col = np.floor(K[0, 0] * p[:, 0] / z + K[0, 2])
        row = np.floor(K[1, 1] * p[:, 1] / z + K[1, 2])
        inside = (row >= 0) & (row < H) & (col >= 0) & (col < W)
    ids = np.flatnonzero(inside & touches_shown_face)
    surface = raster.depth[row[ids].astype(np.int64), col[ids].astype(np.int64)]
    in_front = raster.mask[row[ids].astype(np.int64), col[ids].astype(np.int64)]
    visible = np.zeros(v.shape[0], dtype=bool)
    visible[ids] = in_front & (z[ids] - surface <= tolerance_px * z[ids] / K[0, 0])
    return visible


# --- backends -------------------------------------------------------------------------------------------


def _make_backend(size: tuple[int, int], backend: str, device: str):
    if backend == "nvdiffrast" or (backend == "auto" and str(device).startswith("cuda")):
        try:
            from ivlm_core.render.nvdiffrast_backend import NvdiffrastBackend

            impl = NvdiffrastBackend(size, device if str(device).startswith("cuda") else "cuda")
            log.info("rasterizer: nvdiffrast on %s, %dx%d", impl.device, size[1], size[0])
            return impl
        except ImportError as e:
            if backend == "nvdiffrast":
                raise RuntimeError(
                    f"nvdiffrast backend requested but nvdiffrast cannot be imported: {e}"
                ) from e
            log.warning(
                "rasterizer: device %s but nvdiffrast is unavailable (%s); trying moderngl", device, e
            )
    if backend in ("moderngl", "auto"):
        try:
            from ivlm_core.render.gl_backend import ModernglBackend

            impl = ModernglBackend(size)
            log.info("rasterizer: moderngl (%s), %dx%d", impl.renderer, size[1], size[0])
            return impl
        except Exception as e:
            if backend == "moderngl":
                raise RuntimeError(
                    f"moderngl backend requested but no headless EGL context could start: {e}"
                ) from e
            log.warning("rasterizer: moderngl/EGL unavailable (%s); using the numpy rasterizer (slower)", e)
    impl = NumpyBackend(size)
    log.info("rasterizer: numpy z-buffer, %dx%d", size[1], size[0])
    return impl


class NumpyBackend:
    """Dependency-free vectorized z-buffer: every (face, pixel-in-bounding-box) pair at once, in chunks."""

    name = "numpy"
    chunk = 1_000_000  # candidate (face, pixel) pairs per pass; bounds the working memory to ~100 MB

    def __init__(self, size: tuple[int, int]) -> None:
        self.size = size

    def rasterize(self, mesh: CameraSpaceMesh) -> Raster:
        H, W = self.size
        K = mesh.intrinsics.K
        v = mesh.vertices.astype(np.float64)
        _, near, _ = mesh.clip_params()
        z = v[:, 2]
        zs = np.where(z > 0, z, 1.0)
        uv = np.stack([K[0, 0] * v[:, 0] / zs + K[0, 2], K[1, 1] * v[:, 1] / zs + K[1, 2]], axis=1)
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
