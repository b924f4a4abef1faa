"""Video tracking without ROS: stable person and object ids, and smoothed contact per pair."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from ivlm_core.tracking import UNTRACKED, ContactSmoother, ContactTracker, PersonTracker
from ivlm_core.types import ContactResult, Detection


def test_person_ids_follow_moving_boxes_and_new_people_get_new_ids():
    tracker = PersonTracker(min_iou=0.3, max_missed=2)
    a, b = np.array([100.0, 50, 200, 400]), np.array([400.0, 60, 520, 420])
    first = tracker.update([a, b])
    assert first[0] != first[1] and min(first) >= 1
    for step in range(1, 6):  # both walk right by 10 px a frame, and come in the other order
        shift = np.array([10.0, 0, 10, 0]) * step
        moved = tracker.update([b + shift, a + shift])
        assert moved == first[::-1]
    c = np.array([700.0, 50, 800, 400])
    assert tracker.update([c])[0] not in first
    for _ in range(3):  # a forgotten track is not revived by a box in its old place
        tracker.update([])
    assert tracker.update([a])[0] not in first
    assert tracker.update([None]) == [UNTRACKED]


def test_detector_track_ids_win_over_box_overlap():
    tracker = PersonTracker()
    box = np.array([0.0, 0, 100, 300])
    x, y = tracker.update([box, box + 5], ["track7", "track9"])
    assert tracker.update([box + 5, box], ["track7", "track9"]) == [x, y]


def _result(p: np.ndarray, label: str = "cup") -> ContactResult:
    return ContactResult(person_index=0, obj=Detection(label, np.array([0.0, 0, 10, 10])), body_model="anny",
                         body_probabilities=p.astype(np.float32), body_parts={}, object_mesh_id="builtin:cup",
                         object_probabilities=np.zeros(3, np.float32), backend="keypoint")


def test_smoothing_turns_flicker_into_steady_contact():
    rng = np.random.default_rng(1)
    truth = np.linspace(0, 1, 200)
    raw = [np.clip(truth + rng.normal(0, 0.25, truth.size), 0, 1) for _ in range(40)]
    smoother = ContactSmoother(alpha=0.3)
    smoothed = [smoother.update([_result(r)], [1])[0].body_probabilities for r in raw]
    flips_raw = np.mean([np.sum((a >= 0.5) != (b >= 0.5)) for a, b in itertools.pairwise(raw)])
    flips_smooth = np.mean([np.sum((a >= 0.5) != (b >= 0.5)) for a, b in itertools.pairwise(smoothed[10:])])
    assert flips_smooth < 0.35 * flips_raw
    assert np.abs(smoothed[-1] - truth).mean() < np.abs(raw[-1] - truth).mean()
    other = smoother.update([_result(raw[0], "bottle")], [1])[0]  # a new pair starts from its own frame
    np.testing.assert_array_equal(other.body_probabilities, raw[0].astype(np.float32))
    with pytest.raises(ValueError, match="alpha"):
        ContactSmoother(alpha=0.0)


def _pair(obj: Detection, p: float, person: Detection) -> ContactResult:
    return ContactResult(person_index=0, obj=obj, body_model="anny",
                         body_probabilities=np.full(50, p, np.float32), body_parts={},
                         object_mesh_id="builtin:cup", object_probabilities=np.full(3, p, np.float32),
                         backend="keypoint", person_box=person.box_xyxy)


def test_two_objects_of_one_label_without_detector_ids_keep_their_own_smoothing():
    """Detection2D.id is empty by default: two cups are told apart by box overlap across frames."""
    tracker = ContactTracker(min_iou=0.3, max_missed=5, alpha=0.5)
    person = Detection("person", np.array([100.0, 50, 300, 450]))
    held, other = np.array([250.0, 200, 300, 260]), np.array([500.0, 300, 560, 370])
    for step in range(12):  # both drift a little; the order of the detections flips every frame
        shift = np.array([2.0, 1, 2, 1]) * step
        cups = [Detection("cup", held + shift), Detection("cup", other - shift)]
        truth = {id(cups[0]): 0.9, id(cups[1]): 0.0}
        if step % 2:
            cups.reverse()
        results = [_pair(c, truth[id(c)], person) for c in cups]
        ids = tracker.update(results, [person, *cups])
        assert len(set(ids)) == 1
    got = {id(r.obj): float(r.body_probabilities[0]) for r in results}
    assert got[id(next(c for c in cups if truth[id(c)] == 0.9))] == pytest.approx(0.9, abs=1e-3)
    assert got[id(next(c for c in cups if truth[id(c)] == 0.0))] == pytest.approx(0.0, abs=1e-3)


def test_person_detector_id_is_taken_at_the_tracker_overlap_not_a_fixed_one():
    """A result's person box that overlaps its detection by less than 0.5 (but >= track_min_iou) still
    takes that detection's track id."""
    tracker = ContactTracker(min_iou=0.3, max_missed=5)
    cup = Detection("cup", np.array([0.0, 0, 10, 10]))
    first = Detection("person", np.array([0.0, 0, 100, 300]), id="track7")
    shifted = ContactResult(person_index=0, obj=cup, body_model="anny",
                            body_probabilities=np.zeros(5, np.float32), body_parts={}, object_mesh_id="",
                            object_probabilities=np.zeros(0, np.float32),
                            backend="keypoint", person_box=np.array([40.0, 0, 140, 300]))  # IoU 0.43
    a = tracker.update([shifted], [first, cup])
    jump = Detection("person", np.array([400.0, 0, 500, 300]), id="track7")  # far away, same track id
    moved = ContactResult(**{**shifted.__dict__, "person_box": np.array([440.0, 0, 540, 300])})
    assert tracker.update([moved], [jump, cup]) == a


def test_reset_starts_a_new_stream_without_old_smoothing():
    """After a pause (deactivate, activate) the first frame is its own answer, not blended with old ones."""
    tracker = ContactTracker(min_iou=0.3, max_missed=5, alpha=0.5)
    person = Detection("person", np.array([100.0, 50, 300, 450]))
    cup = Detection("cup", np.array([250.0, 200, 300, 260]))
    for _ in range(3):
        tracker.update([_pair(cup, 0.9, person)], [person, cup])
    tracker.reset()
    fresh = _pair(cup, 0.1, person)
    tracker.update([fresh], [person, cup])
    assert float(fresh.body_probabilities[0]) == pytest.approx(0.1)
