"""The contact messages are the product's API: they build, import and survive real DDS transport."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

rclpy = pytest.importorskip("rclpy")
from rclpy.serialization import deserialize_message, serialize_message  # noqa: E402

from ivlm_ros.msg import Contact, ContactArray  # noqa: E402

HERE = Path(__file__).resolve().parent


def _filled(msg_type: type, seed: int = 1):
    """A message of `msg_type` with every field, recursively, set to a non-default value."""
    msg = msg_type()
    for i, (name, typ) in enumerate(msg_type.get_fields_and_field_types().items()):
        v = seed + i
        setattr(msg, name, _value(typ, v, getattr(msg, name)))
    return msg


def _value(typ: str, v: int, current):
    if typ.startswith("sequence<"):
        inner = typ[len("sequence<") : -1].split(",")[0]
        return [_value(inner, v + k, None) for k in range(3)]
    if typ == "string":
        return f"s{v}"
    if typ == "boolean":
        return True
    if typ in ("float", "double"):
        return v + 0.25
    if typ.startswith(("uint", "int", "byte", "octet")):
        return v
    # a nested message type such as "geometry_msgs/Point"
    pkg, name = typ.split("/")
    module = __import__(f"{pkg}.msg", fromlist=[name])
    return _filled(getattr(module, name), v)


def _full_contact_array() -> ContactArray:
    arr = _filled(ContactArray)
    arr.contacts = [_filled(Contact, 10), _filled(Contact, 50)]
    return arr


def test_every_contact_field_is_set_by_the_filler():
    default, filled = Contact(), _filled(Contact)
    for name in Contact.get_fields_and_field_types():
        assert getattr(filled, name) != getattr(default, name), name


def test_contact_array_serializes_losslessly():
    msg = _full_contact_array()
    assert deserialize_message(serialize_message(msg), ContactArray) == msg


def test_contact_array_round_trip_between_two_processes(tmp_path):
    """A publisher (this process) and a subscriber (another process) exchange a fully set message."""
    topic = f"/ivlm_test/contacts_{time.monotonic_ns()}"
    out_file = tmp_path / "received.cdr"
    sub = subprocess.Popen([sys.executable, str(HERE / "ros_echo_subscriber.py"), topic, str(out_file)])
    msg = _full_contact_array()
    rclpy.init()
    try:
        node = rclpy.create_node("ivlm_test_publisher")
        pub = node.create_publisher(ContactArray, topic, 10)
        deadline = time.monotonic() + 40.0
        while sub.poll() is None and time.monotonic() < deadline:
            pub.publish(msg)
            rclpy.spin_once(node, timeout_sec=0.1)
        node.destroy_node()
    finally:
        rclpy.shutdown()
        if sub.poll() is None:
            sub.kill()
    assert sub.wait(timeout=10) == 0, "subscriber process received nothing"
    assert deserialize_message(out_file.read_bytes(), ContactArray) == msg
