"""GLB export of a reconstructed scene: body and placed object coloured by contact, grasp points in green."""

from __future__ import annotations

import numpy as np
import trimesh

from ivlm_core.types import Reconstruction

_NO_CONTACT_BODY = np.array([200, 200, 200, 255], np.float64)
_NO_CONTACT_OBJECT = np.array([255, 230, 77, 255], np.float64)  # InteractVLM's object overlay yellow
_CONTACT = np.array([255, 38, 25, 255], np.float64)  # InteractVLM's contact red
_GRASP = np.array([40, 200, 60, 255], np.uint8)


def _coloured(
    vertices: np.ndarray, faces: np.ndarray, probs: np.ndarray, base: np.ndarray
) -> trimesh.Trimesh:
    p = np.clip(np.asarray(probs, np.float64).reshape(-1, 1), 0.0, 1.0)
    colours = ((1.0 - p) * base + p * _CONTACT).round().astype(np.uint8)
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
    body = _coloured(body_vertices, body_faces, body_contact_probs, _NO_CONTACT_BODY)
    scene.add_geometry(body, node_name="body", geom_name="body")
    if reconstruction.ok:
        R, t = reconstruction.object_pose[:3, :3], reconstruction.object_pose[:3, 3]
        placed = reconstruction.object_scale * np.asarray(object_vertices, np.float64) @ R.T + t
        scene.add_geometry(
            _coloured(placed, object_faces, object_contact_probs, _NO_CONTACT_OBJECT), "object"
        )
        if len(reconstruction.grasp_points):
            colours = np.tile(_GRASP, (len(reconstruction.grasp_points), 1))
            scene.add_geometry(
                trimesh.PointCloud(reconstruction.grasp_points, colors=colours), "grasp_points"
            )
    return scene.export(file_type="glb")
