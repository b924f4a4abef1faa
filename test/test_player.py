"""The player: files, folders and videos become image + camera info + detections with one stamp."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data

pytestmark = pytest.mark.ros

rclpy = pytest.importorskip("rclpy")
pytest.importorskip("ivlm_ros.msg", reason="ivlm_ros messages are not built")

from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from sensor_msgs.msg import CameraInfo, CompressedImage, Image  # noqa: E402

from ivlm_ros import conversions  # noqa: E402
from ivlm_ros.msg import ObjectDetectionArray  # noqa: E402
from ivlm_ros.player import Player  # noqa: E402

DATA = Path(__file__).resolve().parent / "data" / "player"


@pytest.fixture(scope="module")
def context():
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    yield ctx
    rclpy.shutdown(context=ctx)


def _play(context, params: list[Parameter], frames: int) -> tuple[Player, dict[str, list]]:
    """Run a player for `frames` publish_next() calls and collect what a subscriber receives."""
    player = Player(context=context, parameter_overrides=[Parameter("rate_hz", value=0.01), *params])
    listener = rclpy.create_node("player_listener", context=context)
    got: dict[str, list] = {"image": [], "camera_info": [], "detections": [], "compressed": []}
    listener.create_subscription(Image, "image", got["image"].append, 10)
    listener.create_subscription(CameraInfo, "camera_info", got["camera_info"].append, 10)
    listener.create_subscription(ObjectDetectionArray, "detections", got["detections"].append, 10)
    listener.create_subscription(CompressedImage, "image/compressed", got["compressed"].append, 10)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(player)
    executor.add_node(listener)
    deadline = time.monotonic() + 5.0
    topics = ["image", "camera_info", "detections"] + (["image/compressed"] if player.p["compressed"] else [])
    while not all(player.count_subscribers(t) for t in topics):
        executor.spin_once(timeout_sec=0.05)
        assert time.monotonic() < deadline, "player and listener did not discover each other"
    results = [player.publish_next() for _ in range(frames)]
    deadline = time.monotonic() + 5.0
    expected = {"image", "camera_info", "detections"} | ({"compressed"} if player.p["compressed"] else set())
    while any(len(got[k]) < sum(results) for k in expected) and time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.05)
    got["results"] = results
    executor.shutdown()
    listener.destroy_node()
    player.destroy_node()
    return player, got


def test_folder_with_labels_publishes_the_photo_its_boxes_and_one_stamp(context):
    params = [Parameter("source", value=str(DATA)), Parameter("detections_type", value="ivlm"),
              Parameter("compressed", value=True)]
    _, got = _play(context, params, 1)
    image, info, dets = got["image"][0], got["camera_info"][0], got["detections"][0]
    assert image.header == info.header == dets.header == got["compressed"][0].header
    expected = cv2.cvtColor(cv2.imread(str(DATA / "man_holding_drink_glass.jpg")), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(conversions.image_to_rgb(image), expected)
    assert (info.width, info.height) == (expected.shape[1], expected.shape[0])
    labels = {d.label: d for d in conversions.detections_from_ivlm_msg(dets).detections}
    assert set(labels) == {"person", "cup"}
    np.testing.assert_allclose(labels["cup"].box_xyxy, [245, 235, 305, 345])
    assert conversions.compressed_to_rgb(got["compressed"][0]).shape == expected.shape


def test_video_is_played_frame_by_frame_and_stops_without_loop(context, tmp_path):
    path = tmp_path / "clip.avi"
    frame = cv2.cvtColor(skimage.data.astronaut()[::2, ::2], cv2.COLOR_RGB2BGR)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, frame.shape[1::-1])
    shifts = [0, 20, 40]
    for s in shifts:
        writer.write(np.roll(frame, s, axis=1))
    writer.release()
    params = [Parameter("source", value=str(path)), Parameter("loop", value=False),
              Parameter("detections", value="[{label: person, box: [10, 10, 200, 250]}]"),
              Parameter("detections_type", value="ivlm"), Parameter("encoding", value="bgr8")]
    player, got = _play(context, params, 4)
    assert got["results"] == [True, True, True, False] and player.published == 3
    assert len(got["image"]) == 3 and got["image"][0].encoding == "bgr8"
    parsed = conversions.detections_from_ivlm_msg(got["detections"][0])
    assert [d.label for d in parsed.detections] == ["person"]
