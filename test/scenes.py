"""A real reconstruction to test against: the shipped anny body holding a book (`ivlm_core.testing`)."""

from __future__ import annotations

import numpy as np

from ivlm_core.body import load_body_model
from ivlm_core.objects import ObjectMesh
from ivlm_core.reconstruct import reconstruct
from ivlm_core.render.rasterize import Rasterizer
from ivlm_core.testing import Scene, make_scene, scene_objects
from ivlm_core.types import CameraIntrinsics, ContactResult, Detection, Reconstruction


def reconstruct_scene(scene: Scene, box: np.ndarray | None = None, **kwargs) -> Reconstruction:
    """`reconstruct` on the scene (its mask only with its own box)."""
    return reconstruct(scene.body_vertices, scene.body_faces, scene.body_contact, scene.obj,
                       scene.object_contact, scene.box if box is None else box, scene.camera,
                       scene.mask if box is None else None, scene.body_normals, **kwargs)


def book_scene() -> tuple[Scene, Reconstruction]:
    """anny holding a book against one hand, and its reconstruction (which passes the checks)."""
    model = load_body_model("anny")
    camera = CameraIntrinsics.from_fov(640, 480, 60.0)
    rasterizer = Rasterizer((camera.height, camera.width))
    rng = np.random.default_rng(3)
    obj = next(o for o in scene_objects() if o.name == "book")
    scene = None
    while scene is None:
        scene = make_scene(model, rasterizer, camera, obj, rng)
    rasterizer.close()
    rec = reconstruct_scene(scene)
    assert rec.ok, rec.reason
    return scene, rec


def book_result(scene: Scene, rec: Reconstruction | None, body_p: np.ndarray | None = None,
                obj_p: np.ndarray | None = None, reason: str = "") -> ContactResult:
    """The backend's result for the scene's pair, with `rec` as its reconstruction."""
    return ContactResult(
        person_index=0, obj=Detection("book", scene.box), body_model="anny",
        body_probabilities=scene.body_contact if body_p is None else body_p, body_parts={"right_hand": 0.9},
        object_mesh_id="builtin:book", object_probabilities=scene.object_contact if obj_p is None else obj_p,
        backend="keypoint", reason=reason, body_vertices=scene.body_vertices.astype(np.float32),
        body_normals=scene.body_normals.astype(np.float32), reconstruction=rec, object_mesh=book_mesh(scene))


def book_mesh(scene: Scene) -> ObjectMesh:
    """The scene's object as the registry would hand it out (the mesh travels with the result)."""
    v = scene.obj.vertices
    return ObjectMesh("builtin:book", "book", v, scene.obj.faces, v.max(0) - v.min(0), ("book",))
