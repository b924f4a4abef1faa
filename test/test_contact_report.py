"""The contact report (ivlm_core.contact_report): listed vertices, their 3D points, pose, grasp points.

No ROS: real reconstructions of the shipped anny body holding a book (`ivlm_core.testing`); failures are
real ones too.
"""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from scenes import book_result, book_scene, reconstruct_scene
from scipy.spatial import cKDTree

from ivlm_core.contact_report import ReportConfig, contact_report, placed_objects
from ivlm_core.types import Detection


@pytest.fixture(scope="module")
def book():
    return book_scene()


def _halo(p: np.ndarray, ids: np.ndarray, vertices: np.ndarray, radius: float) -> np.ndarray:
    """`p` with 0.35 on every vertex within `radius` of the vertices `ids` that has less (smoothing's rim)."""
    near = cKDTree(vertices[ids]).query(vertices)[0] < radius
    return np.where(near & (p < 0.35), np.float32(0.35), p).astype(np.float32)


def test_reconstructed_pair_gives_its_pose_and_grasp_points_clear_of_every_contact(book):
    scene, rec = book
    # A lower threshold (0.3) and smoothed probabilities list a rim of body and object vertices around
    # the regions the reconstruction used (threshold 0.5): every listed vertex gets its point, and grasp
    # points keep the clearance from all of them, not just from the reconstruction's.
    body_p = _halo(scene.body_contact, np.flatnonzero(scene.body_contact >= 0.5), scene.body_vertices, 0.04)
    obj_p = _halo(scene.object_contact, np.flatnonzero(scene.object_contact >= 0.5), scene.obj.vertices, 0.03)
    result = book_result(scene, rec, body_p, obj_p)
    report = contact_report(result, ReportConfig(0.3, 0.05))

    assert report.reconstructed and report.reconstruction_reason == ""
    assert report.reconstruction_quality == pytest.approx(rec.quality)
    assert report.object_scale == pytest.approx(rec.object_scale)
    np.testing.assert_allclose(report.object_pose, rec.object_pose)

    body, obj_ids = report.body_contact_points, report.object_vertex_ids
    np.testing.assert_array_equal(report.body_vertex_ids, np.flatnonzero(body_p >= 0.3))
    assert len(body) == len(report.body_vertex_ids) > len(rec.body_contact_vertex_ids)
    assert len(obj_ids) > len(rec.object_contact_vertex_ids)
    obj_pts = report.object_contact_points
    assert len(obj_pts) == len(report.object_contact_normals) == len(obj_ids)
    R, t, s = rec.object_pose[:3, :3], rec.object_pose[:3, 3], rec.object_scale
    np.testing.assert_allclose(obj_pts, s * scene.obj.vertices[obj_ids] @ R.T + t, atol=1e-6)
    shared = np.isin(obj_ids, rec.object_contact_vertex_ids)  # the reconstruction's own points agree
    np.testing.assert_allclose(obj_pts[shared], rec.object_contact_points, atol=1e-5)

    grasp, normals = report.grasp_points, report.grasp_normals
    assert 10 <= len(grasp) < len(rec.grasp_points) and normals.shape == grasp.shape
    assert cKDTree(np.concatenate([body, obj_pts])).query(grasp)[0].min() >= 0.05
    assert cKDTree(rec.grasp_points).query(grasp)[0].max() < 1e-6  # a subset of the reconstruction's
    np.testing.assert_allclose(np.linalg.norm(normals, axis=1), 1.0, atol=1e-4)

    wider = contact_report(result, ReportConfig(0.3, 0.1))
    assert 0 < len(wider.grasp_points) < len(grasp)
    assert cKDTree(body).query(wider.grasp_points)[0].min() >= 0.1

    as_json = json.loads(json.dumps(report.as_dict()))  # what a CLI writes: the same numbers
    assert as_json["object_vertex_ids"] == obj_ids.tolist() and as_json["grasp_clearance"] == 0.05
    np.testing.assert_allclose(as_json["grasp_points"], grasp)
    np.testing.assert_allclose(as_json["object_pose"], rec.object_pose)


def test_failed_reconstruction_is_never_reported_as_a_pose(book):
    scene, _ = book
    c, half = 0.5 * (scene.box[:2] + scene.box[2:]), 2.5 * (scene.box[2:] - scene.box[:2])
    failed = reconstruct_scene(scene, box=np.concatenate([c - half, c + half]))  # the box disagrees: IoU
    assert not failed.ok and not np.allclose(failed.object_pose, np.eye(4))  # a fitted pose that failed
    no_body = reconstruct_scene(replace(scene, body_contact=np.zeros_like(scene.body_contact)))
    for rec, why in ((failed, "IoU"), (no_body, "no body vertex")):
        report = contact_report(book_result(scene, rec), ReportConfig(0.5))
        assert not report.reconstructed and why in report.reconstruction_reason
        assert report.reconstruction_reason == rec.reason
        np.testing.assert_array_equal(report.object_pose, np.eye(4))
        assert report.object_scale == 0.0 and report.reconstruction_quality == 0.0
        assert not len(report.object_contact_points) and not len(report.object_contact_normals)
        assert not len(report.grasp_points) and not len(report.grasp_normals)
    # no reconstruction at all: the backend's reason, or the parameter that turns it on
    why = "no body part passed the contact threshold"
    report = contact_report(book_result(scene, None, reason=why))
    assert not report.reconstructed and why in report.reconstruction_reason
    assert "'reconstruct'" in contact_report(book_result(scene, None)).reconstruction_reason
    with pytest.raises(ValueError, match="grasp_clearance"):
        ReportConfig(0.5, -0.01)
    with pytest.raises(ValueError, match="contact_threshold"):
        ReportConfig(2.0)
    with pytest.raises(ValueError, match="object mesh has"):
        result = book_result(scene, book[1])
        cut = replace(result.object_mesh, vertices=scene.obj.vertices[:-1])
        contact_report(replace(result, object_mesh=cut))


def test_placed_objects_lists_each_detection_once_with_its_best_placement_and_the_mesh_box(book):
    scene, rec = book
    result = book_result(scene, rec)
    worse = replace(rec, quality=rec.quality / 2, object_pose=rec.object_pose @ np.diag([1, -1, -1, 1]))
    other_person = replace(result, person_index=1, reconstruction=worse)
    failed = replace(result, obj=Detection("book", scene.box + 50.0, id="book-2"), reconstruction=None)
    reports = [contact_report(r) for r in (other_person, result, failed)]
    (placed,) = placed_objects(reports)  # the failed pair's book is not placed; the first once
    assert placed.detection is result.obj and placed.quality == pytest.approx(rec.quality)
    np.testing.assert_allclose(placed.pose, rec.object_pose)
    # the box holds the placed mesh: its vertices, in the object's axes around the centre, fill it
    R, t, s = rec.object_pose[:3, :3], rec.object_pose[:3, 3], rec.object_scale
    local = (s * scene.obj.vertices @ R.T + t - placed.box_centre) @ R
    np.testing.assert_allclose(local.max(axis=0), placed.box_size / 2, atol=1e-9)
    np.testing.assert_allclose(local.min(axis=0), -placed.box_size / 2, atol=1e-9)
    assert placed_objects([contact_report(replace(result, object_mesh=None))]) == []  # no mesh, no box
