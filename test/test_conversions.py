"""Message conversions without cv_bridge: every encoding and stride, camera info, detections, contacts."""

from __future__ import annotations

import array

import cv2
import numpy as np
import pytest
import skimage.data

pytestmark = pytest.mark.ros

conversions = pytest.importorskip("ivlm_ros.conversions", reason="ivlm_ros messages are not built")
from sensor_msgs.msg import CameraInfo, CompressedImage, Image  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from ivlm_core.contact_report import ReportConfig, contact_report  # noqa: E402
from ivlm_core.types import CameraIntrinsics, ContactResult, Detection, Reconstruction  # noqa: E402


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """A real RGB photo with an odd width (so rows of 3-byte pixels are not 4-byte aligned)."""
    return np.ascontiguousarray(skimage.data.astronaut()[::2, 1:254])


def _header() -> Header:
    h = Header(frame_id="camera_optical")
    h.stamp.sec, h.stamp.nanosec = 12, 345
    return h


def _padded(msg: Image, pad: int) -> Image:
    """The same image with `pad` garbage bytes after every row (a driver with aligned strides)."""
    rows = np.frombuffer(msg.data, np.uint8).reshape(msg.height, msg.step)
    junk = np.full((msg.height, pad), 77, np.uint8)
    out = Image(header=msg.header, height=msg.height, width=msg.width, encoding=msg.encoding,
                is_bigendian=msg.is_bigendian, step=msg.step + pad)
    out.data = array.array("B", np.hstack([rows, junk]).tobytes())
    return out


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "rgba8", "bgra8"])
@pytest.mark.parametrize("pad", [0, 5])
def test_colour_encodings_round_trip_with_any_stride(photo, encoding, pad):
    msg = _padded(conversions.rgb_to_image(photo, _header(), encoding), pad)
    np.testing.assert_array_equal(conversions.image_to_rgb(msg), photo)


@pytest.mark.parametrize("pad", [0, 3])
def test_mono8_becomes_grey_rgb(photo, pad):
    msg = _padded(conversions.rgb_to_image(photo, _header(), "mono8"), pad)
    rgb = conversions.image_to_rgb(msg)
    grey = cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)
    assert rgb.shape == photo.shape and rgb.dtype == np.uint8
    np.testing.assert_array_equal(rgb[:, :, 0], grey)
    np.testing.assert_array_equal(rgb[:, :, 0], rgb[:, :, 2])


@pytest.mark.parametrize("bigendian", [False, True])
@pytest.mark.parametrize("encoding", ["mono16"])
def test_16bit_mono_is_stretched_to_8bit_in_either_byte_order(encoding, bigendian):
    grey = skimage.data.camera()[::4, ::4].astype(np.uint16) * 4  # a 10-bit sensor: values 0..1020
    data = grey.astype(">u2" if bigendian else "<u2")
    msg = Image(header=_header(), height=grey.shape[0], width=grey.shape[1], encoding=encoding,
                is_bigendian=bigendian, step=grey.shape[1] * 2 + 4)
    msg.data = array.array("B", np.hstack([data.view(np.uint8).reshape(grey.shape[0], -1),
                                           np.zeros((grey.shape[0], 4), np.uint8)]).tobytes())
    rgb = conversions.image_to_rgb(msg)
    expected = np.round(grey * (255.0 / grey.max())).astype(np.uint8)
    np.testing.assert_array_equal(rgb[:, :, 1], expected)
    assert rgb[:, :, 1].max() == 255


def test_compressed_jpeg_and_png_decode_to_rgb(photo):
    for fmt, ext in (("png", ".png"), ("jpeg", ".jpg")):
        ok, buf = cv2.imencode(ext, cv2.cvtColor(photo, cv2.COLOR_RGB2BGR))
        assert ok
        msg = CompressedImage(header=_header(), format=fmt)
        msg.data = array.array("B", buf.tobytes())
        rgb = conversions.compressed_to_rgb(msg)
        assert rgb.shape == photo.shape
        assert np.abs(rgb.astype(int) - photo).mean() < (0.01 if fmt == "png" else 6.0)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"encoding": "rgb_f32"}, "unsupported image encoding"),
        ({"height": 0, "width": 0}, "empty image"),
        ({"step": 10}, "step"),
        ({"height": 5000}, "bytes"),
    ],
)
def test_bad_images_raise_value_error_saying_what_is_wrong(photo, change, message):
    msg = conversions.rgb_to_image(photo, _header(), "rgb8")
    for key, value in change.items():
        setattr(msg, key, value)
    with pytest.raises(ValueError, match=message):
        conversions.image_to_rgb(msg)


def test_camera_info_round_trip_and_nan_rejected():
    cam = CameraIntrinsics.from_fov(640, 480, 70.0)
    info = conversions.camera_to_info(cam, _header())
    back = conversions.camera_from_info(info)
    np.testing.assert_allclose(back.K, cam.K)
    assert (back.width, back.height) == (640, 480)
    bad = CameraInfo(width=640, height=480, k=[float("nan")] * 9)
    with pytest.raises(ValueError, match="camera K"):
        conversions.camera_from_info(bad)


