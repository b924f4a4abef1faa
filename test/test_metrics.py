"""Contact metrics: InteractVLM/DECO precision-recall-F1, geodesic errors, body-part scores."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import trimesh

from ivlm_core.body import load_body_model
from ivlm_core.metrics import (
    EPS,
    GeodesicGraph,
    contact_prf,
    detection_prf,
    geodesic_error_cm,
    normalize_part,
    part_prf,
    pooled_part_prf,
)
from ivlm_core.objects import ObjectRegistry

RADIUS = 0.3


@pytest.fixture(scope="module")
def sphere() -> trimesh.Trimesh:
    return trimesh.creation.icosphere(subdivisions=4, radius=RADIUS)


@pytest.fixture(scope="module")
def sphere_graph(sphere) -> GeodesicGraph:
    return GeodesicGraph(sphere.vertices, sphere.faces)


def test_geodesic_between_antipodes_of_a_sphere_is_pi_r(sphere, sphere_graph):
    rng = np.random.default_rng(0)
    for source in rng.choice(len(sphere.vertices), size=5, replace=False):
        antipode = int(np.argmin(sphere.vertices @ sphere.vertices[source]))
        distance = sphere_graph.distance_to([source])[antipode]
        assert distance == pytest.approx(np.pi * RADIUS, rel=0.02)


def test_geodesic_error_from_a_pole_to_a_polar_cap(sphere, sphere_graph):
    """Prediction: the south pole; GT: the cap within 60 degrees of the north pole."""
    z = sphere.vertices[:, 2] / RADIUS
    gt = (z >= np.cos(np.radians(60.0))).astype(np.float32)
    pred = np.zeros(len(z), np.float32)
    pred[np.argmin(z)] = 0.9
    error = geodesic_error_cm(pred, gt, sphere_graph)
    # fp: south pole -> nearest cap vertex, the great-circle arc of 180 - 60 degrees
    assert error.fp_cm == pytest.approx(100 * RADIUS * np.radians(120.0), rel=0.05)
    # fn: every cap vertex -> south pole, the mean arc over the cap's polar angles
    polar = np.arccos(np.clip(z[gt > 0], -1, 1))
    assert error.fn_cm == pytest.approx(100 * RADIUS * np.mean(np.pi - polar), rel=0.05)


def test_geodesic_error_with_empty_sets_follows_deco(sphere, sphere_graph):
    z = sphere.vertices[:, 2]
    gt = (z > 0.25).astype(np.float32)
    empty = np.zeros_like(gt)
    no_gt = geodesic_error_cm(gt, empty, sphere_graph)
    assert no_gt.fp_cm == 0.0 and no_gt.fn_cm > 0.0
    no_pred = geodesic_error_cm(empty, gt, sphere_graph)
    assert no_pred.fn_cm == 0.0
    assert no_pred.fp_cm == pytest.approx(100 * sphere_graph.distance_to(gt > 0).mean())
    perfect = geodesic_error_cm(gt, gt, sphere_graph)
    assert perfect.fp_cm == 0.0 and perfect.fn_cm == 0.0


def test_geodesic_error_on_a_13k_vertex_mesh_is_finite():
    mesh = trimesh.creation.capsule(height=1.2, radius=0.15, count=[120, 110])
    assert len(mesh.vertices) >= 13000
    rng = np.random.default_rng(1)
    gt = (mesh.vertices[:, 2] > 0.55).astype(np.float32)
    pred = np.clip(gt * 0.8 + rng.normal(0.0, 0.2, len(gt)), 0, 1)
    graph = GeodesicGraph(mesh.vertices, mesh.faces)
    error = geodesic_error_cm(pred, gt, graph)
    assert np.isfinite(error.fp_cm) and error.fp_cm > 0


def test_anny_body_geodesics_are_finite():
    model = load_body_model("anny")
    vertices, faces = model.canonical_vertices, model.faces
    graph = GeodesicGraph(vertices, faces)
    gt = (vertices[:, 1] < np.percentile(vertices[:, 1], 5)).astype(np.float32)  # lowest 5 %: the feet
    error = geodesic_error_cm(gt[::-1].copy(), gt, graph)
    assert np.isfinite(error.fp_cm) and error.fp_cm > 0


def test_disconnected_object_meshes_get_finite_geodesics():
    cup = ObjectRegistry().get("cup")  # body and handle are separate closed parts
    graph = GeodesicGraph(cup.vertices, cup.faces)
    distance = graph.distance_to([0])
    assert np.all(np.isfinite(distance))
    assert distance.max() < 0.5  # a 12 cm cup: no path may be much longer than its surface


def test_contact_prf_matches_hand_computed_values():
    pred = np.array([0.9, 0.5, 0.49, 0.2, 0.7])
    gt = np.array([1, 0, 1, 0, 1])
    # predicted {0, 1, 4}, gt {0, 2, 4}: TP 2, P = R = 2/3
    result = contact_prf(pred, gt)
    assert result.precision == pytest.approx(2 / (3 + EPS), abs=1e-12)
    assert result.recall == pytest.approx(2 / (3 + EPS), abs=1e-12)
    assert result.f1 == pytest.approx(2 / 3, abs=1e-9)
    # a batch averages per sample: the second sample has P = 1, R = 1/3
    batch = contact_prf(np.stack([pred, [0.8, 0, 0, 0, 0]]), np.stack([gt, gt]))
    assert batch.precision == pytest.approx((2 / 3 + 1) / 2, abs=1e-9)
    assert batch.recall == pytest.approx((2 / 3 + 1 / 3) / 2, abs=1e-9)
    assert batch.f1 == pytest.approx((2 / 3 + 0.5) / 2, abs=1e-9)


def test_empty_sets_follow_interactvlm_epsilons_or_deco_rules():
    none = np.zeros(4)
    some = np.array([0, 1, 1, 0])
    assert contact_prf(none, some).f1 == 0.0
    assert contact_prf(none, none).precision == 0.0
    deco_no_pred = contact_prf(none, some, empty_rule="deco")
    assert (deco_no_pred.precision, deco_no_pred.recall, deco_no_pred.f1) == (1.0, 0.0, 0.0)
    deco_no_gt = contact_prf(some, none, empty_rule="deco")
    assert (deco_no_gt.precision, deco_no_gt.recall, deco_no_gt.f1) == (0.0, 1.0, 0.0)
    assert contact_prf(some * 0.9, some, empty_rule="deco").f1 == 1.0
    with pytest.raises(ValueError, match="empty_rule"):
        contact_prf(some, some, empty_rule="lisa")


@pytest.mark.parametrize(
    ("pred", "gt"),
    [
        (np.zeros(3), np.zeros(4)),
        (np.array([np.nan, 0.0]), np.zeros(2)),
        (np.zeros((2, 2, 2)), np.zeros((2, 2, 2))),
    ],
)
def test_metrics_reject_bad_input(pred, gt, sphere_graph):
    with pytest.raises(ValueError):
        contact_prf(pred, gt)
    with pytest.raises(ValueError):
        geodesic_error_cm(pred, gt, sphere_graph)


def test_geodesic_graph_rejects_bad_meshes():
    with pytest.raises(ValueError, match="NaN"):
        GeodesicGraph(np.array([[0, 0, 0], [1, 0, 0], [0, np.nan, 0]]), np.array([[0, 1, 2]]))
    with pytest.raises(ValueError, match="faces"):
        GeodesicGraph(np.zeros((3, 3)), np.array([[0, 1, 3]]))


def test_part_names_normalize_across_spellings_and_sides():
    assert (
        normalize_part("Left Hand")
        == normalize_part("leftHand")
        == normalize_part("left-hand")
        == "left_hand"
    )
    assert normalize_part("right_upper_arm", sided=False) == "upper_arm"
    assert normalize_part("torso_front", sided=False) == "torso_front"


def test_part_prf_with_and_without_sides():
    pred, gt = ["left_hand", "right_foot"], ["right_hand", "right_foot", "left_foot"]
    sided = part_prf(pred, gt)
    assert sided.precision == pytest.approx(1 / 2) and sided.recall == pytest.approx(1 / 3)
    unsided = part_prf(pred, gt, sided=False)  # {hand, foot} vs {hand, foot}
    assert unsided.precision == pytest.approx(1.0) and unsided.recall == pytest.approx(1.0)
    with pytest.raises(ValueError, match="collection"):
        part_prf("left_hand", gt)


def test_pooled_part_scores_on_the_labelled_photos(shared_photos):
    labels = json.loads((shared_photos / "labels.json").read_text())
    gt = [pair["parts"] for image in labels for pair in image["pairs"]]
    assert pooled_part_prf(zip(gt, gt, strict=True)).f1 == pytest.approx(1.0)
    swap = {"left": "right", "right": "left"}
    mirrored = [[re.sub(r"^(left|right)_", lambda m: swap[m[1]] + "_", p) for p in parts] for parts in gt]
    sided = pooled_part_prf(zip(mirrored, gt, strict=True))
    unsided = pooled_part_prf(zip(mirrored, gt, strict=True), sided=False)
    assert sided.f1 < 0.9 and unsided.f1 == pytest.approx(1.0)
    truth = np.array([pair["contact"] for image in labels for pair in image["pairs"]])
    assert detection_prf(truth, truth).f1 == pytest.approx(1.0)
    assert detection_prf(np.ones_like(truth), truth).precision == pytest.approx(truth.mean())


def test_labelled_pairs_summary_splits_original_pairs_and_kinds():
    from ivlm_core.metrics import LabelledPair, labelled_pairs_summary

    pairs = [
        LabelledPair(["left_hand"], ["right_hand"], True, "object", original=True),  # sideless hit
        LabelledPair([], ["left_foot", "right_foot"], True, "scene"),  # missed
        LabelledPair(["left_hand"], [], False, "no_contact", original=True),  # false contact
        LabelledPair([], [], False, "no_contact"),
    ]
    s = labelled_pairs_summary(pairs)
    assert s["f1_original"] == 1.0 and s["no_contact_accuracy_original"] == 0.0
    assert s["by_kind"]["scene"]["f1"] == 0.0 and s["by_kind"]["no_contact"]["accuracy"] == 0.5
    assert s["by_kind_added"]["no_contact"]["accuracy"] == 1.0 and "object" not in s["by_kind_added"]
    assert s["f1_strict"] == 0.0 and 0.0 < s["f1"] < 1.0
