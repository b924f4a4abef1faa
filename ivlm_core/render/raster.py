"""What the rasterizer produces and the functions on it: `Raster`, `interpolate`, `vertex_visibility`.

Also the camera-space mesh every rasterizer backend consumes and the OpenGL-style projection they share.
Pixel (row i, column j) is sampled at its centre (j + 0.5, i + 0.5) in the intrinsics' pixel coordinates.
The backends (`numpy_backend`, `gl_backend`, `nvdiffrast_backend`) import this module; the façade that
chooses one of them is `ivlm_core.render.rasterize`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ivlm_core.geometry import validate_mesh
from ivlm_core.render.cameras import RenderCamera
from ivlm_core.types import CameraIntrinsics


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


def to_camera_space(v: np.ndarray, f: np.ndarray, camera: RenderCamera) -> CameraSpaceMesh:
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
    M = camera.world_to_camera
    p = v @ M[:3, :3].T + M[:3, 3]
    z = p[:, 2]
    col, row = np.floor(camera.intrinsics.project(p)).T
    inside = (z > 0) & (row >= 0) & (row < H) & (col >= 0) & (col < W)
    ids = np.flatnonzero(inside & touches_shown_face)
    surface = raster.depth[row[ids].astype(np.int64), col[ids].astype(np.int64)]
    in_front = raster.mask[row[ids].astype(np.int64), col[ids].astype(np.int64)]
    visible = np.zeros(v.shape[0], dtype=bool)
    visible[ids] = in_front & (z[ids] - surface <= tolerance_px * z[ids] / camera.intrinsics.fx)
    return visible
