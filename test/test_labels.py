"""Detector output checked one detection at a time, class ids, and the unknown-label policy: no ROS."""

from __future__ import annotations

import numpy as np
import pytest

from ivlm_core.labels import LabelPolicy, RawDetection, label_of, parse_detections
from ivlm_core.objects import ObjectRegistry
from ivlm_core.types import Detection

GOOD = [RawDetection("person", [0, 0, 100, 300], 0.9, "p1"), RawDetection("cup", [40, 50, 60, 80], 0.8)]


@pytest.mark.parametrize(("bad", "why"), [
    (RawDetection("cup", [np.nan, 0, 10, 10]), "finite"),
    (RawDetection("cup", [0, 0, np.inf, 10]), "finite"),
    (RawDetection("cup", [50, 0, 10, 10]), "x1>x0"),  # negative width
    (RawDetection("cup", [10, 10, 10, 30]), "x1>x0"),  # zero width
    (RawDetection("", [0, 0, 10, 10]), "empty class_id"),
    (RawDetection("cup", [0, 0, 10, 10], float("nan")), "score"),
])
def test_one_bad_detection_is_dropped_with_the_reason_and_the_others_are_kept(bad, why):
    parsed = parse_detections([GOOD[0], bad, GOOD[1]])
    assert [d.label for d in parsed.detections] == ["person", "cup"]
    assert len(parsed.problems) == 1 and why in parsed.problems[0] and "detection 1" in parsed.problems[0]


def test_class_ids_name_labels_or_say_what_to_do():
    coco = ["person", "bicycle", "car"]
    assert label_of("2", coco) == "car" and label_of(" cup ") == "cup"
    with pytest.raises(ValueError, match="class_names is empty"):
        label_of("41")
    with pytest.raises(ValueError, match="beyond class_names"):
        label_of("41", coco)
    with pytest.raises(ValueError, match="non-ASCII digits"):
        label_of("\u00b2", coco)  # superscript two: str.isdigit() says yes, int() says no
    raw = [RawDetection("0", [0, 0, 100, 300]), RawDetection("41", [40, 50, 60, 80])]
    parsed = parse_detections(raw, coco)
    assert [d.label for d in parsed.detections] == ["person"] and "class_names" in parsed.problems[0]


def test_unknown_label_policy():
    dets = [Detection("person", np.array([0.0, 0, 100, 300])), Detection("mug", np.array([40.0, 50, 60, 80])),
            Detection("flux capacitor", np.array([10.0, 10, 30, 30]))]
    registry = ObjectRegistry()
    kept, unknown = LabelPolicy(registry, "error").apply(dets)
    assert [d.label for d in kept] == ["person", "mug"] and unknown == ["flux capacitor"]
    kept, unknown = LabelPolicy(registry, "generic").apply(dets)
    assert len(kept) == 3 and unknown == ["flux capacitor"]
    with pytest.raises(ValueError, match="unknown_label_policy"):
        LabelPolicy(registry, "ignore")