def test_a_rectified_image_takes_p_a_raw_one_k():
    """sensor_msgs/CameraInfo: K is the raw image's camera, P's left 3x3 the rectified image's (a
    calibration's P differs from K by the rectification's new camera matrix)."""
    k = [520.0, 0.0, 322.0, 0.0, 518.0, 243.0, 0.0, 0.0, 1.0]
    p = [480.0, 0.0, 318.0, 0.0, 0.0, 479.0, 240.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    info = CameraInfo(width=640, height=480, k=k, p=p, distortion_model="plumb_bob", d=[-0.3, 0.1, 0, 0, 0])
    np.testing.assert_allclose(conversions.camera_from_info(info).K.ravel(), k)
    rect = conversions.camera_from_info(info, rectified=True)
    assert (rect.fx, rect.fy, rect.cx, rect.cy) == (480.0, 479.0, 318.0, 240.0)
    info.p = [0.0] * 12  # a driver that leaves P empty: K it is
    np.testing.assert_allclose(conversions.camera_from_info(info, rectified=True).K.ravel(), k)


def _detections() -> list[Detection]:
    return [Detection("person", np.array([10.0, 20.0, 110.0, 220.0]), 0.9, id="7"),
            Detection("cup", np.array([50.0, 60.0, 80.0, 100.0]), 0.6)]


def test_ivlm_detection_message_round_trip():
    msg = conversions.detections_to_ivlm_msg(_detections(), _header())
    back = conversions.detections_from_ivlm_msg(msg).detections
    for a, b in zip(_detections(), back, strict=True):
        assert (a.label, a.id) == (b.label, b.id)
        assert b.score == pytest.approx(a.score)
        np.testing.assert_allclose(a.box_xyxy, b.box_xyxy)


def test_vision_msgs_detection_round_trip_and_class_names():
    pytest.importorskip("vision_msgs.msg", reason="vision_msgs not installed (../shared/ros2)")
    msg = conversions.detections_to_vision_msgs(_detections(), _header())
    back = conversions.detections_from_vision_msgs(msg).detections
    assert [d.label for d in back] == ["person", "cup"]
    np.testing.assert_allclose(back[0].box_xyxy, [10, 20, 110, 220])
    msg.detections[1].results[0].hypothesis.class_id = "1"
    assert conversions.detections_from_vision_msgs(msg, ["person", "cup"]).detections[1].label == "cup"


def test_contact_message_lists_vertices_above_threshold_with_their_points():
    rng = np.random.default_rng(0)
    n = 500
    probs = rng.uniform(0, 1, n).astype(np.float32)
    verts = rng.normal(size=(n, 3)).astype(np.float32)
    normals = verts / np.linalg.norm(verts, axis=1, keepdims=True)
    pose = np.eye(4)
    pose[:3, :3] = [[0, -1, 0], [1, 0, 0], [0, 0, 1]]
    pose[:3, 3] = [0.1, 0.2, 1.5]
    obj_p = np.array([0.9, 0.1, 0.7], np.float32)
    rec = Reconstruction(ok=True, object_pose=pose, object_scale=1.0, quality=0.8,
                         object_contact_points=np.array([[0, 0, 1], [0, 0, 2]], np.float32),
                         object_contact_normals=np.array([[0, 0, -1], [1, 0, 0]], np.float32))
    result = ContactResult(person_index=0, obj=_detections()[1], body_model="anny", body_probabilities=probs,
                           body_parts={"right_hand": 0.8}, object_mesh_id="builtin:cup",
                           object_probabilities=obj_p, backend="keypoint", evidence=["prior:cup->hands"],
                           person_box=np.array([10.0, 20.0, 110.0, 220.0]), body_vertices=verts,
                           body_normals=normals, reconstruction=rec)
    msg = conversions.contact_to_msg(contact_report(result, ReportConfig(0.5)), person_id=3)
    ids = np.array(msg.body_vertex_ids)
    np.testing.assert_array_equal(ids, np.flatnonzero(probs >= 0.5))
    assert len(msg.body_vertex_probabilities) == len(msg.body_contact_points) == len(msg.body_contact_normals)
    k = len(ids) // 2
    p = msg.body_contact_points[k]
    np.testing.assert_allclose([p.x, p.y, p.z], verts[ids[k]], rtol=1e-6)
    assert msg.in_contact and msg.person_id == 3 and msg.body_vertex_count == n
    assert list(msg.object_vertex_ids) == [0, 2] and len(msg.object_contact_points) == 2
    assert msg.object_contact_normals[1].x == 1.0
    assert msg.reconstructed and msg.object_pose.position.z == pytest.approx(1.5)
    q = msg.object_pose.orientation
    assert q.w == pytest.approx(np.cos(np.pi / 4)) and q.z == pytest.approx(np.sin(np.pi / 4))
    assert (msg.person_roi.x_offset, msg.person_roi.width) == (10, 100)
    assert msg.body_parts == ["right_hand"] and msg.evidence == ["prior:cup->hands"]


def test_binning_and_roi_give_the_intrinsics_of_the_image_that_was_sent():
    """REP 104: K describes the full sensor; a 2x2-binned or ROI-cut image (a driver's binning and roi
    fields) has its principal point shifted and focal length divided, as image_geometry computes."""
    k = [1000.0, 0.0, 640.0, 0.0, 1000.0, 360.0, 0.0, 0.0, 1.0]
    binned = conversions.camera_from_info(CameraInfo(width=1280, height=720, k=k, binning_x=2, binning_y=2))
    assert (binned.width, binned.height, binned.fx, binned.fy, binned.cx, binned.cy) == (
        640, 360, 500.0, 500.0, 320.0, 180.0)
    info = CameraInfo(width=1280, height=720, k=k)
    info.roi.x_offset, info.roi.y_offset, info.roi.width, info.roi.height = 320, 120, 640, 480
    cut = conversions.camera_from_info(info)
    assert (cut.width, cut.height, cut.fx, cut.cx, cut.cy) == (640, 480, 1000.0, 320.0, 240.0)
    info.binning_x = info.binning_y = 2
    both = conversions.camera_from_info(info)
    assert (both.width, both.height, both.fx, both.cx, both.cy) == (320, 240, 500.0, 160.0, 120.0)
    info.binning_x = 5000  # a binning larger than the image leaves nothing
    with pytest.raises(ValueError, match="camera size must be positive"):
        conversions.camera_from_info(info)
