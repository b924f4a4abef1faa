"""Cameras, rasterizer, localizer input renders and 2D <-> 3D lifting: the Render and Lift stages.

r = Rasterizer(1024)                                   # moderngl/EGL on CPU, nvdiffrast on CUDA
rig = render_body_views(r, body.canonical_vertices, body.faces)
rig.images, rig.cam_params                             # (4, H, W, 3) uint8, (4, 5) localizer inputs
probs = lift(masks, rig.tables)                        # (4, H, W) in [0, 1] -> (V,) per-vertex
rasters = r.rasterize_views(vertices, faces, HUMAN_VIEWS)   # several views, one validation and upload
targets = labels_to_masks(labels, rig.tables, faces)   # (V,) bool -> (4, H, W), 2 of 3 corners (mv2)
"""

from ivlm_core.render.cameras import (
    HUMAN_VIEWS,
    OBJECT_ENCODING_VIEWS,
    OBJECT_VIEWS,
    RenderCamera,
    View,
    normalize_cam_params,
    rig_cam_params,
)
from ivlm_core.render.images import (
    RigRender,
    render_body_views,
    render_object_views,
    render_rig,
)
from ivlm_core.render.lift import (
    LiftTables,
    build_lift_tables,
    labels_to_masks,
    lift,
    render_lift_tables,
    surface_coverage,
)
from ivlm_core.render.raster import Raster, interpolate, vertex_visibility
from ivlm_core.render.rasterize import Rasterizer
from ivlm_core.render.shading import shade_phong

__all__ = [
    "HUMAN_VIEWS",
    "OBJECT_ENCODING_VIEWS",
    "OBJECT_VIEWS",
    "LiftTables",
    "Raster",
    "Rasterizer",
    "RenderCamera",
    "RigRender",
    "View",
    "build_lift_tables",
    "interpolate",
    "labels_to_masks",
    "lift",
    "normalize_cam_params",
    "render_body_views",
    "render_lift_tables",
    "render_object_views",
    "render_rig",
    "rig_cam_params",
    "shade_phong",
    "surface_coverage",
    "vertex_visibility",
]
