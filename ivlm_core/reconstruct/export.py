"""GLB export of a reconstructed scene: body and placed object coloured by contact, grasp points in green."""

from __future__ import annotations

import numpy as np
import trimesh

from ivlm_core.colours import GRASP_RGB, NO_CONTACT_RGB, OBJECT_RGB, contact_rgb, rgba8
from ivlm_core.types import Reconstruction


def _coloured(
    vertices: np.ndarray, faces: np.ndarray, probs: np.ndarray, base: np.ndarray
) -> trimesh.Trimesh:
    colours = rgba8(contact_rgb(probs, base))
    return trimesh.Trimesh(vertices, faces, vertex_colors=colours, process=False)


def scene_glb(
    body_vertices: np.ndarray,
    body_faces: np.ndarray,
    body_contact_probs: np.ndarray,
    object_vertices: np.ndarray,
    object_faces: np.ndarray,
    object_contact_probs: np.ndarray,
    reconstruction: Reconstruction,
) -> bytes:
    """The scene as GLB bytes, in the camera frame (metres): body, object placed by `reconstruction`.

    Vertices blend from grey (body) / yellow (object) to red with their contact probability; grasp
    candidates are a green point cloud. The object is left out when the reconstruction is not ok.
    body_vertices: (V, 3); object_vertices: (Vo, 3) in the object mesh frame; probabilities (V,), (Vo,).
    """
    scene = trimesh.Scene()
    body = _coloured(body_vertices, body_faces, body_contact_probs, NO_CONTACT_RGB)
    scene.add_geometry(body, node_name="body", geom_name="body")
    if reconstruction.ok:
        R, t = reconstruction.object_pose[:3, :3], reconstruction.object_pose[:3, 3]
        placed = reconstruction.object_scale * np.asarray(object_vertices, np.float64) @ R.T + t
        scene.add_geometry(
            _coloured(placed, object_faces, object_contact_probs, OBJECT_RGB), "object"
        )
        if len(reconstruction.grasp_points):
            colours = np.tile(rgba8(GRASP_RGB), (len(reconstruction.grasp_points), 1))
            scene.add_geometry(
                trimesh.PointCloud(reconstruction.grasp_points, colors=colours), "grasp_points"
            )
    return scene.export(file_type="glb")
