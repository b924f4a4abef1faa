"""The joint 3D reconstruction in the Contact message and the markers: pose, contact points, grasp points.

Real reconstructions: the shipped anny body holding a book (a synthetic scene with a rendered
silhouette, `ivlm_core.reconstruct.synthetic`), placed by `reconstruct`; failures are real ones too.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation

pytestmark = pytest.mark.ros

conversions = pytest.importorskip("ivlm_ros.conversions", reason="ivlm_ros messages are not built")
from std_msgs.msg import Header  # noqa: E402
from visualization_msgs.msg import Marker  # noqa: E402

from ivlm_core.body import load_body_model  # noqa: E402
from ivlm_core.reconstruct import reconstruct  # noqa: E402
from ivlm_core.reconstruct.synthetic import Scene, make_scene, scene_objects  # noqa: E402
from ivlm_core.render.rasterize import Rasterizer  # noqa: E402
from ivlm_core.types import CameraIntrinsics, ContactResult, Detection, Reconstruction  # noqa: E402
from ivlm_ros.markers import contact_markers  # noqa: E402


def _reconstruct(scene: Scene, box: np.ndarray | None = None, **kwargs) -> Reconstruction:
    return reconstruct(scene.body_vertices, scene.body_faces, scene.body_contact, scene.obj,
                       scene.object_contact, scene.box if box is None else box, scene.camera,
                       scene.mask if box is None else None, scene.body_normals, **kwargs)


@pytest.fixture(scope="module")
def book() -> tuple[Scene, Reconstruction]:
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
    rec = _reconstruct(scene)
    assert rec.ok, rec.reason
    return scene, rec


def _result(scene: Scene, rec: Reconstruction | None, body_p: np.ndarray | None = None,
            obj_p: np.ndarray | None = None, reason: str = "") -> ContactResult:
    return ContactResult(
        person_index=0, obj=Detection("book", scene.box), body_model="anny",
        body_probabilities=scene.body_contact if body_p is None else body_p, body_parts={"right_hand": 0.9},
        object_mesh_id="builtin:book", object_probabilities=scene.object_contact if obj_p is None else obj_p,
        backend="keypoint", reason=reason, body_vertices=scene.body_vertices.astype(np.float32),
        body_normals=scene.body_normals.astype(np.float32), reconstruction=rec)


def _xyz(points) -> np.ndarray:
    return conversions.points_to_array(points)


def _halo(p: np.ndarray, ids: np.ndarray, vertices: np.ndarray, radius: float) -> np.ndarray:
    """`p` with 0.35 on every vertex within `radius` of the vertices `ids` that has less (smoothing's rim)."""
    near = cKDTree(vertices[ids]).query(vertices)[0] < radius
    return np.where(near & (p < 0.35), np.float32(0.35), p).astype(np.float32)


def test_reconstructed_pair_gives_its_pose_and_grasp_points_clear_of_every_contact(book):
    scene, rec = book
    # The node's threshold (0.3) and smoothed probabilities list a rim of body and object vertices
    # around the regions the reconstruction used (threshold 0.5): every listed vertex gets its point,
    # and grasp points keep the clearance from all of them, not just from the reconstruction's.
    body_p = _halo(scene.body_contact, np.flatnonzero(scene.body_contact >= 0.5), scene.body_vertices, 0.04)
    obj_p = _halo(scene.object_contact, np.flatnonzero(scene.object_contact >= 0.5), scene.obj.vertices, 0.03)
    result = _result(scene, rec, body_p, obj_p)
    msg = conversions.contact_to_msg(result, person_id=2, threshold=0.3, grasp_clearance=0.05,
                                     object_mesh=scene.obj)

    assert msg.reconstructed and msg.reconstruction_reason == ""
    assert msg.reconstruction_quality == pytest.approx(rec.quality) and msg.object_scale == pytest.approx(
        rec.object_scale)
    p, q = msg.object_pose.position, msg.object_pose.orientation
    np.testing.assert_allclose([p.x, p.y, p.z], rec.object_pose[:3, 3], atol=1e-9)
    np.testing.assert_allclose(Rotation.from_quat([q.x, q.y, q.z, q.w]).as_matrix(), rec.object_pose[:3, :3],
                               atol=1e-6)

    body = _xyz(msg.body_contact_points)
    obj_ids = np.array(msg.object_vertex_ids)
    assert len(body) == len(msg.body_vertex_ids) > len(rec.body_contact_vertex_ids)
    assert len(obj_ids) > len(rec.object_contact_vertex_ids)
    obj_pts = _xyz(msg.object_contact_points)
    assert len(obj_pts) == len(msg.object_contact_normals) == len(obj_ids)
    R, t, s = rec.object_pose[:3, :3], rec.object_pose[:3, 3], rec.object_scale
    np.testing.assert_allclose(obj_pts, s * scene.obj.vertices[obj_ids] @ R.T + t, atol=1e-6)
    shared = np.isin(obj_ids, rec.object_contact_vertex_ids)  # the reconstruction's own points agree
    np.testing.assert_allclose(obj_pts[shared], rec.object_contact_points, atol=1e-5)

    grasp, normals = _xyz(msg.grasp_points), _xyz(msg.grasp_normals)
    assert msg.grasp_clearance == pytest.approx(0.05)
    assert 10 <= len(grasp) < len(rec.grasp_points) and normals.shape == grasp.shape
    assert cKDTree(np.concatenate([body, obj_pts])).query(grasp)[0].min() >= 0.05
    assert cKDTree(rec.grasp_points).query(grasp)[0].max() < 1e-6  # a subset of the reconstruction's
    np.testing.assert_allclose(np.linalg.norm(normals, axis=1), 1.0, atol=1e-4)

    wider = conversions.contact_to_msg(result, 2, 0.3, grasp_clearance=0.1, object_mesh=scene.obj)
    assert 0 < len(wider.grasp_points) < len(grasp)
    assert cKDTree(body).query(_xyz(wider.grasp_points))[0].min() >= 0.1


def test_failed_reconstruction_is_never_published_as_a_pose(book):
    scene, _ = book
    c, half = 0.5 * (scene.box[:2] + scene.box[2:]), 2.5 * (scene.box[2:] - scene.box[:2])
    failed = _reconstruct(scene, box=np.concatenate([c - half, c + half]))  # the box disagrees: IoU check
    assert not failed.ok and not np.allclose(failed.object_pose, np.eye(4))  # a fitted pose that failed
    no_body = _reconstruct(replace(scene, body_contact=np.zeros_like(scene.body_contact)))
    for rec, why in ((failed, "IoU"), (no_body, "no body vertex")):
        msg = conversions.contact_to_msg(_result(scene, rec), 0, 0.5, object_mesh=scene.obj)
        assert not msg.reconstructed and why in msg.reconstruction_reason
        assert msg.reconstruction_reason == rec.reason
        p, q = msg.object_pose.position, msg.object_pose.orientation
        assert (p.x, p.y, p.z, q.x, q.y, q.z, q.w) == (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0)
        assert msg.object_scale == 0.0 and msg.reconstruction_quality == 0.0
        assert not msg.object_contact_points and not msg.object_contact_normals
        assert not msg.grasp_points and not msg.grasp_normals
    # no reconstruction at all: the backend's reason, or the parameter that turns it on
    msg = conversions.contact_to_msg(_result(scene, None, reason="no body part passed the contact threshold"),
                                     0, 0.5)
    assert not msg.reconstructed and "no body part passed" in msg.reconstruction_reason
    assert "'reconstruct'" in conversions.contact_to_msg(_result(scene, None), 0, 0.5).reconstruction_reason
    with pytest.raises(ValueError, match="grasp_clearance"):
        conversions.contact_to_msg(_result(scene, None), 0, 0.5, grasp_clearance=-0.01)
    with pytest.raises(ValueError, match="object mesh has"):
        conversions.contact_to_msg(_result(scene, book[1]), 0, 0.5,
                                   object_mesh=replace(scene.obj, vertices=scene.obj.vertices[:-1]))


def test_grasp_marker_draws_the_published_grasp_points_and_only_for_reconstructed_pairs(book):
    scene, rec = book
    header = Header(frame_id="camera_optical")
    c, half = 0.5 * (scene.box[:2] + scene.box[2:]), 2.5 * (scene.box[2:] - scene.box[:2])
    failed = _reconstruct(scene, box=np.concatenate([c - half, c + half]))
    results = [_result(scene, rec), _result(scene, failed)]
    msgs = [conversions.contact_to_msg(r, 0, 0.5, object_mesh=scene.obj) for r in results]
    grasp = [_xyz(m.grasp_points) for m in msgs]
    assert len(grasp[0]) and not len(grasp[1])

    out = contact_markers(header, results, [0, 0], 0.5, None, lambda r: (scene.obj.vertices, scene.obj.faces),
                          grasp)
    assert out.markers[0].action == Marker.DELETEALL  # last frame's grasp points vanish
    marks = [m for m in out.markers if m.ns == "grasp"]
    assert len(marks) == 1 and marks[0].id == 0 and marks[0].header.frame_id == "camera_optical"
    m = marks[0]
    assert m.type == Marker.SPHERE_LIST and m.action == Marker.ADD and m.scale.x > 0
    assert m.color.g > 0.5 > max(m.color.r, m.color.b) and m.color.a == 1.0  # green
    np.testing.assert_allclose(_xyz(m.points), grasp[0])
    objects = [m for m in out.markers if m.ns == "object"]  # the placed mesh, for the reconstructed pair only
    assert len(objects) == 1 and objects[0].id == 0

    # the next frame without a reconstruction: everything cleared, no grasp marker drawn again
    later = contact_markers(header, [results[1]], [0], 0.5, None, lambda r: None, [grasp[1]])
    assert later.markers[0].action == Marker.DELETEALL and not [m for m in later.markers if m.ns == "grasp"]
    with pytest.raises(ValueError, match="grasp_points has 1 entries for 2"):
        contact_markers(header, results, [0, 0], 0.5, None, lambda r: None, grasp[:1])
