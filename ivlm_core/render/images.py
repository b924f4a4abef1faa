"""The renders the localizer sees, made as the original makes them (facts §3a/§3b).

Body: vertex colour = (vertex normal + 1) / 2. Object: the mesh centred on its vertex mean and divided
by its largest bounding-box extent, vertex colour = per-axis min-max normalised xyz * 0.8 + 0.1. Both
are shaded like PyTorch3D's HardPhongShader with one PointLights (ambient 0.5, diffuse 0.3, specular
0.2, shininess 64, light at the view's `light_location`), on a pure white background, and quantised
as the original does (`uint8(image * 255)`, truncating).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ivlm_core.render.cameras import HUMAN_VIEWS, OBJECT_ENCODING_VIEWS, OBJECT_VIEWS, View, rig_cam_params
from ivlm_core.render.lift import LiftTables, build_lift_tables
from ivlm_core.render.rasterize import Raster, Rasterizer, interpolate, validate_mesh

AMBIENT, DIFFUSE, SPECULAR, SHININESS = 0.5, 0.3, 0.2, 64.0


@dataclass(frozen=True)
class RigRender:
    """A mesh rendered from every view of a rig: the localizer's input images and the lift tables."""

    images: np.ndarray  # (N, H, W, 3) uint8 RGB, background pure white (255, 255, 255)
    tables: LiftTables  # pixel -> vertices lookup of the same rasterization
    views: tuple[View, ...]
    cam_params: np.ndarray  # (N, 5) float32, normalised camera parameters fed to the localizer
    vertices: np.ndarray  # (V, 3) float32, the rendered (for objects: normalised) vertices

    @property
    def masks(self) -> np.ndarray:
        """(N, H, W) bool silhouettes; the original marks non-white pixels as the valid region."""
        H, W = self.tables.size
        m = np.zeros(self.tables.num_views * H * W, dtype=bool)
        m[self.tables.pixels] = True
        return m.reshape(self.tables.num_views, H, W)


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(V, 3) float64 unit vertex normals, area-weighted sum of face normals (as PyTorch3D's verts_normals).

    Outward for counter-clockwise faces; vertices on no face get a zero normal.
    """
    v, f = validate_mesh(vertices, faces)
    tri = v[f]
    face_n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])  # length = 2 * area
    n = np.zeros_like(v)
    for k in range(3):
        n += np.stack(
            [np.bincount(f[:, k], weights=face_n[:, c], minlength=v.shape[0]) for c in range(3)], axis=1
        )
    norm = np.linalg.norm(n, axis=1, keepdims=True)
    return np.divide(n, norm, out=np.zeros_like(n), where=norm > 1e-12)


def shade_phong(
    raster: Raster,
    vertices: np.ndarray,
    faces: np.ndarray,
    colors: np.ndarray,
    camera_centre: np.ndarray,
    light_location: Sequence[float],
) -> np.ndarray:
    """(H, W, 3) uint8 image: Phong-shaded vertex colours (V, 3) in [0, 1], white background.

    Per pixel: interpolated colour, normal and world position; colour = (ambient + diffuse) * texel +
    specular, with the reflection-based specular term of PyTorch3D's lighting.
    """
    v = np.asarray(vertices, dtype=np.float64)
    normals = vertex_normals(v, faces)
    mask = raster.mask
    texel = interpolate(raster, colors, faces)[mask].astype(np.float64)
    n = interpolate(raster, normals, faces)[mask].astype(np.float64)
    p = interpolate(raster, v, faces)[mask].astype(np.float64)
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-6)
    to_light = np.asarray(light_location, dtype=np.float64) - p
    to_light /= np.maximum(np.linalg.norm(to_light, axis=1, keepdims=True), 1e-6)
    to_eye = np.asarray(camera_centre, dtype=np.float64) - p
    to_eye /= np.maximum(np.linalg.norm(to_eye, axis=1, keepdims=True), 1e-6)
    cos = np.sum(n * to_light, axis=1)
    reflect = -to_light + 2.0 * cos[:, None] * n
    alpha = np.maximum(np.sum(to_eye * reflect, axis=1), 0.0) * (cos > 0)
    shaded = (AMBIENT + DIFFUSE * np.maximum(cos, 0.0))[:, None] * texel + (SPECULAR * alpha**SHININESS)[
        :, None
    ]
    H, W = raster.size
    image = np.ones((H, W, 3), dtype=np.float64)
    image[mask] = shaded
    return (np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)


def normalize_object_vertices(vertices: np.ndarray) -> np.ndarray:
    """(V, 3) float32: centred on the vertex mean, divided by the largest bounding-box extent (unitless)."""
    v = np.asarray(vertices, dtype=np.float64)
    centred = v - v.mean(0)
    extent = float((centred.max(0) - centred.min(0)).max())
    if extent <= 0:
        raise ValueError("object mesh has zero extent (all vertices coincide); cannot normalise it")
    return (centred / extent).astype(np.float32)


def render_rig(
    rasterizer: Rasterizer,
    vertices: np.ndarray,
    faces: np.ndarray,
    colors: np.ndarray,
    views: Sequence[View],
    encoding_views: Sequence[View] | None = None,
) -> RigRender:
    """Rasterize and shade a mesh from every view; lift tables come from the same rasterization."""
    v, f = validate_mesh(vertices, faces)
    views = tuple(views)
    images, rasters = [], []
    for view in views:
        raster = rasterizer.rasterize(v, f, view)
        camera = view.camera(rasterizer.size[0])
        rasters.append(raster)
        images.append(shade_phong(raster, v, f, colors, camera.camera_centre(), view.light_location))
    return RigRender(
        images=np.stack(images),
        tables=build_lift_tables(rasters, f, v.shape[0]),
        views=views,
        cam_params=rig_cam_params(tuple(encoding_views or views)),
        vertices=v.astype(np.float32),
    )


def render_body_views(
    rasterizer: Rasterizer, vertices: np.ndarray, faces: np.ndarray, views: Sequence[View] = HUMAN_VIEWS
) -> RigRender:
    """The human localizer's inputs: the body (V, 3) metres, coloured by its normals, from the human rig."""
    colors = (vertex_normals(vertices, faces) + 1.0) / 2.0
    return render_rig(rasterizer, vertices, faces, colors, views)


def render_object_views(
    rasterizer: Rasterizer,
    vertices: np.ndarray,
    faces: np.ndarray,
    views: Sequence[View] = OBJECT_VIEWS,
    encoding_views: Sequence[View] = OBJECT_ENCODING_VIEWS,
) -> RigRender:
    """The object localizer's inputs: the normalised mesh coloured by normalised xyz, from the object rig.

    `cam_params` come from `encoding_views` (distance 2) although the renders use `views` (distance 1.5),
    as in the original demo.
    """
    validate_mesh(vertices, faces)
    v = normalize_object_vertices(vertices)
    lo, hi = v.min(0), v.max(0)
    colors = (v - lo) / np.where(hi > lo, hi - lo, 1.0) * 0.8 + 0.1
    return render_rig(rasterizer, v, faces, colors, views, encoding_views)
