"""Markers of the node: decimated body and object meshes, contact and grasp points."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.ros

pytest.importorskip("ivlm_ros.msg", reason="ivlm_ros messages are not built")

from visualization_msgs.msg import Marker  # noqa: E402

from ivlm_core.body import load_body_model  # noqa: E402
from ivlm_core.colours import CONTACT_RGB, NO_CONTACT_RGB  # noqa: E402
from ivlm_core.contact_report import contact_report  # noqa: E402
from ivlm_core.decimation import decimate  # noqa: E402
from ivlm_core.objects import ObjectRegistry  # noqa: E402
from ivlm_core.types import ContactResult, Detection  # noqa: E402
from ivlm_ros.markers import body_marker, contact_markers, object_marker  # noqa: E402


def _result(p: np.ndarray, label: str = "cup") -> ContactResult:
    return ContactResult(person_index=0, obj=Detection(label, np.array([0.0, 0, 10, 10])), body_model="anny",
                         body_probabilities=p.astype(np.float32), body_parts={}, object_mesh_id="builtin:cup",
                         object_probabilities=np.zeros(3, np.float32), backend="keypoint")


@pytest.fixture(scope="module")
def anny():
    return load_body_model("anny")


@pytest.mark.parametrize("budget", [500, 3000])
def test_body_marker_meets_the_triangle_budget_and_keeps_a_small_contact_patch(anny, budget):
    mesh = decimate(anny.canonical_vertices, anny.faces, budget)
    assert 0.6 * budget <= len(mesh.faces) <= budget
    hand = anny.part_vertex_ids("right_hand")
    p = np.zeros(anny.num_vertices, np.float32)
    p[hand[:5]] = 1.0  # five vertices: less than one cluster at the coarsest budget
    m = body_marker(None, 1, anny.canonical_vertices, p, mesh)
    assert m.type == Marker.TRIANGLE_LIST and len(m.points) == 3 * len(mesh.faces) == len(m.colors)
    red = np.array([[c.r, c.g, c.b] for c in m.colors])
    assert np.any(np.all(np.isclose(red, CONTACT_RGB, atol=1e-6), axis=1)), "the contact patch vanished"
    assert all(c.a > 0 for c in m.colors)
    xyz = np.array([[q.x, q.y, q.z] for q in m.points])
    extent = np.ptp(anny.canonical_vertices, axis=0)
    assert np.all(np.ptp(xyz, axis=0) > 0.8 * extent)  # the decimated body still spans the body


def test_markers_start_with_deleteall_and_draw_each_person_once(anny):
    mesh = decimate(anny.canonical_vertices, anny.faces, 1000)
    p = np.zeros(anny.num_vertices, np.float32)
    p[anny.part_vertex_ids("left_hand")] = 0.9
    results = [_result(p, "cup"), _result(p, "bottle")]
    for r in results:
        r.body_vertices = anny.canonical_vertices
    out = contact_markers(None, [contact_report(r) for r in results], [4, 4], mesh, lambda r: None)
    assert out.markers[0].action == Marker.DELETEALL
    assert [m.ns for m in out.markers[1:]].count("body") == 1
    points = [m for m in out.markers if m.ns == "contact_points"]
    assert len(points) == 2 and len(points[0].points) == len(anny.part_vertex_ids("left_hand"))


@pytest.mark.parametrize("budget", [10**6, 1000])
def test_object_marker_places_the_registry_mesh_at_the_reconstructed_pose(budget):
    cup = ObjectRegistry().builtin("cup")
    pose = np.eye(4)
    pose[:3, :3] = [[0, 0, 1], [0, 1, 0], [-1, 0, 0]]  # 90 degrees about y
    pose[:3, 3] = [0.2, -0.1, 1.3]
    p = np.zeros(len(cup.vertices), np.float32)
    p[: len(p) // 4] = 1.0
    mesh = decimate(cup.vertices, cup.faces, budget)
    m = object_marker(None, 0, cup.vertices, mesh, p, pose, scale=2.0)
    assert m.type == Marker.TRIANGLE_LIST and len(m.points) == 3 * len(mesh.faces) == len(m.colors)
    assert min(budget, len(cup.faces)) * 0.6 <= len(mesh.faces) <= min(budget, len(cup.faces))
    xyz = np.array([[q.x, q.y, q.z] for q in m.points])
    corners = cup.vertices[mesh.kept[mesh.faces.reshape(-1)]].astype(np.float64)
    np.testing.assert_allclose(xyz, 2.0 * corners @ pose[:3, :3].T + pose[:3, 3], atol=1e-6)
    red = np.array([[c.r, c.g, c.b] for c in m.colors])
    assert np.isclose(red[:, 1], CONTACT_RGB[1], atol=1e-6).any()  # contact and no contact both shown
    assert np.isclose(red[:, 1], NO_CONTACT_RGB[1], atol=1e-6).any()
