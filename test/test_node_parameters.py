"""Every node parameter is declared with a description (and range or choices) and listed in the config."""

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
    for name, (default, _, _) in PARAMETERS.items():
        assert params[name] == default, name


def test_parameters_are_declared_with_descriptions_and_ranges():
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        node = ContactNode(context=context)
        for name, (default, _, limits) in PARAMETERS.items():
            d = node.describe_parameter(name)
            assert d.description, name
            assert node.get_parameter(name).value == default
            if isinstance(limits, tuple) and not isinstance(limits[0], str):
                ranges = list(d.floating_point_range) + list(d.integer_range)
                assert ranges and ranges[0].from_value == limits[0] and ranges[0].to_value == limits[1], name
        with pytest.raises(rclpy.exceptions.InvalidParameterValueException):
            ContactNode(context=context, node_name="bad", parameter_overrides=[
                Parameter("contact_threshold", value=1.5)])
        node.destroy_node()
    finally:
        rclpy.shutdown(context=context)


@pytest.mark.parametrize(("name", "value", "message"), [
    ("backend_options", "{bogus: 1}", "does not accept option(s) ['bogus']"),
    ("backend_options", "[1, 2]", "YAML mapping"),
    ("detections_type", "yolo", "choose one of: auto, vision_msgs, ivlm"),
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
