"""2D masks <-> per-vertex labels round-trip through the rigs' lift tables, as the original lifts them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh

from ivlm_core.body import PART_NAMES, load_body_model
from ivlm_core.render import (
    HUMAN_VIEWS,
    Rasterizer,
    labels_to_masks,
    lift,
    render_body_views,
    render_lift_tables,
    render_object_views,
    surface_coverage,
    vertex_visibility,
)

SIZE = 1024  # the original's mask size


@pytest.fixture(scope="module")
def body():
    return load_body_model("anny")


@pytest.fixture(scope="module")
def rasterizer():
    r = Rasterizer(SIZE)
    yield r
    r.close()


@pytest.fixture(scope="module")
def body_rig(body, rasterizer):
    return render_body_views(rasterizer, body.canonical_vertices, body.faces)


@pytest.fixture(scope="module")
def seen_by_rig(body, rasterizer):
    """(4, V) bool: each human view sees the vertex itself (vertex_visibility)."""
    rasters = rasterizer.rasterize_views(body.canonical_vertices, body.faces, HUMAN_VIEWS)
    return np.stack(
        [
            vertex_visibility(raster, view.camera(SIZE), body.canonical_vertices, body.faces)
            for raster, view in zip(rasters, HUMAN_VIEWS, strict=True)
        ]
    )


@pytest.fixture(scope="module")
def cup():
    # Fine enough that the label boundary ring stays a small share of the labelled vertices.
    return trimesh.creation.capsule(height=0.1, radius=0.04, count=[64, 64])


@pytest.fixture(scope="module")
def cup_rig(cup, rasterizer):
    return render_object_views(rasterizer, cup.vertices, cup.faces)


def _f1_over_visible(pred: np.ndarray, labels: np.ndarray, visible: np.ndarray) -> float:
    tp = np.sum(pred & labels & visible)
    fp = np.sum(pred & ~labels & visible)
    fn = np.sum(~pred & labels & visible)
    return 2 * tp / (2 * tp + fp + fn)


def _part_labels(body, *parts: str) -> np.ndarray:
    labels = np.zeros(body.num_vertices, dtype=bool)
    for part in parts:
        labels[body.part_vertex_ids(part)] = True
    return labels


@pytest.mark.parametrize("part", PART_NAMES)
def test_every_body_part_survives_render_mask_lift(body, body_rig, seen_by_rig, part):
    # The done-when: F1 >= 0.98 over the vertices a rig view sees, for every named part, at the
    # rig's 1024² with the default (mv2) mask rule.
    labels = _part_labels(body, part)
    masks = labels_to_masks(labels, body_rig.tables, body.faces)
    assert masks.shape == (4, SIZE, SIZE) and masks.any(axis=(1, 2)).sum() >= 1
    probs = lift(masks.astype(np.float32), body_rig.tables)
    seen = seen_by_rig.any(0)
    assert seen[labels].mean() > 0.5
    assert _f1_over_visible(probs >= 0.5, labels, seen) >= 0.98
    # Vertices that only a neighbouring face's corner of a pixel reaches (e.g. under the chin) are in
    # the lift's support too; there the original's equal per-view averaging costs a few points at most.
    assert _f1_over_visible(probs >= 0.5, labels, body_rig.tables.visible.any(0)) >= 0.97
    assert np.all(probs[~body_rig.tables.visible.any(0)] == 0)


def test_two_labelled_corners_keep_label_boundaries(body, body_rig, seen_by_rig):
    # With the original's older rule (all 3 corners), faces on a label's boundary are negative and the
    # lifted boundary vertices drop below 0.5: only misses, no false positives, and many more of them.
    labels = _part_labels(body, "left_hand", "right_foot", "neck")
    seen = seen_by_rig.any(0)
    lifted = {
        k: lift(labels_to_masks(labels, body_rig.tables, body.faces, k).astype(np.float32), body_rig.tables)
        for k in (2, 3)
    }
    missed = {k: np.sum((p < 0.5) & labels & seen) for k, p in lifted.items()}
    assert np.sum((lifted[3] >= 0.5) & ~labels & seen) == 0
    assert missed[3] > 3 * missed[2]
    assert _f1_over_visible(lifted[2] >= 0.5, labels, seen) > _f1_over_visible(lifted[3] >= 0.5, labels, seen)


def test_vertex_visibility_is_the_vertex_itself_seen(body, body_rig, seen_by_rig):
    visible = seen_by_rig
    assert visible.shape == (4, body.num_vertices) and visible.dtype == bool
    # A vertex seen itself gets lift weight in that view (but for a rare exactly-zero clamped weight).
    assert body_rig.tables.visible[visible].mean() > 0.999
    # The nose tip (the head's most forward vertex, body facing +z) is seen from the front views only.
    head = body.part_vertex_ids("head")
    nose = head[body.canonical_vertices[head, 2].argmax()]
    assert visible[:, nose].tolist() == [True, True, False, False]
    assert 0.75 < visible.any(0).mean() < body_rig.tables.visible.any(0).mean()


def test_human_views_see_most_of_the_body_surface(body, body_rig):
    coverage = surface_coverage(body_rig.tables, body.canonical_vertices, body.faces)
    print(f"human rig surface coverage at {SIZE}²: {coverage:.4f}")
    assert coverage >= 0.95


def test_object_labels_survive_render_mask_lift(cup, cup_rig):
    v = cup_rig.vertices
    for labels in (v[:, 2] > 0.25, v[:, 2] < -0.25):  # the cup's rim cap, then its base cap
        masks = labels_to_masks(labels, cup_rig.tables, cup.faces)
        probs = lift(masks.astype(np.float32), cup_rig.tables)
        visible = cup_rig.tables.visible.any(0)
        assert _f1_over_visible(probs >= 0.5, labels, visible) >= 0.98
    coverage = surface_coverage(cup_rig.tables, v, cup.faces)
    print(f"object rig surface coverage at {SIZE}²: {coverage:.4f}")
    assert coverage >= 0.95


def test_lift_averages_probabilities_over_the_views_that_see_a_vertex(body_rig):
    tables = body_rig.tables
    visible = tables.visible
    constant = np.full((4, SIZE, SIZE), 0.3, dtype=np.float32)
    probs = lift(constant, tables)
    np.testing.assert_allclose(probs[visible.any(0)], 0.3, atol=1e-6)
    # View k at value k / 4: a vertex gets the mean of the values of the views that see it.
    stepped = np.stack([np.full((SIZE, SIZE), k / 4, dtype=np.float32) for k in range(4)])
    expected = (visible * (np.arange(4) / 4)[:, None]).sum(0) / np.maximum(visible.sum(0), 1)
    np.testing.assert_allclose(lift(stepped, tables), expected, atol=1e-6)


def test_gated_lift_ignores_pixels_below_the_threshold(body, body_rig):
    # The original's object predictor: only pixels above 0.3 vote, and only views that voted count.
    tables = body_rig.tables
    masks = np.full((4, SIZE, SIZE), 0.2, dtype=np.float32)
    masks[0] = 0.9
    gated = lift(masks, tables, min_probability=0.3)
    plain = lift(masks, tables)
    only_view0 = tables.visible[0]
    np.testing.assert_allclose(gated[only_view0], 0.9, atol=1e-6)
    assert np.all(gated[~only_view0] == 0)
    several = only_view0 & (tables.visible.sum(0) > 1)
    assert np.all(plain[several] < 0.9 - 1e-3)


def test_torch_lift_matches_numpy_and_is_differentiable(body_rig):
    tables = body_rig.tables
    rng = np.random.default_rng(0)
    masks = rng.random((4, SIZE, SIZE), dtype=np.float32)
    expected = lift(masks, tables)
    p = torch.from_numpy(masks).requires_grad_(True)
    out = lift(p, tables)
    np.testing.assert_allclose(out.detach().numpy(), expected, atol=1e-5)
    out.sum().backward()
    grad = p.grad.numpy()
    assert np.all(grad[~body_rig.masks] == 0)
    assert np.all(grad[body_rig.masks] > 0)
    batched = lift(torch.from_numpy(np.stack([masks, 1 - masks])), tables)
    assert batched.shape == (2, tables.num_vertices)
    np.testing.assert_allclose(batched[1].numpy(), lift(1 - masks, tables), atol=1e-5)


def test_dense_tables_use_the_original_layout(body, body_rig, rasterizer):
    p2v, bary = body_rig.tables.to_dense()
    assert p2v.shape == (4, SIZE, SIZE, 3) and p2v.dtype == np.int32
    assert bary.shape == (4, SIZE, SIZE, 3) and bary.dtype == np.float32
    raster = rasterizer.rasterize(body.canonical_vertices, body.faces, HUMAN_VIEWS[2])
    np.testing.assert_array_equal(p2v[2][~raster.mask], -1)
    np.testing.assert_array_equal(p2v[2][raster.mask], body.faces[raster.triangle_id[raster.mask]])
    np.testing.assert_allclose(bary[2][raster.mask], raster.barycentrics[raster.mask])


def test_tables_load_from_the_original_dense_layout(body, body_rig):
    tables = body_rig.tables
    p2v, bary = tables.to_dense()
    # The original's maps may list a face's corners rotated: rotate every pixel's triple and its weights.
    loaded = type(tables).from_dense(np.roll(p2v, 1, axis=-1), np.roll(bary, 1, axis=-1), body.faces)
    np.testing.assert_array_equal(loaded.triangle_ids, tables.triangle_ids)
    np.testing.assert_allclose(loaded.weight_sums, tables.weight_sums, atol=1e-6)
    masks = np.random.default_rng(1).random((4, SIZE, SIZE), dtype=np.float32)
    np.testing.assert_allclose(lift(masks, loaded), lift(masks, tables), atol=1e-6)
    labels = np.zeros(body.num_vertices, dtype=bool)
    labels[body.part_vertex_ids("left_hand")] = True
    np.testing.assert_array_equal(
        labels_to_masks(labels, loaded, body.faces), labels_to_masks(labels, tables, body.faces)
    )
    p2v[0, 500, 500] = [0, 1, 2]  # not a face of the body
    with pytest.raises(ValueError, match="not faces"):
        type(tables).from_dense(p2v, bary, body.faces)


def test_lift_tables_from_any_views_match_the_rig_render(body, body_rig, rasterizer):
    tables = render_lift_tables(rasterizer, body.canonical_vertices, body.faces, HUMAN_VIEWS)
    np.testing.assert_array_equal(tables.pixels, body_rig.tables.pixels)
    np.testing.assert_array_equal(tables.vertex_ids, body_rig.tables.vertex_ids)
    assert tables.num_views == len(HUMAN_VIEWS)


def test_bad_masks_and_labels_raise_value_error(body, body_rig):
    tables = body_rig.tables
    with pytest.raises(ValueError, match="shape"):
        lift(np.zeros((4, 512, 512), np.float32), tables)
    with pytest.raises(ValueError, match="shape"):
        lift(np.zeros((3, SIZE, SIZE), np.float32), tables)
    with pytest.raises(ValueError, match="shape"):
        lift(torch.zeros(2, 3, SIZE, SIZE), tables)
    bad = np.zeros((4, SIZE, SIZE), np.float32)
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        lift(bad, tables)
    with pytest.raises(ValueError, match="vertex_labels"):
        labels_to_masks(np.zeros(body.num_vertices + 1, bool), tables, body.faces)
    with pytest.raises(ValueError, match="faces were given"):
        labels_to_masks(np.zeros(body.num_vertices, bool), tables, body.faces[:100])
    with pytest.raises(ValueError, match="min_vertices"):
        labels_to_masks(np.zeros(body.num_vertices, bool), tables, body.faces, min_vertices=0)
