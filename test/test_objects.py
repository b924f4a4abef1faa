"""Object mesh registry: built-in shapes, user meshes, generic fallbacks, render normalisation."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import trimesh

from ivlm_core.objects import ObjectRegistry, load_categories, normalize_for_render
from ivlm_core.types import CameraIntrinsics

COCO_80 = [
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog",
    "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite",
    "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange",
    "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch", "potted plant",
    "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors",
    "teddy bear", "hair drier", "toothbrush",
]  # fmt: skip
CATEGORIES = load_categories()


@pytest.fixture(scope="module")
def registry() -> ObjectRegistry:
    return ObjectRegistry()


@pytest.fixture
def registry_log(caplog, monkeypatch) -> pytest.LogCaptureFixture:
    """caplog for the registry's warnings.

    The launch_testing pytest plugin installs launch's logger class, whose loggers do not
    propagate to the root logger where caplog listens; re-enable propagation for this logger.
    """
    monkeypatch.setattr(logging.getLogger("ivlm_core.objects.registry"), "propagate", True)
    caplog.set_level(logging.WARNING, logger="ivlm_core.objects.registry")
    return caplog


def test_categories_cover_all_80_coco_classes_and_ski_pole():
    assert len(COCO_80) == 80
    missing = sorted(set([*COCO_80, "ski pole"]) - set(CATEGORIES))
    assert not missing, f"categories.yaml lacks {missing}"


@pytest.mark.parametrize("label", sorted(CATEGORIES))
def test_builtin_category_builds_a_valid_mesh_within_its_size_prior(registry, label):
    obj = registry.get(label)
    assert obj.mesh_id == f"builtin:{label.replace(' ', '_')}"
    assert obj.label == label
    assert obj.vertices.dtype == np.float32 and obj.vertices.shape[1] == 3
    assert obj.faces.dtype == np.int64 and obj.faces.shape[1] == 3
    assert np.all(np.isfinite(obj.vertices))
    assert 300 <= len(obj.vertices) <= 3000
    mesh = obj.to_trimesh()
    assert mesh.is_winding_consistent and mesh.is_watertight
    assert mesh.volume > 0, "faces must wind outwards"
    prior = CATEGORIES[label].size_m
    np.testing.assert_allclose(obj.size_m, prior, rtol=0.15)
    np.testing.assert_allclose(obj.vertices.max(0) + obj.vertices.min(0), 0.0, atol=1e-5)


def test_builtin_meshes_are_built_once_and_read_only(registry):
    first = registry.get("bicycle")
    assert registry.get("Bike") is first
    with pytest.raises(ValueError):
        first.vertices[0, 0] = 1.0


@pytest.mark.parametrize(
    ("label", "category"),
    [("Mug", "cup"), ("tennis_racket", "tennis racket"), ("SOFA", "couch"), ("cell-phone", "cell phone"),
     ("Ski Poles", "ski pole"), ("tvmonitor", "tv"), ("motorbike", "motorcycle"), ("Bottles", "bottle")],
)  # fmt: skip
def test_label_lookup_accepts_synonyms_and_spelling_variants(registry, label, category):
    assert registry.get(label).label == category


def test_unknown_label_gets_a_box_sized_from_the_pixel_box_and_camera(registry_log):
    registry = ObjectRegistry(assumed_depth_m=2.0)
    camera = CameraIntrinsics.from_fov(640, 480, fov_deg=60.0)
    box = np.array([100.0, 100.0, 200.0, 150.0])
    obj = registry.get("flux capacitor", box_xyxy=box, camera=camera)
    registry.get("flux capacitor", box_xyxy=box, camera=camera)
    assert obj.mesh_id == "generic:flux capacitor:350x180x180mm"  # label + size in 10 % steps: an identity
    assert registry.get("flux capacitor", box_xyxy=box, camera=camera) is obj
    other = registry.get("flux capacitor", box_xyxy=np.array([100.0, 100.0, 300.0, 150.0]), camera=camera)
    assert other.mesh_id != obj.mesh_id and other.size_m[0] > obj.size_m[0]
    jitter = registry.get("flux capacitor", box_xyxy=np.array([101.0, 100.0, 301.0, 151.0]), camera=camera)
    assert jitter is other  # a box that moves by a pixel is the same mesh
    assert registry.get("flux capacitor", box_xyxy=box, camera=camera) is obj  # sizes do not evict each other
    width = 100.0 / camera.fx * 2.0
    height = 50.0 / camera.fy * 2.0
    np.testing.assert_allclose(obj.size_m, [width, height, height], rtol=0.05)  # within half a 10 % step
    assert obj.to_trimesh().is_watertight
    warnings = [r for r in registry_log.records if "flux capacitor" in r.getMessage()]
    assert len(warnings) == 1, "the warning is given once per label, not per frame"


@pytest.mark.parametrize(
    ("label", "name", "affordance"),
    [("wet sand", "sand", "support_surface"), ("tablet (iPad)", "tablet", "hand_held_small"),
     ("dining table / counter", "dining table", "rest_on"),
     ("a pair of scissors", "scissors", "hand_held_small"), ("cup of coffee", "cup", "food_drink"),
     ("Knives", "knife", "hand_held_small"), ("yoga mat", "yoga mat", "support_surface"),
     ("berries", "berry", "food_drink"), ("ground", "ground", "support_surface"),
     ("Bar_Counter", "bar counter", "rest_on"), ("red coffee mug", "cup", "food_drink"),
     ("mountains", "mountains", "background_far"), ("men", "person", "person"),
     ("picture frames", "picture frame", "hand_held_large")],
)  # fmt: skip
def test_open_vocabulary_labels_resolve_to_one_table_row(registry, label, name, affordance):
    match = registry.labels.resolve(label)
    assert match is not None and match.category.label == name and match.category.affordance == affordance
    assert (match.via == "") == (label.lower().replace("_", " ") == name)  # says how it matched
    mesh = registry.get(label)
    assert mesh.label == name
    np.testing.assert_allclose(mesh.size_m, match.category.size_m, rtol=0.15)  # its size prior, not its box


def test_the_table_has_several_hundred_nouns_each_with_a_known_class():
    from ivlm_core.backends.keypoint.priors import ContactPriors

    resolver = ObjectRegistry().labels
    assert len(resolver.vocabulary) >= 300
    classes = set(ContactPriors().affordances)
    rows = [*resolver.categories.values(), *resolver.vocabulary.values()]
    assert {row.affordance for row in rows} <= classes
    for label in ("flux capacitor", "41", "", "of"):
        assert resolver.resolve(label) is None


def test_unknown_label_without_camera_gets_the_default_size():
    registry = ObjectRegistry(default_size_m=0.3)
    np.testing.assert_allclose(registry.get("gizmo").size_m, [0.3, 0.3, 0.3], rtol=1e-4)
    boxed = registry.get("gizmo", box_xyxy=[0, 0, 40, 20])
    np.testing.assert_allclose(boxed.size_m, [0.3, 0.15, 0.15], rtol=1e-4)


def test_user_mesh_is_picked_over_the_builtin_and_scaled_to_the_size_prior(tmp_path, registry_log):
    trimesh.creation.cylinder(radius=4.0, height=10.0, sections=48).export(tmp_path / "Coffee_Mug.obj")
    registry = ObjectRegistry(user_folder=str(tmp_path))
    obj = registry.get("cup")
    assert obj.mesh_id == f"file:{(tmp_path / 'Coffee_Mug.obj').resolve()}"
    assert obj.label == "cup"
    assert registry.get("mug") is obj
    assert obj.size_m.max() == pytest.approx(CATEGORIES["cup"].size_m.max(), rel=1e-5)
    assert any("no units" in r.getMessage() for r in registry_log.records)
    assert registry.get("bottle").mesh_id == "builtin:bottle"


def test_user_mesh_with_units_keeps_its_size_and_unknown_labels_match_by_file_stem(tmp_path):
    trimesh.creation.box(extents=[0.3, 0.2, 0.1]).export(tmp_path / "cordless_drill.glb")
    registry = ObjectRegistry(user_folder=str(tmp_path))
    obj = registry.get("Cordless Drill")
    assert obj.mesh_id.startswith("file:") and obj.label == "cordless_drill"
    np.testing.assert_allclose(np.sort(obj.size_m), [0.1, 0.2, 0.3], rtol=1e-5)


def _write_obj(path, vertices, faces):
    lines = [f"v {x} {y} {z}" for x, y, z in vertices] + [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in faces]
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize(
    ("vertices", "faces", "message"),
    [
        ([], [], "empty"),
        ([[0, 0, 0], [1, 0, 0], [0, float("nan"), 0]], [[0, 1, 2]], "NaN"),
        (
            [[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1]],
            [[0, 1, 2], [1, 0, 3], [0, 1, 4]],
            "non-manifold",
        ),
        ([[0.1, 0.2, 0.3]] * 4, [[0, 1, 2], [1, 2, 3], [0, 2, 3]], "zero size"),  # was called non-manifold
        ([[0, 0, 0], [1, 0, 0], [2, 0, 0], [3, 0, 0]], [[0, 1, 2], [1, 2, 3], [0, 2, 3]],
         "degenerate: all 3 faces have zero area"),  # was accepted: a mesh without surface
    ],
    ids=["empty", "nan", "non-manifold", "one-point", "collinear"],
)
def test_bad_user_mesh_raises_a_value_error_naming_the_problem(tmp_path, vertices, faces, message):
    _write_obj(tmp_path / "cup.obj", vertices, faces)
    with pytest.raises(ValueError, match=message):
        ObjectRegistry(user_folder=str(tmp_path))


def test_user_folder_problems_raise_value_errors(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    trimesh.creation.box().export(tmp_path / "bottle.obj")
    assert ObjectRegistry(user_folder="").get("bottle").mesh_id == "builtin:bottle", "'' means no folder"
    with pytest.raises(ValueError, match="does not exist"):
        ObjectRegistry(user_folder=str(tmp_path / "missing"))
    trimesh.creation.box().export(tmp_path / "cup.obj")
    trimesh.creation.box().export(tmp_path / "CUP.ply")
    with pytest.raises(ValueError, match="both match"):
        ObjectRegistry(user_folder=str(tmp_path))


def test_normalize_for_render_centres_on_the_vertex_mean_and_scales_the_largest_extent_to_one(registry):
    cup = registry.get("cup")
    vertices = cup.vertices
    normalized = normalize_for_render(vertices * 3.0 + np.array([1.0, -2.0, 5.0], dtype=np.float32))
    np.testing.assert_allclose(normalized.mean(axis=0), 0.0, atol=1e-6)
    extents = normalized.max(axis=0) - normalized.min(axis=0)
    assert extents.max() == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(extents, cup.size_m / cup.size_m.max(), rtol=1e-5)
    with pytest.raises(ValueError, match="NaN"):
        normalize_for_render(np.array([[0.0, 0.0, np.nan]]))


def test_a_huge_user_mesh_is_decimated_once_at_load_to_the_face_budget(tmp_path, registry_log):
    sphere = trimesh.creation.icosphere(subdivisions=7, radius=0.1)  # 327,680 faces
    sphere.export(tmp_path / "gizmo.ply")
    registry = ObjectRegistry(user_folder=str(tmp_path), max_user_faces=5000)
    mesh = registry.get("gizmo")
    assert 1000 < len(mesh.faces) <= 5000
    np.testing.assert_allclose(mesh.size_m, 0.2, rtol=0.05)  # same object, a coarser surface
    radii = np.linalg.norm(mesh.vertices - mesh.vertices.mean(axis=0), axis=1)
    assert np.abs(radii - 0.1).max() < 0.01
    assert any("327680 faces: decimated once" in r.getMessage() for r in registry_log.records)
    assert registry.get("gizmo") is mesh
