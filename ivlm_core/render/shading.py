"""PyTorch3D-style Phong shading of vertex colours, as the original's HardPhongShader + PointLights.

Per pixel: interpolated colour, normal and position; colour = (ambient + diffuse) * texel + specular,
with ambient 0.5, diffuse 0.3 * max(n.l, 0), specular 0.2 * max(v.r, 0)^64 (r the light reflected
about n, only where n.l > 0), material colours 1; then `uint8(clip(c, 0, 1) * 255)` (truncating, as
the original's `(image * 255).astype(np.uint8)`) on a pure white background. Everything here is in the
camera's optical frame, where the eye is the origin (rotations keep the dot products unchanged).
"""

from __future__ import annotations

import numpy as np

from ivlm_core.render.raster import Raster, interpolate

AMBIENT, DIFFUSE, SPECULAR, SHININESS = 0.5, 0.3, 0.2, 64.0


def shade_phong(
    raster: Raster,
    vertices_cam: np.ndarray,
    faces: np.ndarray,
    colors: np.ndarray,
    normals_cam: np.ndarray,
    light_cam: np.ndarray,
) -> np.ndarray:
    """(H, W, 3) uint8 RGB: the shaded vertex colours (V, 3) in [0, 1] over a white background.

    vertices_cam, normals_cam: (V, 3) in the camera frame; light_cam: (3,) light position, camera frame.
    """
    mask = raster.mask
    texel = interpolate(raster, colors, faces)[mask].astype(np.float64)
    n = interpolate(raster, normals_cam, faces)[mask].astype(np.float64)
    p = interpolate(raster, vertices_cam, faces)[mask].astype(np.float64)
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-6)
    to_light = np.asarray(light_cam, dtype=np.float64) - p
    to_light /= np.maximum(np.linalg.norm(to_light, axis=1, keepdims=True), 1e-6)
    to_eye = -p / np.maximum(np.linalg.norm(p, axis=1, keepdims=True), 1e-6)
    cos = np.sum(n * to_light, axis=1)
    reflect = -to_light + 2.0 * cos[:, None] * n
    alpha = np.maximum(np.sum(to_eye * reflect, axis=1), 0.0) * (cos > 0)
    shaded = (AMBIENT + DIFFUSE * np.maximum(cos, 0.0))[:, None] * texel + (SPECULAR * alpha**SHININESS)[
        :, None
    ]
    H, W = raster.size
    image = np.full((H, W, 3), 255, dtype=np.uint8)
    image[mask] = (np.clip(shaded, 0.0, 1.0) * 255.0).astype(np.uint8)
    return image
