"""Triangle rasterization: per pixel, the front-most face, its barycentrics and its depth.

One small functional API in the spirit of nvdiffrast: `Rasterizer.rasterize` -> `Raster`, then
`interpolate` vertex attributes through it (`ivlm_core.render.raster`). This module is the façade that
picks a backend and validates what reaches it. Three interchangeable backends give the same outputs:
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

import numpy as np

from ivlm_core.geometry import validate_mesh, vertex_normals
from ivlm_core.render.cameras import RenderCamera, View
from ivlm_core.render.numpy_backend import NumpyBackend
from ivlm_core.render.raster import Raster, to_camera_space
from ivlm_core.render.shading import shade_phong

log = logging.getLogger(__name__)

BACKENDS = ("auto", "moderngl", "numpy", "nvdiffrast")


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
        return [self._impl.rasterize(to_camera_space(v, f, c)) for c in cams]

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
            mesh = to_camera_space(v, f, camera)
            normals_cam = normals @ camera.world_to_camera[:3, :3].T.astype(np.float32)
            raster = self._impl.rasterize(mesh)
            rasters.append(raster)
            images.append(shade_phong(raster, mesh.vertices, f, col, normals_cam, light))
        return rasters, np.stack(images)

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
