"""The embedded CPU backend on real photos: named contact parts, honest empties, robust input handling."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data
import torch
from scipy.spatial.transform import Rotation

from ivlm_core.backends.keypoint import KeypointBackend
from ivlm_core.backends.keypoint.body_fit import MEDIAPIPE_OF_KEYPOINT, BodyFit
from ivlm_core.backends.keypoint.landmarks import NUM_LANDMARKS, PersonPose
from ivlm_core.backends.keypoint.priors import ContactPriors
from ivlm_core.backends.keypoint.support import body_support
from ivlm_core.body import KEYPOINT_NAMES, PART_NAMES
from ivlm_core.metrics import LabelledPair, labelled_pairs_summary
from ivlm_core.types import CameraIntrinsics, Detection

LOCAL_PHOTOS = Path(__file__).parent / "data" / "photos"  # 3 photos copied from ../shared/photos
SHARED_PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "photos"
CAMERA_BOX = np.array([245.0, 135.0, 335.0, 245.0])  # the camcorder on its tripod head in camera.png
CAMERAMAN_BOX = np.array([0.0, 60.0, 340.0, 512.0])
HELMET_BOX = np.array([275.0, 340.0, 512.0, 512.0])  # the helmet at the astronaut's side
ASTRONAUT_BOX = np.array([15.0, 10.0, 365.0, 512.0])
DRINKER_PHOTO = Path(__file__).parent / "data" / "player" / "man_holding_drink_glass.jpg"
DRINKER_BOX = np.array([0.0, 25.0, 335.0, 500.0])
CUP_BOX = np.array([245.0, 235.0, 305.0, 345.0])  # the glass in the man's left hand
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


def _run_labelled(backend, folder: Path) -> list[tuple[dict, object, int]]:
    """(pair, result, image index in labels.json) for every labelled pair of a photo folder."""
    out = []
    for index, entry in enumerate(json.loads((folder / "labels.json").read_text())):
        image = cv2.cvtColor(cv2.imread(str(folder / entry["file"])), cv2.COLOR_BGR2RGB)
        for pair in entry["pairs"]:
            dets = [
                Detection("person", np.array(pair["person_box_xyxy"], float)),
                Detection(pair["object"], np.array(pair["box_xyxy"], float)),
            ]
            out.append((pair, backend.estimate(image, dets)[0], index))
    return out


def _sideless(parts) -> set[str]:
    return {p.removeprefix("left_").removeprefix("right_") for p in parts}


def test_labelled_photos_find_contact_and_no_contact(backend):
    """Feet on a skateboard, riders on bicycles, a woman on a ledge with pigeons nearby (no contact)."""
    for pair, res, _ in _run_labelled(backend, LOCAL_PHOTOS):
        if not pair["contact"]:
            assert res.body_parts == {} and res.reason, (pair, res.evidence)
            continue
        pred, gt = _sideless(res.body_parts), _sideless(pair["parts"])
        assert pred & gt, (pair, res.body_parts, res.evidence)
        assert len(pred & gt) / len(pred) >= 0.5, (pair, res.body_parts)


ORIGINAL_IMAGES = 20  # the first twenty images of labels.json hold the original 47 pairs
# Bars: the original pairs keep their goal; every kind added later is held to what the backend
# reaches on the added images (bench/real_photos.py measures them all), raised as it improves.
ORIGINAL_F1, ORIGINAL_NO_CONTACT = 0.9, 0.8  # measured 0.903 and 1.0 (the goal: 0.75, 0.8)
ADDED_KIND_F1 = {"object": 0.74, "open_vocabulary": 0.85, "scene": 0.93}  # measured 0.743, 0.875, 0.957
NO_CONTACT_ACCURACY = 0.92  # every contact-false pair, original and added; measured 0.931 (goal 0.9)
ALL_F1, ALL_F1_STRICT = 0.87, 0.805  # all contact pairs; measured 0.877, 0.810 (issue 12 goals: 0.85, 0.78)


@pytest.mark.skipif(not (SHARED_PHOTOS / "labels.json").is_file(), reason="needs ../shared/photos")
def test_shared_photos_meet_the_part_f1_and_no_contact_goals(backend):
    runs = _run_labelled(backend, SHARED_PHOTOS)
    summary = labelled_pairs_summary(
        LabelledPair(r.body_parts, p["parts"], p["contact"], p["kind"], i < ORIGINAL_IMAGES)
        for p, r, i in runs
    )
    assert summary["pairs"] == 96 and sum(i < ORIGINAL_IMAGES for *_, i in runs) == 47
    assert summary["f1_original"] >= ORIGINAL_F1, summary
    assert summary["no_contact_accuracy_original"] >= ORIGINAL_NO_CONTACT, summary
    for kind, bar in ADDED_KIND_F1.items():
        assert summary["by_kind_added"][kind]["f1"] >= bar, (kind, summary)
    assert summary["no_contact_accuracy"] >= NO_CONTACT_ACCURACY, summary
    assert summary["f1"] >= ALL_F1 and summary["f1_strict"] >= ALL_F1_STRICT, summary


@pytest.mark.skipif(not (SHARED_PHOTOS / "labels.json").is_file(), reason="needs ../shared/photos")
def test_a_hand_held_up_by_its_folded_arm_rests_on_no_structure(backend):
    """The wine taster raising his glass to the mouth holds it with his right hand, which touches neither
    the railing behind him nor the counter; the man at the birthday table rests his forearms on it, not
    the hands he lifts (the 'leans' test of tables, counters, walls and railings)."""
    wanted = {
        ("people_at_wine_bar_counter.jpg", "wine glass"),
        ("people_at_wine_bar_counter.jpg", "staircase railing"),
        ("family_at_birthday_table.jpg", "dining table"),
    }
    found = {}
    for entry in json.loads((SHARED_PHOTOS / "labels.json").read_text()):
        if not any(entry["file"] == f for f, _ in wanted):
            continue
        image = cv2.cvtColor(cv2.imread(str(SHARED_PHOTOS / entry["file"])), cv2.COLOR_BGR2RGB)
        for pair in entry["pairs"]:
            key = (entry["file"], pair["object"])
            if key in wanted and key not in found:
                dets = [Detection("person", np.array(pair["person_box_xyxy"], float)),
                        Detection(pair["object"], np.array(pair["box_xyxy"], float))]
                found[key] = backend.estimate(image, dets)[0]
    bar = "people_at_wine_bar_counter.jpg"
    glass, railing = found[(bar, "wine glass")], found[(bar, "staircase railing")]
    assert "right_hand" in glass.body_parts, glass.evidence
    assert railing.body_parts == {}, railing.evidence
    assert any(e.startswith("lifted:right_hand") for e in railing.evidence), railing.evidence
    table = found[("family_at_birthday_table.jpg", "dining table")]
    assert "right_forearm" in table.body_parts and not _hands(table.body_parts), table.evidence


@pytest.mark.skipif(not (SHARED_PHOTOS / "labels.json").is_file(), reason="needs ../shared/photos")
def test_the_hand_model_finds_the_hand_on_a_small_held_object(backend):
    """The toddler holds a spoon upright in front of his chest with his left hand, where the pose model
    puts no hand; mediapipe Hands, run around the spoon, finds it (his left, though mediapipe's own label
    is mirrored). The cupcake in front of him stays untouched though his other hand is near it."""
    entry = next(e for e in json.loads((SHARED_PHOTOS / "labels.json").read_text())
                 if e["file"] == "toddler_near_birthday_cupcake.jpg")
    image = cv2.cvtColor(cv2.imread(str(SHARED_PHOTOS / entry["file"])), cv2.COLOR_BGR2RGB)
    pairs = {p["object"]: p for p in entry["pairs"]}
    person = Detection("person", np.array(pairs["spoon"]["person_box_xyxy"], float))
    spoon, cake = (backend.estimate(image, [person, Detection(o, np.array(pairs[o]["box_xyxy"], float))])[0]
                   for o in ("spoon", "cake"))
    assert set(spoon.body_parts) == {"left_hand"}, spoon.evidence
    assert any(e.startswith("hand_model:left_hand") for e in spoon.evidence), spoon.evidence
    assert cake.body_parts == {}, cake.evidence
    found = backend.hands.around(image, np.array(pairs["spoon"]["box_xyxy"], float))
    x0, _, x1, _ = pairs["spoon"]["box_xyxy"]
    on_spoon = [h for h in found if x0 <= h.points[:, 0].mean() <= x1]
    assert [h.side for h in on_spoon] == ["left"], [(h.side, h.points.mean(0)) for h in found]


def test_body_fit_lines_up_with_the_person(backend):
    image = skimage.data.camera()
    (res,) = backend.estimate(image, [Detection("camera", CAMERA_BOX)])
    cam = CameraIntrinsics.from_fov(512, 512)
    uv = cam.project(res.body_vertices)
    pose = backend.last_poses[0]
    height_px = pose.scale_px
    head = uv[backend.body.part_vertex_ids("head")].mean(0)
    ears = 0.5 * (pose.keypoints[7] + pose.keypoints[8])  # the head's centre lies between the ears
    assert np.linalg.norm(head - ears) < 0.1 * height_px
    for part in _hands(res.body_parts):
        centre = uv[backend.body.part_vertex_ids(part)].mean(0)
        wrist, knuckle = (15, 19) if part == "left_hand" else (16, 20)
        palm = 0.5 * (pose.keypoints[wrist] + pose.keypoints[knuckle])  # the hand's centre: wrist to knuckles
        assert np.linalg.norm(centre - palm) < 0.1 * height_px, part


@pytest.mark.parametrize("scene", ["cup", "camera"])
def test_body_fit_agrees_with_the_landmarks_and_the_object(backend, scene):
    """The fitted keypoints project onto mediapipe's 2D landmarks through K, the holding hand onto the object,
    and the body stands in front of the camera with that hand within reach of its torso."""
    if scene == "cup":
        image = cv2.cvtColor(cv2.imread(str(DRINKER_PHOTO)), cv2.COLOR_BGR2RGB)
        dets, hand = [Detection("person", DRINKER_BOX), Detection("cup", CUP_BOX)], "left_hand"
    else:
        image = np.stack([skimage.data.camera()] * 3, -1)
        dets, hand = [Detection("camera", CAMERA_BOX)], "right_hand"
    (res,) = backend.estimate(image, dets)
    assert hand in res.body_parts, res.evidence
    cam = CameraIntrinsics.from_fov(image.shape[1], image.shape[0], backend.default_fov_deg)
    pose = backend.last_poses[0]
    fit = backend.fitter.fit(pose, cam)
    np.testing.assert_allclose(fit.vertices, res.body_vertices, atol=1e-5)  # the backend's own fit
    names = list(MEDIAPIPE_OF_KEYPOINT)
    ids = [MEDIAPIPE_OF_KEYPOINT[n] for n in names]
    uv = cam.project(np.stack([fit.keypoints[n] for n in names]))
    err = np.linalg.norm(uv - pose.keypoints[ids], axis=1)
    seen = pose.visibility[ids] >= 0.5
    assert seen.sum() >= 8
    assert np.sqrt(np.mean(err[seen] ** 2)) <= 20.0, dict(zip(names, err.round(1), strict=True))
    hand_ids = backend.body.part_vertex_ids(hand)
    centre = cam.project(res.body_vertices[hand_ids]).mean(0)
    box = dets[-1].box_xyxy
    margin = 0.25 * (box[2:] - box[:2])
    assert np.all(centre >= box[:2] - margin) and np.all(centre <= box[2:] + margin), (centre, box)
    z = res.body_vertices[:, 2]
    assert 0.3 < float(np.median(z)) < 5.0
    torso_z = float(z[backend.body.part_vertex_ids("torso_front")].mean())
    assert abs(float(z[hand_ids].mean()) - torso_z) < 0.35  # an arm's reach, not at the lens


@pytest.mark.parametrize("lean_deg", [0.0, 40.0])
def test_fit_recovers_a_known_body_placement_despite_a_leaning_3d_estimate(backend, lean_deg):
    """A posed anny body 3 m in front of the camera, turned 25 degrees, seen through K: from its projected
    keypoints and 3D landmarks whose torso leans lean_deg towards the camera (mediapipe's typical error),
    the fit recovers the mesh within a few centimetres and the body's orientation within a few degrees."""
    body = backend.body
    pose = np.zeros((body.num_joints, 3), np.float32)
    pose[body.joint_index("upperarm01.L")] = [-0.8, 0.0, -0.5]  # left arm forward and down
    pose[body.joint_index("lowerarm01.L")] = [-1.0, 0.0, 0.0]  # left elbow bent
    pose[body.joint_index("upperarm01.R")] = [0.3, 0.0, 0.6]
    pose[body.joint_index("upperleg01.R")] = [-0.4, 0.0, 0.0]
    pose[body.joint_index("lowerleg01.R")] = [0.6, 0.0, 0.0]  # right knee bent
    with torch.no_grad():
        out = body.forward(pose=pose)
    # body frame (y up, facing +z) -> camera frame (y down), facing the camera, turned 25 degrees
    R = np.diag([1.0, -1.0, -1.0]) @ Rotation.from_euler("y", 25, degrees=True).as_matrix()
    t = np.array([0.15, 0.1, 3.0])
    vertices = out.vertices[0].numpy() @ R.T + t
    keypoints = out.keypoints[0].numpy() @ R.T + t
    cam = CameraIntrinsics.from_fov(640, 480, 60.0)
    pixels = np.repeat(cam.project(keypoints)[[KEYPOINT_NAMES.index("nose")]], NUM_LANDMARKS, axis=0)
    world = np.repeat(keypoints[[KEYPOINT_NAMES.index("nose")]], NUM_LANDMARKS, axis=0)
    for name, landmark in MEDIAPIPE_OF_KEYPOINT.items():
        pixels[landmark] = cam.project(keypoints[[KEYPOINT_NAMES.index(name)]])[0]
        world[landmark] = keypoints[KEYPOINT_NAMES.index(name)]
    hips = 0.5 * (world[MEDIAPIPE_OF_KEYPOINT["left_hip"]] + world[MEDIAPIPE_OF_KEYPOINT["right_hip"]])
    lean = Rotation.from_euler("x", -lean_deg, degrees=True).as_matrix()  # top towards the camera
    person = PersonPose(
        keypoints=pixels.astype(np.float32),
        visibility=np.ones(NUM_LANDMARKS, np.float32),
        world=((world - hips) @ lean.T).astype(np.float32),
        box_xyxy=np.concatenate([pixels.min(0), pixels.max(0)]),
        box_given=False,
    )
    fit = backend.fitter.fit(person, cam)
    assert fit.reprojection_px < 3.0
    assert float(np.linalg.norm(fit.vertices - vertices, axis=1).mean()) < 0.06
    assert np.degrees(Rotation.from_matrix(fit.rotation @ R.T).magnitude()) < 8.0
    assert abs(float(np.median(fit.vertices[:, 2])) - float(np.median(vertices[:, 2]))) < 0.1


def test_video_mode_warm_starts_from_the_previous_fit(backend):
    """On video the previous fit is the starting point: the body follows the person and ends where a fit of
    that frame alone ends."""
    image = np.stack([skimage.data.camera()] * 3, -1)
    shifted = np.roll(image, 24, axis=1)  # the person moves 24 px right
    move = np.array([24.0, 0.0, 24.0, 0.0])
    dets = [Detection("person", CAMERAMAN_BOX), Detection("camera", CAMERA_BOX)]
    dets_shifted = [Detection("person", CAMERAMAN_BOX + move), Detection("camera", CAMERA_BOX + move)]
    first = backend.estimate(image, dets)[0].body_vertices
    cold = backend.estimate(shifted, dets_shifted)[0].body_vertices
    cold_px = backend.fitter.fit(backend.last_poses[0], CameraIntrinsics.from_fov(512, 512)).reprojection_px
    backend.video = True
    try:
        backend.estimate(image, dets)
        warm = backend.estimate(shifted, dets_shifted)[0].body_vertices
        warm_px = backend._previous[0].reprojection_px
    finally:
        backend.video = False
        backend._previous.clear()
    jump = cold.mean(0) - first.mean(0)
    assert jump[0] > 0.005  # the body follows the person to the right
    assert warm.mean(0)[0] - first.mean(0)[0] > 0.8 * jump[0]
    assert float(np.linalg.norm(warm - cold, axis=1).mean()) < 0.02
    assert warm_px <= cold_px + 2.0


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


def _rgb(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def _posed_fit(backend, pose: np.ndarray, R: np.ndarray) -> BodyFit:
    """The anny body in `pose`, turned by R (body frame -> camera frame) and placed 3 m ahead."""
    with torch.no_grad():
        out = backend.body.forward(pose=pose)
    t = np.array([0.0, 0.0, 3.0])
    vertices = out.vertices[0].numpy().astype(np.float64) @ R.T + t
    kp = out.keypoints[0].numpy().astype(np.float64) @ R.T + t
    keypoints = {n: kp[KEYPOINT_NAMES.index(n)] for n in MEDIAPIPE_OF_KEYPOINT}
    return BodyFit(vertices, np.zeros_like(vertices), R, t, 1.0, keypoints, 0.0)


UPRIGHT = np.diag([1.0, -1.0, -1.0])  # body (y up, facing +z) -> camera (y down), facing the camera
ON_THE_BACK = np.column_stack([[0.0, 0.0, -1.0], [1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])  # head to +x, face up
ROLLED = np.column_stack([[0.0, -1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])  # upright, camera rolled 90


def test_body_support_follows_posture_and_gravity(backend):
    """Standing -> feet; sitting on the ground -> buttocks and legs; lying on the back -> back, not front;
    a standing body seen by a camera rolled 90 degrees lies on its side under image-down gravity but
    stands on its feet once the caller passes the true gravity."""
    ids = backend._part_ids
    rest = np.zeros((backend.body.num_joints, 3), np.float32)
    sitting = rest.copy()
    for side in "LR":
        sitting[backend.body.joint_index(f"upperleg01.{side}")] = [-1.57, 0.0, 0.0]  # legs straight ahead

    def resting(support):
        return {p for p, s in support.parts.items() if s >= 0.5}

    standing = body_support(_posed_fit(backend, rest, UPRIGHT), ids)
    assert standing.posture == "standing" and resting(standing) == {"left_foot", "right_foot"}
    seated = body_support(_posed_fit(backend, sitting, UPRIGHT), ids)
    assert seated.posture == "sitting" and {"buttocks", "left_thigh", "right_thigh"} <= resting(seated)
    assert not resting(seated) & {"torso_front", "torso_back", "head"}  # hanging arms do reach the floor
    lying = body_support(_posed_fit(backend, rest, ON_THE_BACK), ids)
    assert lying.posture == "lying" and {"torso_back", "buttocks", "head"} <= resting(lying)
    assert "torso_front" not in resting(lying)
    rolled = _posed_fit(backend, rest, ROLLED)
    assert body_support(rolled, ids).posture == "lying"
    upright = body_support(rolled, ids, gravity=np.array([1.0, 0.0, 0.0]))
    assert upright.posture == "standing" and resting(upright) == {"left_foot", "right_foot"}


def test_gravity_and_binary_are_validated_options():
    from ivlm_core.backends import backend_options, create_backend

    assert {"binary", "gravity"} <= backend_options("keypoint")
    for bad in ([0.0, 0.0, 0.0], [1.0, 2.0], [np.nan, 1.0, 0.0]):
        with pytest.raises(ValueError, match="gravity"):
            create_backend("keypoint", gravity=bad)


def test_unresolved_label_is_reasoned_from_its_size(backend):
    """A label the category table does not know is sized at the person's depth (a hand-sized box
    is hand-held) and the evidence says so, instead of a silent generic prior."""
    (res,) = backend.estimate(skimage.data.camera(), [Detection("flux capacitor", CAMERA_BOX)])
    assert _hands(res.body_parts), res.evidence
    assert "reasoned from geometry" in res.evidence[0] and "hand_held" in res.evidence[0]


def test_upscaled_photo_keeps_its_pose_and_a_box_without_pose_says_so(backend):
    """The same photo four times larger gives the same contact (crops are area-averaged to the pose
    model's working size); a person box on a blank wall reports that no pose was found."""
    image = cv2.cvtColor(cv2.imread(str(DRINKER_PHOTO)), cv2.COLOR_BGR2RGB)
    big = cv2.resize(image, None, fx=4, fy=4, interpolation=cv2.INTER_CUBIC)
    (res,) = backend.estimate(big, [Detection("person", 4 * DRINKER_BOX), Detection("cup", 4 * CUP_BOX)])
    assert "left_hand" in res.body_parts, (res.reason, res.evidence)
    blank = np.full((480, 640, 3), 200, np.uint8)
    wall = Detection("person", np.array([100.0, 50, 300, 450]))
    (res,) = backend.estimate(blank, [wall, Detection("cup", CUP_BOX)])
    assert res.body_parts == {} and "no body pose found in the person box" in res.reason


@pytest.mark.skipif(not (SHARED_PHOTOS / "labels.json").is_file(), reason="needs ../shared/photos")
def test_scene_labels_and_binary_contact_on_shared_photos():
    """Standing travellers touch the floor with their feet (under any spelling of the surface); a
    rider high above the street does not touch it; binary mode adds one object-agnostic result per
    person: the feet on the floor, the rider's seat on the elephant, no object mesh."""
    from ivlm_core.backends import create_backend

    backend = create_backend("keypoint", binary=True)
    try:
        airport = _rgb(SHARED_PHOTOS / "airport_volunteer_and_traveller.jpg")
        person = Detection("person", np.array([327.0, 139, 406, 395]))
        labels = ("floor", "Tiled floors", "ground", "yoga mat")
        floors = [Detection(label, np.array([0.0, 300, 640, 480])) for label in labels]
        *surfaces, anything = backend.estimate(airport, [person, *floors])
        for res in surfaces:
            assert set(res.body_parts) == {"left_foot", "right_foot"}, (res.obj.label, res.evidence)
            assert any(e.startswith("support:standing") for e in res.evidence)
        assert anything.obj.label == "any" and anything.object_mesh_id == ""
        assert anything.object_probabilities.size == 0
        assert {"left_foot", "right_foot"} <= set(anything.body_parts)
        soles = backend.body.part_vertex_ids("left_foot")
        assert anything.body_probabilities[soles].max() >= 0.5
        mahout = _rgb(SHARED_PHOTOS / "mahout_riding_elephant.jpg")
        rider = Detection("person", np.array([85.0, 158, 200, 330]))
        street = Detection("street", np.array([0.0, 430, 426, 640]))
        elephant = Detection("elephant", np.array([34.0, 281, 300, 616]))
        on_street, on_elephant, anything = backend.estimate(mahout, [rider, street, elephant])
        assert on_street.body_parts == {}, on_street.evidence
        # astride with his legs hanging (little hip flexion) but his feet far above the ground the
        # elephant stands on: carried by it
        assert "buttocks" in on_elephant.body_parts, on_elephant.evidence
        assert any(e.startswith("rides:") for e in on_elephant.evidence)
        assert "buttocks" in anything.body_parts
        beside = Detection("horse", np.array([250.0, 150, 480, 400]))  # his feet at its hooves
        (next_to,) = backend.estimate(airport, [person, beside])[:1]
        assert "buttocks" not in next_to.body_parts, next_to.evidence
    finally:
        backend.close()


def test_a_board_seen_end_on_may_be_as_near_as_its_width_allows():
    """A 1.55 m snowboard whose box is 77 px long may point at the camera (then it spans its 0.3 m width):
    a person 2.4 m away agrees with it; a compact object of that box size would be far behind her."""
    from ivlm_core.backends.keypoint import evidence as ev

    cam = CameraIntrinsics.from_fov(640, 428, 60.0)
    box = np.array([331.0, 383.0, 408.0, 423.0])
    near, far = ev.object_depth(box, 1.55, cam, width_m=0.3)
    assert near < 2.4 < far
    assert ev.depth_agreement(2.4, (near, far)) == 1.0
    assert ev.depth_agreement(2.4, ev.object_depth(box, 1.55, cam)) < 0.5


@pytest.mark.skipif(not (SHARED_PHOTOS / "labels.json").is_file(), reason="needs ../shared/photos")
def test_a_person_box_without_pose_tries_a_padded_crop_and_the_whole_image_pose_of_that_person(backend):
    """A man filling the frame behind a picture frame is found once his crop gets a plain border; the
    skateboarder cut off by the top border is found (padded crop or whole photo); a box elsewhere (the
    tiny rider at the bowl's rim) does not get the big skater's pose."""
    frame = _rgb(SHARED_PHOTOS / "man_holding_picture_frame.jpg")
    (pose,) = backend.detector.detect(frame, [np.array([0.0, 0.0, 621.0, 640.0])])
    assert pose is not None
    sidewalk = _rgb(SHARED_PHOTOS / "skateboarder_on_sidewalk.jpg")
    (pose,) = backend.detector.detect(sidewalk, [np.array([117.0, 2, 237, 226])])
    assert pose is not None and pose.box_given
    bowl = _rgb(SHARED_PHOTOS / "skateboarder_in_bowl.jpg")
    boxes = [np.array([36.0, 137, 247, 343]), np.array([185.0, 2, 228, 95])]
    rider, tiny = backend.detector.detect(bowl, boxes)
    assert rider is not None and tiny is None


@pytest.mark.skipif(not (SHARED_PHOTOS / "labels.json").is_file(), reason="needs ../shared/photos")
def test_standing_on_a_seat_needs_the_feet_on_its_top_and_a_pet_touches_the_face_only_in_a_hug(backend):
    """A standing traveller's feet on the upper half of a bench's box stand on it; the same feet at the
    bottom of a bench's box stand in front of it. A dog box around the face of the man hugging his dog
    but not his chest does not touch his head."""
    airport = _rgb(SHARED_PHOTOS / "airport_volunteer_and_traveller.jpg")
    person = Detection("person", np.array([327.0, 139, 406, 395]))
    backend.estimate(airport, [person, Detection("floor", np.array([0.0, 300, 640, 480]))])
    feet_y = float(backend.last_poses[0].keypoints[[29, 30, 31, 32], 1].mean())
    top = Detection("bench", np.array([300.0, feet_y - 15, 440, feet_y + 90]))
    front = Detection("bench", np.array([300.0, feet_y - 90, 440, feet_y + 8]))
    on_top, in_front = backend.estimate(airport, [person, top, front])
    assert {"left_foot", "right_foot"} & set(on_top.body_parts), on_top.evidence
    assert any(e.startswith("stands_on:") for e in on_top.evidence)
    assert not {p for p in in_front.body_parts if p.endswith("_foot")}, in_front.evidence

    couch = _rgb(SHARED_PHOTOS / "man_on_couch_hugging_dog.jpg")
    man = Detection("person", np.array([162.0, 195, 640, 480]))
    (hug,) = backend.estimate(couch, [man, Detection("dog", np.array([246.0, 167, 532, 474]))])
    assert "head" in hug.body_parts and "torso_front" in hug.body_parts, hug.evidence
    ears = backend.last_poses[0].keypoints[[7, 8]]  # a dog-sized box around the head, above the chest
    (x0, y0), (x1, y1) = ears.min(0), ears.max(0)
    face = np.array([x0 - 120, max(0.0, y0 - 150), x1 + 120, y1 + 15])
    (face_only,) = backend.estimate(couch, [man, Detection("dog", face)])
    assert any(e.startswith("near:head") for e in face_only.evidence)  # the face is on it in the image
    assert not {"head", "torso_front"} & set(face_only.body_parts), face_only.evidence


def test_an_implausible_body_fit_is_doubted_or_not_trusted(backend, monkeypatch):
    """The cameraman's real landmarks pass every check; with the hips turned half a turn against the
    shoulders (no spine does that) the fit is doubted; with the legs also running far out of his box
    (a skeleton following something else) the contact is withheld, and the result says why."""
    import dataclasses

    from ivlm_core.backends.keypoint.plausibility import DOUBT, check_fit

    image = np.stack([skimage.data.camera()] * 3, -1)
    dets = [Detection("person", CAMERAMAN_BOX), Detection("camera", CAMERA_BOX)]
    (res,) = backend.estimate(image, dets)
    assert _hands(res.body_parts)
    pose = backend.last_poses[0]
    cam = CameraIntrinsics.from_fov(512, 512, backend.default_fov_deg)
    assert check_fit(pose, backend.fitter.fit(pose, cam), image.shape[:2]).trust == 1.0
    world = pose.world.copy()
    world[[23, 24]] = world[[24, 23]]  # hips swapped: the pelvis faces backwards
    twisted = dataclasses.replace(pose, world=world)
    assert check_fit(twisted, backend.fitter.fit(twisted, cam), image.shape[:2]).trust == DOUBT
    kp, vis = twisted.keypoints.copy(), twisted.visibility.copy()
    kp[23:33] = [480.0, 300.0]  # hips, knees, ankles and feet seen far right of the person box
    vis[23:33] = 1.0
    astray = dataclasses.replace(twisted, keypoints=kp, visibility=vis)
    monkeypatch.setattr(backend.detector, "detect", lambda *args, **kwargs: [astray])
    (res,) = backend.estimate(image, dets)
    assert res.body_parts == {} and "not trustworthy" in res.reason, (res.reason, res.evidence)
    assert any(e.startswith("fit:not trusted") for e in res.evidence)


def _seen_pose(fit: BodyFit, cam: CameraIntrinsics) -> PersonPose:
    """The landmarks a perfect pose model would give for a fitted body seen through cam."""
    names = list(MEDIAPIPE_OF_KEYPOINT)
    points = np.stack([fit.keypoints[n] for n in names])
    pixels = np.repeat(cam.project(points[[0]]), NUM_LANDMARKS, axis=0)
    world = np.repeat(points[[0]], NUM_LANDMARKS, axis=0)
    for name, point, pixel in zip(names, points, cam.project(points), strict=True):
        pixels[MEDIAPIPE_OF_KEYPOINT[name]], world[MEDIAPIPE_OF_KEYPOINT[name]] = pixel, point
    box = np.concatenate([pixels.min(0) - 10, pixels.max(0) + 10])
    return PersonPose(pixels.astype(np.float32), np.ones(NUM_LANDMARKS, np.float32),
                      (world - world[23:25].mean(0)).astype(np.float32), box, True)  # fmt: skip


def test_a_body_lying_on_a_bed_touches_it_with_its_back(backend):
    """Lying on the back there is no hip flexion to call it seated, yet the bed holds the body up: the
    back and buttocks (the weight-bearing parts) touch it; the same body sitting upright on it is
    judged by its seated pose as before."""
    from ivlm_core.backends.keypoint import evidence as ev
    from ivlm_core.backends.keypoint.reasoning import score_parts

    cam = CameraIntrinsics.from_fov(640, 480, 60.0)
    rest = np.zeros((backend.body.num_joints, 3), np.float32)
    fit = _posed_fit(backend, rest, ON_THE_BACK)
    down = np.array([0.0, 0.5, 0.0])  # lying half a metre below the camera's height
    moved = {k: v + down for k, v in fit.keypoints.items()}
    fit = dataclasses.replace(fit, vertices=fit.vertices + down, keypoints=moved)
    pose = _seen_pose(fit, cam)
    support = body_support(fit, backend._part_ids)
    assert support.posture == "lying"
    bed_box = pose.box_xyxy + np.array([-40.0, 0.0, 40.0, 60.0])  # the bed under and around the body
    bed = ev.ObjectRegion.from_detection(bed_box, None, (480, 640))
    scores = score_parts(pose, bed, backend.priors.get("bed"), cam, z_person=3.0, support=support)
    contacted = scores.contacted(backend.priors.threshold)
    assert {"buttocks", "torso_back"} <= set(contacted), scores.evidence


@pytest.mark.skipif(not (SHARED_PHOTOS / "labels.json").is_file(), reason="needs ../shared/photos")
def test_feet_on_a_board_do_not_touch_the_ground_beneath_it(backend):
    """The skateboarder in the bowl stands on his board: asked about the board and the bowl together,
    his feet touch the board only; asked about the bowl alone, the 2D evidence cannot tell."""
    bowl = _rgb(SHARED_PHOTOS / "skateboarder_in_bowl.jpg")
    person = Detection("person", np.array([36.0, 137, 247, 343]))
    board = Detection("skateboard", np.array([188.0, 265, 254, 352]))
    ramp = Detection("skate bowl", np.array([0.0, 95, 640, 427]))
    on_board, on_ramp = backend.estimate(bowl, [person, board, ramp])
    assert {"left_foot", "right_foot"} <= set(on_board.body_parts), on_board.evidence
    assert not {p for p in on_ramp.body_parts if p.endswith("_foot")}, on_ramp.evidence
    assert any("feet on the skateboard" in e for e in on_ramp.evidence)
    (alone,) = backend.estimate(bowl, [person, ramp])
    assert {p for p in alone.body_parts if p.endswith("_foot")}


@pytest.mark.skipif(not (SHARED_PHOTOS / "labels.json").is_file(), reason="needs ../shared/photos")
def test_feet_are_on_the_pedals_only_while_riding(backend):
    """A cyclist standing beside his bike holds the handlebars, his feet on the ground inside the
    bike's box; riders sitting on their bikes have their feet on the pedals."""
    standing = _rgb(SHARED_PHOTOS / "cyclist_standing_with_bike.jpg")
    person, bike = np.array([360.0, 143, 476, 394]), np.array([339.0, 252, 528, 398])
    (beside,) = backend.estimate(standing, [Detection("person", person), Detection("bicycle", bike)])
    assert _hands(beside.body_parts), beside.evidence
    assert not {p for p in beside.body_parts if p.endswith("_foot")}, beside.evidence
    riding = _rgb(LOCAL_PHOTOS / "cyclists_riding_bicycles.jpg")
    person, bike = np.array([335.0, 80, 548, 440]), np.array([390.0, 225, 560, 495])
    (rider,) = backend.estimate(riding, [Detection("person", person), Detection("bicycle", bike)])
    assert "buttocks" in rider.body_parts, rider.evidence
    assert {p for p in rider.body_parts if p.endswith("_foot")}, rider.evidence
