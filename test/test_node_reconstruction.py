"""The joint 3D reconstruction in the Contact message and the markers: pose, contact points, grasp points.

Real reconstructions: the shipped anny body holding a book (a synthetic scene with a rendered
silhouette, `ivlm_core.testing`), placed by `reconstruct`; failures are real ones too.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation

pytestmark = pytest.mark.ros

conversions = pytest.importorskip("ivlm_ros.conversions", reason="ivlm_ros messages are not built")
import skimage.data  # noqa: E402
from node_harness import running_node  # noqa: E402
from polling import wait_for  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from scenes import book_result, book_scene, reconstruct_scene  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import Header  # noqa: E402
from visualization_msgs.msg import Marker, MarkerArray  # noqa: E402

from ivlm_core.contact_report import ReportConfig, contact_report  # noqa: E402
from ivlm_core.decimation import decimate  # noqa: E402
from ivlm_core.types import Detection  # noqa: E402
from ivlm_ros.markers import contact_markers  # noqa: E402
from ivlm_ros.msg import ContactArray, ObjectDetectionArray  # noqa: E402

CAMERA_BOX = np.array([245.0, 135.0, 335.0, 245.0])  # the camcorder on its tripod in skimage's camera.png


@pytest.fixture(scope="module")
def book():
    return book_scene()


def _xyz(points) -> np.ndarray:
    return conversions.points_to_array(points)


def test_message_carries_the_report_field_for_field(book):
    """contact_to_msg writes the report as it is: same ids, points, pose, grasp points as its JSON."""
    scene, rec = book
    report = contact_report(book_result(scene, rec), ReportConfig(0.4, 0.05))
    msg, as_json = conversions.contact_to_msg(report, person_id=2), report.as_dict()
    assert msg.person_id == 2 and msg.reconstructed and msg.contact_threshold == pytest.approx(0.4)
    assert list(msg.body_vertex_ids) == as_json["body_vertex_ids"]
    assert list(msg.object_vertex_ids) == as_json["object_vertex_ids"]
    for name in ("body_contact_points", "object_contact_points", "object_contact_normals", "grasp_points",
                 "grasp_normals"):
        np.testing.assert_allclose(_xyz(getattr(msg, name)), np.reshape(as_json[name], (-1, 3)), atol=1e-12)
    p, q = msg.object_pose.position, msg.object_pose.orientation
    np.testing.assert_allclose([p.x, p.y, p.z], rec.object_pose[:3, 3], atol=1e-9)
    np.testing.assert_allclose(Rotation.from_quat([q.x, q.y, q.z, q.w]).as_matrix(), rec.object_pose[:3, :3],
                               atol=1e-6)
    assert msg.object_scale == pytest.approx(rec.object_scale)
    failed = conversions.contact_to_msg(contact_report(book_result(scene, None)), 0)
    p, q = failed.object_pose.position, failed.object_pose.orientation
    assert (p.x, p.y, p.z, q.x, q.y, q.z, q.w) == (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0)
    assert not failed.reconstructed and "'reconstruct'" in failed.reconstruction_reason


def test_grasp_marker_draws_the_published_grasp_points_and_only_for_reconstructed_pairs(book):
    scene, rec = book
    header = Header(frame_id="camera_optical")
    c, half = 0.5 * (scene.box[:2] + scene.box[2:]), 2.5 * (scene.box[2:] - scene.box[:2])
    failed = reconstruct_scene(scene, box=np.concatenate([c - half, c + half]))
    reports = [contact_report(book_result(scene, r), ReportConfig(0.5)) for r in (rec, failed)]
    grasp = [_xyz(conversions.contact_to_msg(r, 0).grasp_points) for r in reports]
    assert len(grasp[0]) and not len(grasp[1])

    book_mesh = (scene.obj.vertices, decimate(scene.obj.vertices, scene.obj.faces, 500))
    out = contact_markers(header, reports, [0, 0], None, lambda r: book_mesh)
    assert out.markers[0].action == Marker.DELETEALL  # last frame's grasp points vanish
    marks = [m for m in out.markers if m.ns == "grasp"]
    assert len(marks) == 1 and marks[0].id == 0 and marks[0].header.frame_id == "camera_optical"
    m = marks[0]
    assert m.type == Marker.SPHERE_LIST and m.action == Marker.ADD and m.scale.x > 0
    assert m.color.g > 0.5 > max(m.color.r, m.color.b) and m.color.a == 1.0  # green
    np.testing.assert_allclose(_xyz(m.points), grasp[0])
    objects = [m for m in out.markers if m.ns == "object"]  # the placed mesh, for the reconstructed pair only
    assert len(objects) == 1 and objects[0].id == 0 and len(objects[0].points) <= 3 * 500

    # the next frame without a reconstruction: everything cleared, no grasp marker drawn again
    later = contact_markers(header, [reports[1]], [0], None, lambda r: book_mesh)
    assert later.markers[0].action == Marker.DELETEALL and not [m for m in later.markers if m.ns == "grasp"]
    assert not [m for m in later.markers if m.ns == "object"]  # a failed pose is never drawn


@pytest.fixture(scope="module")
def live():
    """A contact node with its default 3D placement (real keypoint backend) and binary contact, and a peer
    node that publishes like a camera driver and a detector and listens to contacts and markers, all in a
    private rclpy context."""
    overrides = [
        Parameter("binary_contact", value=True), Parameter("detections_type", value="ivlm"),
        Parameter("image_qos", value="reliable"), Parameter("smoothing_alpha", value=1.0),
        Parameter("max_rate_hz", value=0.0), Parameter("marker_rate_hz", value=50.0),
        Parameter("grasp_clearance", value=0.06),
        Parameter("detection_wait_s", value=2.0)]  # in-process publisher + backend: no timing race
    with running_node(overrides, peer="ivlm_reconstruction_peer") as (_, peer):
        pubs = (peer.create_publisher(Image, "image", 10),
                peer.create_publisher(ObjectDetectionArray, "detections", 10))
        got: tuple[list[ContactArray], list[MarkerArray]] = ([], [])
        peer.create_subscription(ContactArray, "contacts", got[0].append, 10)
        peer.create_subscription(MarkerArray, "contact_markers", got[1].append, 10)
        yield pubs, got


def test_node_publishes_a_real_photo_reconstruction_consistently_in_message_and_markers(live):
    """camera.png through the node: whether or not the camcorder's pose passes the checks, the message and
    the markers say the same thing, and a published pose comes with grasp points clear of every contact."""
    (image_pub, det_pub), (contacts, marker_arrays) = live
    header = Header(frame_id="camera_optical")
    header.stamp.sec = 77
    rgb = np.repeat(skimage.data.camera()[:, :, None], 3, axis=2)
    image_pub.publish(conversions.rgb_to_image(rgb, header))
    det_pub.publish(conversions.detections_to_ivlm_msg([Detection("camera", CAMERA_BOX)], header))
    out = wait_for(lambda: next((c for c in contacts if c.header == header), None), 60.0)
    assert out is not None and len(out.contacts) == 2, "no ContactArray for the published photo"
    c, anything = out.contacts
    assert c.object_label == "camera" and c.in_contact and c.grasp_clearance == pytest.approx(0.06)
    # binary contact: the same person touching anything, with no object side
    assert anything.object_label == "any" and anything.person_id == c.person_id and anything.in_contact
    assert set(c.body_parts) <= set(anything.body_parts)
    assert anything.object_mesh_id == "" and not anything.object_vertex_ids and not anything.reconstructed
    assert not anything.grasp_points and "no object" in anything.reconstruction_reason
    markers = wait_for(lambda: next((m for m in marker_arrays if m.markers and m.markers[0].header == header),
                                 None), 30.0)
    assert markers is not None, "no MarkerArray for the published photo"
    grasp_marks = [m for m in markers.markers if m.ns == "grasp"]
    object_marks = [m for m in markers.markers if m.ns == "object"]
    if not c.reconstructed:
        assert c.reconstruction_reason and c.reconstruction_quality == 0.0 and c.object_scale == 0.0
        assert not c.grasp_points and not c.object_contact_points and not grasp_marks and not object_marks
        return
    assert c.reconstruction_reason == "" and 0.0 < c.reconstruction_quality <= 1.0
    q = c.object_pose.orientation
    assert np.linalg.norm([q.x, q.y, q.z, q.w]) == pytest.approx(1.0)
    assert len(c.object_contact_points) == len(c.object_contact_normals) == len(c.object_vertex_ids)
    grasp = _xyz(c.grasp_points)
    contact_points = np.concatenate([_xyz(c.body_contact_points), _xyz(c.object_contact_points)])
    assert len(grasp) and cKDTree(contact_points).query(grasp)[0].min() >= 0.06
    np.testing.assert_allclose(np.linalg.norm(_xyz(c.grasp_normals), axis=1), 1.0, atol=1e-4)
    assert len(object_marks) == 1 and len(grasp_marks) == 1
    np.testing.assert_allclose(_xyz(grasp_marks[0].points), grasp)
