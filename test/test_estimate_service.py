"""~/estimate called by a planner in another process, and the placed objects as vision_msgs/Detection3DArray.

One contact node (real keypoint backend, reconstruction on, no smoothing or video warm start, so one
image gives one answer) on a real photo: the man holding a glass (test/data/player).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

pytestmark = pytest.mark.ros

rclpy = pytest.importorskip("rclpy")
pytest.importorskip("ivlm_ros.srv", reason="ivlm_ros messages are not built")
from node_harness import running_node  # noqa: E402
from polling import wait_for  # noqa: E402
from rclpy.lifecycle import TransitionCallbackReturn  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from scipy.spatial.transform import Rotation  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from ivlm_core.types import Detection  # noqa: E402
from ivlm_ros import conversions  # noqa: E402
from ivlm_ros.msg import ContactArray, ObjectDetectionArray  # noqa: E402

HERE = Path(__file__).resolve().parent
PHOTO = HERE / "data" / "player" / "man_holding_drink_glass.jpg"
PAIR = json.loads((HERE / "data" / "player" / "labels.json").read_text())[0]["pairs"][0]
DETECTIONS = [Detection("person", np.array(PAIR["person_box_xyxy"], float), 0.9, id="p7"),
              Detection(PAIR["object"], np.array(PAIR["box_xyxy"], float), 0.8, id="glass-3")]


@pytest.fixture(scope="module")
def live():
    """The node (configured, not yet active) and a peer publishing like a camera + detector."""
    overrides = [
        Parameter("reconstruct", value=True), Parameter("video", value=False),
        Parameter("detections_type", value="ivlm"), Parameter("smoothing_alpha", value=1.0),
        Parameter("max_rate_hz", value=0.0), Parameter("publish_markers", value=False),
        Parameter("detection_wait_s", value=2.0)]
    with running_node(overrides, peer="ivlm_estimate_peer", activate=False) as (node, peer):
        pubs = (peer.create_publisher(Image, "image", 10),
                peer.create_publisher(ObjectDetectionArray, "detections", 10))
        got: dict[str, list] = {"contacts": [], "objects": []}
        peer.create_subscription(ContactArray, "contacts", got["contacts"].append, 10)
        if conversions.vision_msgs_installed():
            from vision_msgs.msg import Detection3DArray

            peer.create_subscription(Detection3DArray, "objects_3d", got["objects"].append, 10)
        yield node, pubs, got


def _client(stamp: int) -> dict:
    """Call /contact_node/estimate from a separate process (a planner) with the photo and its detections."""
    args = [a for d in DETECTIONS for a in (d.label, *(str(v) for v in d.box_xyxy), d.id)]
    client = str(HERE / "estimate_client.py")
    command = [sys.executable, client, "/contact_node/estimate", str(PHOTO), str(stamp)]
    out = subprocess.run([*command, *args], capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, PYTHONPATH=str(HERE.parent)))
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def _stream(pubs, stamp: int) -> Header:
    header = Header(frame_id="camera_optical")
    header.stamp.sec = stamp
    rgb = cv2.cvtColor(cv2.imread(str(PHOTO)), cv2.COLOR_BGR2RGB)
    pubs[0].publish(conversions.rgb_to_image(rgb, header))
    pubs[1].publish(conversions.detections_to_ivlm_msg(DETECTIONS, header))
    return header


def test_estimate_from_another_process_refused_while_inactive_then_answers_like_the_stream(live):
    node, pubs, got = live
    inactive = _client(5)
    assert not inactive["success"] and not inactive["contacts"]
    assert "inactive" in inactive["message"] and "activate" in inactive["message"]

    assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
    answer = _client(6)
    assert answer["success"], answer["message"]
    assert (answer["stamp"], answer["frame_id"]) == (6, "camera_optical")  # the request image's header
    assert [c["object_id"] for c in answer["contacts"]] == ["glass-3"]

    header = _stream(pubs, 7)  # the same image and detections through the topics
    streamed = wait_for(lambda: next((c for c in got["contacts"] if c.header == header), None), 120.0)
    assert streamed is not None, "no ContactArray for the streamed photo"
    assert len(streamed.contacts) == len(answer["contacts"])
    for s, a in zip(streamed.contacts, answer["contacts"], strict=True):
        assert (s.object_id, s.object_label, s.reconstructed) == (a["object_id"], a["object_label"],
                                                                  a["reconstructed"])
        assert list(s.body_vertex_ids) == a["body_vertex_ids"]


@pytest.mark.launch_tools
def test_placed_objects_are_published_as_detection3d_matching_the_contact_array(live):
    node, pubs, got = live
    if node.trigger_activate() != TransitionCallbackReturn.SUCCESS:
        assert node._running  # already active (the test above activated it)
    header = _stream(pubs, 8)
    contacts = wait_for(lambda: next((c for c in got["contacts"] if c.header == header), None), 120.0)
    objects = wait_for(lambda: next((o for o in got["objects"] if o.header == header), None), 30.0)
    assert contacts is not None and objects is not None, "no ContactArray / Detection3DArray for the frame"
    placed = [c for c in contacts.contacts if c.reconstructed]
    assert placed, "the glass was not placed in 3D (reconstruction failed its checks)"
    assert len(objects.detections) == len({c.object_id for c in placed})
    for c in placed:
        det = next(d for d in objects.detections if d.id == c.object_id)
        assert det.header == contacts.header
        (hyp,) = det.results
        assert hyp.hypothesis.class_id == c.object_label
        assert hyp.hypothesis.score == pytest.approx(c.object_score)
        assert hyp.pose.pose == c.object_pose  # pose in the camera frame, as the Contact's
        assert det.bbox.center.orientation == c.object_pose.orientation
        size = np.array([det.bbox.size.x, det.bbox.size.y, det.bbox.size.z])
        assert np.all(size > 0.01) and np.all(size < 0.5)  # a glass: centimetres, not metres
        # every object contact point of the Contact lies on the placed mesh, so inside the box
        q = det.bbox.center.orientation
        R = Rotation.from_quat([q.x, q.y, q.z, q.w]).as_matrix()
        p = det.bbox.center.position
        centre = np.array([p.x, p.y, p.z])
        local = (conversions.points_to_array(c.object_contact_points) - centre) @ R
        assert len(local) and np.all(np.abs(local) <= size / 2 + 1e-4)
        assert centre[2] > 0  # in front of the camera
