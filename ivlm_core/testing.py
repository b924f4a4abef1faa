"""Synthetic human-object scenes with known ground truth, for tests and benchmarks of `reconstruct`.

A scene is the anny body with randomly raised arms, turned and placed in front of a camera; an object
held against one hand (touching it, outside the body); the object's silhouette rendered with our
rasterizer (occluded by the body where the body is in front); a noisy box around it; and the true
contact regions on both surfaces. Everything is in the camera's optical frame, metres.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import trimesh
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation

from ivlm_core.body import BodyModel
from ivlm_core.objects.mesh import KeepsDerived
from ivlm_core.render.cameras import RenderCamera
from ivlm_core.render.rasterize import Rasterizer
from ivlm_core.types import CameraIntrinsics

_BODY_TO_CAMERA = np.diag(
    [1.0, -1.0, -1.0]
)  # body frame (y up, facing +z) -> camera frame, facing the camera
_CONTACT_DISTANCE_M = 0.015  # surfaces closer than this are in contact


@dataclass(frozen=True)
class SceneObject(KeepsDerived):
    """A test object: metric mesh (centred) and its rotational symmetry, for symmetry-aware errors.

    symmetry: "none"; "box" (180 degree turns about x, y, z); or "axis" (any turn about `axis`).
    """

    name: str
    vertices: np.ndarray  # (V, 3) float64, metres
    faces: np.ndarray  # (F, 3) int64
    symmetry: str = "none"
    axis: np.ndarray | None = None  # (3,) for "axis"


@dataclass
class Scene:
    """One synthetic scene: inputs for `reconstruct` plus the true object pose."""

    camera: CameraIntrinsics
    body_vertices: np.ndarray  # (V, 3) camera frame, metres
    body_faces: np.ndarray  # (F, 3)
    body_normals: np.ndarray  # (V, 3) outward unit normals
    body_contact: np.ndarray  # (V,) float32 {0, 1}
    obj: SceneObject
    object_contact: np.ndarray  # (Vo,) float32 {0, 1}
    rotation: np.ndarray  # (3, 3) true object rotation
    translation: np.ndarray  # (3,) true object translation, metres
    mask: np.ndarray  # (H, W) bool, visible object pixels
    box: np.ndarray  # (4,) noisy box around the visible object, pixels


def scene_objects() -> list[SceneObject]:
    """Hand-held test objects of everyday sizes: a mug (no symmetry), a book (box), a bottle (axis)."""
    edge = 0.012
    body = trimesh.creation.cylinder(radius=0.04, height=0.1, sections=24)
    handle = trimesh.creation.box([0.03, 0.06, 0.015])
    handle.apply_translation([0.05, 0.0, 0.0])
    mug = trimesh.util.concatenate([body, handle])
    mug.apply_transform(trimesh.transformations.rotation_matrix(np.pi / 2, [1, 0, 0]))  # axis along y
    book = trimesh.creation.box([0.22, 0.15, 0.035])
    bottle = trimesh.util.concatenate(
        [
            trimesh.creation.cylinder(radius=0.035, height=0.18, sections=24),
            trimesh.creation.cone(radius=0.035, height=0.08, sections=24).apply_translation([0, 0, 0.09]),
        ]
    )
    bottle.apply_transform(trimesh.transformations.rotation_matrix(-np.pi / 2, [1, 0, 0]))  # axis along y
    objects = []
    for name, mesh, symmetry in (("mug", mug, "none"), ("book", book, "box"), ("bottle", bottle, "axis")):
        mesh = mesh.subdivide_to_size(edge)
        v = mesh.vertices - mesh.bounds.mean(0)
        axis = np.array([0.0, 1.0, 0.0]) if symmetry == "axis" else None
        objects.append(SceneObject(name, v, np.asarray(mesh.faces, np.int64), symmetry, axis))
    return objects


def rotation_error_deg(obj: SceneObject, R_est: np.ndarray, R_true: np.ndarray) -> float:
    """Angle between two object rotations, modulo the object's symmetry, degrees."""
    if obj.symmetry == "axis":
        a, b = R_est @ obj.axis, R_true @ obj.axis
        return float(np.degrees(np.arccos(np.clip(a @ b, -1.0, 1.0))))
    flips = [np.eye(3)]
    if obj.symmetry == "box":
        flips += [np.diag(d) for d in ([1, -1, -1], [-1, 1, -1], [-1, -1, 1])]
    return float(min(np.degrees(Rotation.from_matrix(R_est @ F @ R_true.T).magnitude()) for F in flips))


