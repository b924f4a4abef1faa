"""The embedded CPU backend on real photos: named contact parts, honest empties, robust input handling."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data

from ivlm_core.backends.keypoint import KeypointBackend
from ivlm_core.backends.keypoint.priors import ContactPriors
from ivlm_core.body import PART_NAMES
from ivlm_core.metrics import pooled_part_prf
from ivlm_core.types import CameraIntrinsics, Detection

LOCAL_PHOTOS = Path(__file__).parent / "data" / "photos"  # 3 photos copied from ../shared/photos
SHARED_PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "photos"
CAMERA_BOX = np.array([245.0, 135.0, 335.0, 245.0])  # the camcorder on its tripod head in camera.png
CAMERAMAN_BOX = np.array([0.0, 60.0, 340.0, 512.0])
HELMET_BOX = np.array([275.0, 340.0, 512.0, 512.0])  # the helmet at the astronaut's side
ASTRONAUT_BOX = np.array([15.0, 10.0, 365.0, 512.0])
COCO_CLASSES = [
    "bicycle",
    "car",
    "motorcycle",
    "airplane",
    "bus",
    "train",
    "truck",
    "boat",
    "traffic_light",
    "fire_hydrant",
    "stop_sign",
    "parking_meter",
    "bench",
    "bird",
    "cat",
    "dog",
    "horse",
    "sheep",
    "cow",
    "elephant",
    "bear",
    "zebra",
    "giraffe",
    "backpack",
    "umbrella",
    "handbag",
    "tie",
    "suitcase",
    "frisbee",
    "skis",
    "snowboard",
    "sports_ball",
    "kite",
    "baseball_bat",
    "baseball_glove",
    "skateboard",
    "surfboard",
    "tennis_racket",
    "bottle",
    "wine_glass",
    "cup",
    "fork",
    "knife",
    "spoon",
    "bowl",
    "banana",
    "apple",
    "sandwich",
    "orange",
    "broccoli",
    "carrot",
    "hot_dog",
    "pizza",
    "donut",
    "cake",
    "chair",
    "couch",
    "potted_plant",
    "bed",
    "dining_table",
    "toilet",
    "tv",
    "laptop",
    "mouse",
    "remote",
    "keyboard",
    "cell_phone",
    "microwave",
    "oven",
    "toaster",
    "sink",
    "refrigerator",
    "book",
    "clock",
    "vase",
    "scissors",
    "teddy_bear",
    "hair_drier",
    "toothbrush",
]


@pytest.fixture(scope="module")
def backend():
    b = KeypointBackend()
    yield b
    b.close()


def _hands(parts: dict[str, float]) -> set[str]:
    return {p for p in parts if p.endswith("_hand")}


@pytest.mark.parametrize("person_box", [None, CAMERAMAN_BOX], ids=["found_person", "given_person_box"])
def test_cameraman_touches_camera_with_hands(backend, person_box):
    dets = [Detection("camera", CAMERA_BOX)]
    if person_box is not None:
        dets.insert(0, Detection("person", person_box))
    (res,) = backend.estimate(skimage.data.camera(), dets)  # grey-scale input on purpose
    assert _hands(res.body_parts), res.evidence
    lower_body = {p for p in res.body_parts if p.split("_")[-1] in ("thigh", "calf", "foot", "buttocks")}
    assert not lower_body
    assert res.reason == ""
    assert any(e.startswith("near:") and "hand" in e for e in res.evidence)
    # per-vertex probabilities live on the named parts that were reported
    probs = res.body_probabilities
    assert probs.shape == (backend.body.num_vertices,) and probs.dtype == np.float32
    hand_ids = np.concatenate([backend.body.part_vertex_ids(p) for p in _hands(res.body_parts)])
    assert probs[hand_ids].max() >= 0.5
    foot_ids = backend.body.part_vertex_ids("left_foot")
    assert probs[foot_ids].max() == 0.0
    assert res.object_probabilities.max() > 0.5
    # the body is placed in front of the camera at a plausible distance, in metres
    assert 0.3 < float(np.median(res.body_vertices[:, 2])) < 5.0


@pytest.mark.parametrize("person_box", [None, ASTRONAUT_BOX], ids=["found_person", "given_person_box"])
def test_astronaut_does_not_hold_helmet(backend, person_box):
    dets = [Detection("helmet", HELMET_BOX)]
    if person_box is not None:
        dets.insert(0, Detection("person", person_box))
    (res,) = backend.estimate(skimage.data.astronaut(), dets)
    assert not _hands(res.body_parts), res.evidence
    assert res.body_parts == {} and res.reason
    assert float(res.body_probabilities.max()) < 0.5


def test_every_coco_category_has_a_prior():
    priors = ContactPriors()
    for name in COCO_CLASSES:
        cat = priors.get(name)
        assert cat.known, name
        assert all(p.part in PART_NAMES for p in cat.parts)
        assert any(p.prior >= priors.threshold for p in cat.parts), f"{name} can never be in contact"


def test_unknown_label_and_empty_image_give_reasons(backend):
    blank = np.full((240, 320, 3), 127, np.uint8)
    (res,) = backend.estimate(blank, [Detection("flux capacitor", np.array([10.0, 10.0, 50.0, 50.0]))])
    assert res.body_parts == {} and "no person" in res.reason
    assert not res.body_probabilities.any()


def test_boxes_outside_image_16_bit_and_rgba_input(backend):
    img16 = skimage.data.camera().astype(np.uint16) * 257
    dets = [Detection("camera", np.array([600.0, 600.0, 700.0, 700.0])), Detection("camera", CAMERA_BOX)]
    outside, inside = backend.estimate(img16, dets)
    assert outside.body_parts == {} and "outside" in outside.reason
    assert _hands(inside.body_parts)
    far_person = Detection("person", np.array([900.0, 0.0, 1000.0, 100.0]))
    (res,) = backend.estimate(img16, [far_person, Detection("camera", CAMERA_BOX)])
    assert res.body_parts == {} and "person box lies outside" in res.reason
    rgba = np.concatenate([skimage.data.astronaut(), np.full((512, 512, 1), 255, np.uint8)], axis=2)
    (res,) = backend.estimate(rgba, [Detection("helmet", HELMET_BOX)])
    assert res.reason and not _hands(res.body_parts)


def test_bad_input_raises_value_error(backend):
    with pytest.raises(ValueError, match="uint8 or uint16"):
        backend.estimate(np.zeros((64, 64, 3), np.float32), [Detection("cup", CAMERA_BOX)])
    cam = CameraIntrinsics.from_fov(640, 480)
    with pytest.raises(ValueError, match="CameraInfo"):
        backend.estimate(skimage.data.camera(), [Detection("camera", CAMERA_BOX)], cam)


def _run_labelled(backend, folder: Path) -> list[tuple[dict, object]]:
    out = []
    for entry in json.loads((folder / "labels.json").read_text()):
        image = cv2.cvtColor(cv2.imread(str(folder / entry["file"])), cv2.COLOR_BGR2RGB)
        for pair in entry["pairs"]:
            dets = [
                Detection("person", np.array(pair["person_box_xyxy"], float)),
                Detection(pair["object"], np.array(pair["box_xyxy"], float)),
            ]
            out.append((pair, backend.estimate(image, dets)[0]))
    return out


def _sideless(parts) -> set[str]:
    return {p.removeprefix("left_").removeprefix("right_") for p in parts}


def test_labelled_photos_find_contact_and_no_contact(backend):
    """Feet on a skateboard, riders on bicycles, a woman on a ledge with pigeons nearby (no contact)."""
    for pair, res in _run_labelled(backend, LOCAL_PHOTOS):
        if not pair["contact"]:
            assert res.body_parts == {} and res.reason, (pair, res.evidence)
            continue
        pred, gt = _sideless(res.body_parts), _sideless(pair["parts"])
        assert pred & gt, (pair, res.body_parts, res.evidence)
        assert len(pred & gt) / len(pred) >= 0.5, (pair, res.body_parts)


@pytest.mark.skipif(not (SHARED_PHOTOS / "labels.json").is_file(), reason="needs ../shared/photos")
def test_shared_photos_meet_the_part_f1_and_no_contact_goals(backend):
    runs = _run_labelled(backend, SHARED_PHOTOS)
    prf = pooled_part_prf([(r.body_parts, p["parts"]) for p, r in runs if p["contact"]], sided=False)
    negatives = [r for p, r in runs if not p["contact"]]
    assert prf.f1 >= 0.75, prf
    assert np.mean([not r.body_parts for r in negatives]) >= 0.8


def test_body_fit_lines_up_with_the_person(backend):
    image = skimage.data.camera()
    (res,) = backend.estimate(image, [Detection("camera", CAMERA_BOX)])
    cam = CameraIntrinsics.from_fov(512, 512)
    v = res.body_vertices.astype(np.float64)
    uv = np.stack([cam.fx * v[:, 0] / v[:, 2] + cam.cx, cam.fy * v[:, 1] / v[:, 2] + cam.cy], axis=1)
    pose = backend.last_poses[0]
    height_px = pose.scale_px
    head = uv[backend.body.part_vertex_ids("head")].mean(0)
    ears = 0.5 * (pose.keypoints[7] + pose.keypoints[8])  # the head's centre lies between the ears
    assert np.linalg.norm(head - ears) < 0.1 * height_px
    for part in _hands(res.body_parts):
        centre = uv[backend.body.part_vertex_ids(part)].mean(0)
        wrist = pose.keypoints[15 if part == "left_hand" else 16]
        assert np.linalg.norm(centre - wrist) < 0.1 * height_px, part


def test_video_mode_warm_starts_from_the_previous_fit(backend):
    image = np.stack([skimage.data.camera()] * 3, -1)
    shifted = np.roll(image, 24, axis=1)  # the person moves 24 px right
    move = np.array([24.0, 0.0, 24.0, 0.0])
    dets = [Detection("person", CAMERAMAN_BOX), Detection("camera", CAMERA_BOX)]
    dets_shifted = [Detection("person", CAMERAMAN_BOX + move), Detection("camera", CAMERA_BOX + move)]
    first = backend.estimate(image, dets)[0].body_vertices.mean(0)
    jump = backend.estimate(shifted, dets_shifted)[0].body_vertices.mean(0) - first
    backend.video = True
    try:
        backend.estimate(image, dets)
        smoothed = backend.estimate(shifted, dets_shifted)[0].body_vertices.mean(0) - first
    finally:
        backend.video = False
        backend._previous.clear()
    assert jump[0] > 0.005  # the unsmoothed body follows the person to the right
    assert 0.2 * jump[0] < smoothed[0] < 0.8 * jump[0]


def test_backend_accepts_the_options_the_ros_node_passes():
    from ivlm_core.backends import backend_options

    node_options = {
        "device",
        "body_model",
        "body_model_path",
        "object_mesh_folder",
        "video",
        "default_fov_deg",
    }
    assert node_options <= backend_options("keypoint")
