"""Node parameters: declared with description, range or choices and listed in the config; bad values
fail configure with the reason; live ones change with `ros2 param set`, the others say why not."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.ros

rclpy = pytest.importorskip("rclpy")
pytest.importorskip("ivlm_ros.msg", reason="ivlm_ros messages are not built")

from rclpy.lifecycle import TransitionCallbackReturn  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402

from ivlm_ros.contact_node import PARAMETERS, ContactNode  # noqa: E402

CONFIG = Path(__file__).resolve().parents[1] / "config" / "contact.yaml"


def test_config_file_lists_every_parameter_with_its_default():
    params = yaml.safe_load(CONFIG.read_text())["/**"]["ros__parameters"]
    assert set(params) == set(PARAMETERS)
    for name, spec in PARAMETERS.items():
        assert params[name] == spec.default, name


def test_parameters_are_declared_with_descriptions_and_ranges():
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        node = ContactNode(context=context)
        for name, spec in PARAMETERS.items():
            d = node.describe_parameter(name)
            assert d.description == spec.describe(), name
            assert node.get_parameter(name).value == spec.default
            if spec.limits and not isinstance(spec.limits[0], str):
                assert f"[{spec.limits[0]}, {spec.limits[1]}]" in d.description, name
        node.destroy_node()
    finally:
        rclpy.shutdown(context=context)


@pytest.mark.parametrize(("name", "value", "message"), [
    ("backend_options", "{bogus: 1}", "does not accept option(s) ['bogus']"),
    ("backend_options", "[1, 2]", "YAML mapping"),
    ("detections_type", "yolo", "choose one of: auto, vision_msgs, ivlm"),
    ("contact_threshold", 2.0, "contact_threshold = 2.0 is outside [0.01, 1.0]"),  # was a traceback at start
    ("marker_max_triangles", -1, "marker_max_triangles = -1 is outside [100, 100000]"),
    ("max_rate_hz", "fast", "must be a number"),
])
def test_bad_configuration_fails_configure_and_says_why(name, value, message):
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        node = ContactNode(context=context, parameter_overrides=[Parameter(name, value=value)])
        assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
        assert message in node._stats.last_error
        node.destroy_node()
    finally:
        rclpy.shutdown(context=context)


def test_reconstruct_with_a_backend_that_cannot_fails_configure_and_says_why():
    """interactvlm places no object in 3D: `reconstruct: true` was silently dropped."""
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        node = ContactNode(context=context, parameter_overrides=[
            Parameter("backend", value="interactvlm"), Parameter("reconstruct", value=True)])
        assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
        assert "reconstruct = 'true': the 'interactvlm' backend cannot honour it" in node._stats.last_error
        node.destroy_node()
    finally:
        rclpy.shutdown(context=context)


def test_params_file_with_ints_empty_lists_and_typos(tmp_path):
    """`max_rate_hz: 5` (an int) and `class_names: []` are accepted, a typo is warned with the nearest name,
    live parameters change at once with checks, the others say why not."""
    params = tmp_path / "params.yaml"
    params.write_text("/**:\n  ros__parameters:\n    max_rate_hz: 5\n    class_names: []\n"
                      "    contact_treshold: 0.4\n    publish_markers: false\n")
    context = rclpy.Context()
    rclpy.init(context=context, args=["--ros-args", "--params-file", str(params)])
    try:
        node = ContactNode(context=context)
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS, node._stats.last_error
        assert node.p["max_rate_hz"] == 5.0 and node.p["class_names"] == []
        assert node._parameter_warnings == [
            "parameter 'contact_treshold' is not a parameter of this node and is ignored; did you mean "
            "'contact_threshold'?"]
        ok = node.set_parameters([Parameter("contact_threshold", value=0.3),
                                  Parameter("smoothing_alpha", value=1)])
        assert all(r.successful for r in ok) and node._pipeline.report.contact_threshold == 0.3
        assert node._pipeline.tracker.smoother.alpha == 1.0
        bad = node.set_parameters([Parameter("contact_threshold", value=2.0)])[0]
        assert not bad.successful and "outside [0.01, 1.0]" in bad.reason
        assert node._pipeline.report.contact_threshold == 0.3
        fixed = node.set_parameters([Parameter("backend", value="interactvlm")])[0]
        assert not fixed.successful and "read at configure" in fixed.reason
        node.trigger_cleanup()
        node.destroy_node()
    finally:
        rclpy.shutdown(context=context)