def _arm_pose(model: BodyModel, rng: np.random.Generator) -> np.ndarray:
    """anny rest pose with both arms raised forward by random amounts, elbows bent."""
    pose = np.zeros((model.num_joints, 3), np.float32)
    for side in ("L", "R"):
        pose[model.joint_index(f"upperarm01.{side}")] = [-rng.uniform(0.4, 1.4), 0, rng.uniform(-0.3, 0.3)]
        pose[model.joint_index(f"lowerarm01.{side}")] = [-rng.uniform(0.0, 1.0), 0, 0]
    return pose


def _inside_depth(points: np.ndarray, tree: cKDTree, surface: np.ndarray, normals: np.ndarray) -> np.ndarray:
    """Depth (metres, >= 0) of points behind the nearest surface vertex's tangent plane."""
    _, nn = tree.query(points)
    return np.clip(-np.einsum("ij,ij->i", points - surface[nn], normals[nn]), 0, None)


def make_scene(
    model: BodyModel,
    rasterizer: Rasterizer,
    camera: CameraIntrinsics,
    obj: SceneObject,
    rng: np.random.Generator,
    box_noise: float = 0.05,
) -> Scene | None:
    """One random scene with `obj` in one hand; None when no valid placement was found.

    box_noise: standard deviation of each box edge's shift, as a fraction of the box's width/height.
    """
    yaw = rng.uniform(-0.8, 0.8)
    R_body = _BODY_TO_CAMERA @ Rotation.from_euler("y", yaw).as_matrix()
    transl = np.array([rng.uniform(-0.3, 0.3), rng.uniform(-0.1, 0.1), rng.uniform(2.2, 3.2)])
    out = model.forward(pose=_arm_pose(model, rng))
    bv = out.vertices[0].detach().numpy().astype(np.float64) @ R_body.T + transl
    body = trimesh.Trimesh(bv, model.faces, process=False)
    bn = np.asarray(body.vertex_normals)
    tree = cKDTree(bv)
    hand = model.part_vertex_ids(rng.choice(["left_hand", "right_hand"]))
    mesh = trimesh.Trimesh(obj.vertices, obj.faces, process=False)
    samples, _ = trimesh.sample.sample_surface(mesh, 600, seed=int(rng.integers(1 << 30)))
    for _ in range(30):
        b = rng.choice(hand)
        R = Rotation.random(random_state=int(rng.integers(1 << 30))).as_matrix()
        # Touch with the object vertex whose normal best opposes the hand's, 3 mm off the skin.
        o = int(np.argmin(mesh.vertex_normals @ R.T @ bn[b]))
        t = bv[b] + 0.003 * bn[b] - R @ obj.vertices[o]
        placed = samples @ R.T + t
        if _inside_depth(placed, tree, bv, bn).max() > 0.005 or placed[:, 2].min() < 0.3:
            continue
        body_contact = (cKDTree(placed).query(bv)[0] < _CONTACT_DISTANCE_M).astype(np.float32)
        object_contact = (tree.query(obj.vertices @ R.T + t)[0] < _CONTACT_DISTANCE_M).astype(np.float32)
        if body_contact.sum() < 3 or object_contact.sum() < 3:
            continue
        mask = _render_object_mask(rasterizer, camera, bv, model.faces, obj.vertices @ R.T + t, obj.faces)
        if mask.sum() < 100:
            continue
        ys, xs = np.nonzero(mask)
        box = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float64)
        size = np.tile(box[2:] - box[:2], 2)
        box = box + rng.normal(0.0, box_noise, 4) * size
        if np.any(box[2:] <= box[:2]):
            continue
        return Scene(
            camera, bv, np.asarray(model.faces), bn, body_contact, obj, object_contact, R, t, mask, box
        )
    return None


def _render_object_mask(
    rasterizer: Rasterizer,
    camera: CameraIntrinsics,
    body_vertices: np.ndarray,
    body_faces: np.ndarray,
    object_vertices: np.ndarray,
    object_faces: np.ndarray,
) -> np.ndarray:
    """(H, W) bool: pixels where the object is the front-most surface (body and object rendered together)."""
    v = np.concatenate([body_vertices, object_vertices])
    f = np.concatenate([body_faces, object_faces + len(body_vertices)])
    raster = rasterizer.rasterize(v, f, RenderCamera(world_to_camera=np.eye(4), intrinsics=camera))
    return raster.triangle_id >= len(body_faces)
