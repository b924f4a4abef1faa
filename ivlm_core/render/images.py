"""The renders the localizer sees, made as the original makes them (github.com/saidwivedi/InteractVLM,
`preprocess_data/constants.py`: HUMAN_VIEW_DICT["4MV-Z_Vitru"], OBJS_VIEW_DICT["4MV-Z_HM"]).

Body: vertex colour = (vertex normal + 1) / 2. Object: the mesh centred on its vertex mean and divided
by its largest bounding-box extent, vertex colour = per-axis min-max normalised xyz * 0.8 + 0.1. Both
are Phong-shaded as PyTorch3D's HardPhongShader (`ivlm_core.render.shading`) with the point light at
the view's `light_location`, on a pure white background.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ivlm_core.geometry import validate_mesh, vertex_normals
from ivlm_core.objects import normalize_for_render
from ivlm_core.render.cameras import HUMAN_VIEWS, OBJECT_ENCODING_VIEWS, OBJECT_VIEWS, View, rig_cam_params
from ivlm_core.render.lift import LiftTables, build_lift_tables
from ivlm_core.render.rasterize import Rasterizer


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


def render_rig(
    rasterizer: Rasterizer,
    vertices: np.ndarray,
    faces: np.ndarray,
    colors: np.ndarray,
    views: Sequence[View],
    encoding_views: Sequence[View] | None = None,
    normals: np.ndarray | None = None,
) -> RigRender:
    """Rasterize and shade a mesh from every view; lift tables come from the same rasterization.

    vertices: (V, 3) world, mesh units; colors: (V, 3) in [0, 1]; encoding_views: the views whose
    normalised parameters become `cam_params` (default: `views`); normals: (V, 3) unit vertex normals
    when the caller already has them (default: computed from the mesh).
    """
    v, f = validate_mesh(vertices, faces)
    views = tuple(views)
    lights = np.array([view.light_location for view in views], dtype=np.float64)
    rasters, images = rasterizer.shade_views(v, f, views, colors, lights, normals)
    return RigRender(
        images=images,
        tables=build_lift_tables(rasters, f, v.shape[0]),
        views=views,
        cam_params=rig_cam_params(tuple(encoding_views or views)),
        vertices=v.astype(np.float32),
    )


def render_body_views(
    rasterizer: Rasterizer, vertices: np.ndarray, faces: np.ndarray, views: Sequence[View] = HUMAN_VIEWS
) -> RigRender:
    """The human localizer's inputs: the body (V, 3) metres, coloured by its normals, from the human rig."""
    normals = vertex_normals(vertices, faces)
    return render_rig(rasterizer, vertices, faces, (normals + 1.0) / 2.0, views, normals=normals)


def render_object_views(
    rasterizer: Rasterizer,
    vertices: np.ndarray,
    faces: np.ndarray,
    views: Sequence[View] = OBJECT_VIEWS,
    encoding_views: Sequence[View] = OBJECT_ENCODING_VIEWS,
) -> RigRender:
    """The object localizer's inputs: the mesh normalised as the original does (objects.normalize_for_render)
    and coloured by its normalised xyz, from the object rig.

    `cam_params` come from `encoding_views` (distance 2) although the renders use `views` (distance 1.5),
    as in the original demo.
    """
    validate_mesh(vertices, faces)
    v = normalize_for_render(vertices)
    lo, hi = v.min(0), v.max(0)
    colors = (v - lo) / np.where(hi > lo, hi - lo, 1.0) * 0.8 + 0.1
    return render_rig(rasterizer, v, faces, colors, views, encoding_views)
