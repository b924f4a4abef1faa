"""The contact pipeline of one stream without ROS: real photo, real keypoint backend, checked settings."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import trimesh

from ivlm_core.labels import load_labels
from ivlm_core.pipeline import ContactPipeline
from ivlm_core.settings import SETTINGS, check_settings
from ivlm_core.types import CameraIntrinsics, Detection

DATA = Path(__file__).resolve().parent / "data" / "player"
PHOTO = "man_holding_drink_glass.jpg"


@pytest.fixture(scope="module")
def pipeline():
    defaults = {name: spec.default for name, spec in SETTINGS.items()}
    p = ContactPipeline(check_settings(SETTINGS, defaults | {"video": False}))
    yield p
    p.close()


def test_a_photo_gives_a_report_per_pair_with_stable_ids_and_live_settings(pipeline):
    rgb = cv2.cvtColor(cv2.imread(str(DATA / PHOTO)), cv2.COLOR_BGR2RGB)
    detections = load_labels(str(DATA / "labels.json"))[PHOTO]
    camera = CameraIntrinsics.from_fov(rgb.shape[1], rgb.shape[0], 60.0)
    first = pipeline.estimate(rgb, camera, detections)
    assert [r.obj.label for r in first.results] == ["cup"] and first.reports[0].in_contact
    assert first.reports[0].result is first.results[0] and first.results[0].object_mesh is not None
    assert pipeline.estimate(rgb, camera, detections).person_ids == first.person_ids  # tracked
    assert pipeline.estimate(rgb, camera, detections, track=False).person_ids == [0]  # one image
    settings = {n: s.default for n, s in SETTINGS.items()} | {"contact_threshold": 0.99}
    pipeline.update(check_settings(SETTINGS, settings))
    strict = pipeline.estimate(rgb, camera, detections)
    assert len(strict.reports[0].body_vertex_ids) < len(first.reports[0].body_vertex_ids)
    with pytest.raises(ValueError, match="no object left"):  # never an empty answer that reads "no contact"
        people = [d for d in detections if d.label == "person"]
        pipeline.estimate(rgb, camera, people, ["detection 1 dropped"])
    box = np.array([10.0, 10.0, 60.0, 60.0])
    kept = pipeline.estimate(rgb, camera, [*detections, Detection("flux capacitor", box)])
    assert "unknown object label(s) ['flux capacitor']" in kept.problems[0] and len(kept.results) == 1


def test_max_user_faces_reaches_the_backend_registry(tmp_path):
    """A user mesh of 81,920 faces is cut to the node's max_user_faces once, at configure."""
    trimesh.creation.icosphere(subdivisions=6, radius=0.05).export(tmp_path / "cup.glb")
    defaults = {name: spec.default for name, spec in SETTINGS.items()}
    settings = defaults | {"object_mesh_folder": str(tmp_path), "max_user_faces": 1000, "video": False}
    p = ContactPipeline(check_settings(SETTINGS, settings))
    try:
        cup = p.backend.objects.get("cup")
        assert cup.mesh_id.startswith("file:") and 0 < len(cup.faces) <= 1000
    finally:
        p.close()
