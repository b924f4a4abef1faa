"""The node's settings checked without ROS: types, ranges, choices, typos, what a backend can honour."""

from __future__ import annotations

import pytest

from ivlm_core.settings import SETTINGS, backend_kwargs, check_settings, unknown_names


def _values(**changes) -> dict:
    return {name: spec.default for name, spec in SETTINGS.items()} | changes


def test_defaults_pass_and_ints_are_accepted_where_floats_are_meant():
    p = check_settings(SETTINGS, _values(max_rate_hz=5, class_names=None, track_max_missed=3.0))
    assert p["max_rate_hz"] == 5.0 and isinstance(p["max_rate_hz"], float)
    assert p["class_names"] == [] and p["track_max_missed"] == 3 and p["backend_options"] == {}


@pytest.mark.parametrize(("name", "value", "message"), [
    ("contact_threshold", 2.0, "contact_threshold = 2.0 is outside [0.01, 1.0]"),
    ("marker_max_triangles", -1, "outside [100, 100000]"),
    ("track_max_missed", 2.5, "whole number"),
    ("max_rate_hz", float("nan"), "finite"),
    ("max_rate_hz", True, "must be a number"),
    ("video", 1, "true or false"),
    ("backend", "yolo", "choose one of: keypoint, interactvlm"),
    ("reconstruct", "maybe", "choose one of: auto, true, false"),
    ("body_model", "smpl-x", "choose one of: auto, anny, smpl, smplh, smplx"),
    ("binary_contact", 1, "true or false"),
    ("class_names", [1, 2], "list of strings"),
    ("backend_options", "[1, 2]", "YAML mapping"),
])
def test_bad_values_are_refused_with_the_name_and_the_reason(name, value, message):
    with pytest.raises(ValueError, match="parameter") as err:
        check_settings(SETTINGS, _values(**{name: value}))
    assert message in str(err.value)


def test_typos_get_the_nearest_name():
    assert unknown_names(["contact_treshold", "max_rate_hz", "zzz"], SETTINGS) == [
        "parameter 'contact_treshold' is not a parameter of this node and is ignored; did you mean "
        "'contact_threshold'?",
        "parameter 'zzz' is not a parameter of this node and is ignored"]


def test_every_backend_setting_is_honoured_or_refused():
    p = check_settings(SETTINGS, _values(reconstruct=True, contact_threshold=0.3))  # a YAML boolean
    assert p["reconstruct"] == "true"
    keypoint = {"body_model", "body_model_path", "device", "video", "reconstruct", "object_mesh_folder",
                "default_fov_deg", "binary", "gravity"}
    assert backend_kwargs(p, keypoint)["reconstruct"] is True
    with pytest.raises(ValueError, match="reconstruct = 'true': the 'keypoint' backend cannot honour it"):
        backend_kwargs(p, keypoint - {"reconstruct"})
    assert "video" not in backend_kwargs(check_settings(SETTINGS, _values()), {"device"})  # a hint only
    config = backend_kwargs(p, keypoint | {"reconstruct_config"})["reconstruct_config"]
    assert config.contact_threshold == 0.3 and config.grasp_clearance_m == p["grasp_clearance"]


def test_auto_places_objects_where_the_backend_can_and_leaves_the_body_to_the_backend():
    """3D is on by default for a backend that places objects; one that cannot is not refused for it."""
    defaults = check_settings(SETTINGS, _values())
    keypoint = backend_kwargs(defaults, {"body_model", "reconstruct", "device", "binary", "gravity"})
    assert keypoint["reconstruct"] is True and "body_model" not in keypoint and keypoint["binary"] is False
    assert "reconstruct" not in backend_kwargs(defaults, {"body_model", "device"})  # interactvlm-like
    off = backend_kwargs(check_settings(SETTINGS, _values(reconstruct=False)), {"reconstruct", "device"})
    assert off["reconstruct"] is False
    assert "reconstruct" not in backend_kwargs(check_settings(SETTINGS, _values(reconstruct="false")),
                                               {"device"})


def test_binary_contact_and_gravity_reach_the_backend_or_are_refused():
    p = check_settings(SETTINGS, _values(binary_contact=True, gravity=[0, 1, 1]))
    assert p["gravity"] == [0.0, 1.0, 1.0]
    options = backend_kwargs(p, {"reconstruct", "device", "binary", "gravity"})
    assert options["binary"] is True and options["gravity"] == [0.0, 1.0, 1.0]
    with pytest.raises(ValueError, match="binary_contact = True: the 'keypoint' backend cannot honour it"):
        backend_kwargs(p, {"reconstruct", "device", "gravity"})
    assert "gravity" not in backend_kwargs(check_settings(SETTINGS, _values()), {"device"})  # a hint only


@pytest.mark.parametrize("gravity", [[0, 0, 0], [0, 1], [0, float("nan"), 1], ["down", 0, 0], [True, 0, 0]])
def test_bad_gravity_is_refused(gravity):
    with pytest.raises(ValueError, match=r"gravity .* must be 3 finite numbers, not all zero"):
        check_settings(SETTINGS, _values(gravity=gravity))
