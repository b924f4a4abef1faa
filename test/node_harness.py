"""A contact node running in a private rclpy context, with an optional peer node (shared by node tests)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import rclpy
from rclpy.executors import MultiThreadedExecutor, SingleThreadedExecutor
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.node import Node
from rclpy.parameter import Parameter

from ivlm_ros.contact_node import ContactNode


@contextmanager
def running_node(overrides: list[Parameter], peer: str | None = None, activate: bool = True,
                 threads: int = 3) -> Iterator[tuple[ContactNode, Node | None]]:
    """The node configured (and activated), spun with `threads` executor threads (1: single-threaded, as
    `ros2 run` spins it) together with a peer node named `peer`; torn down on exit."""
    context = rclpy.Context()
    rclpy.init(context=context)
    node = ContactNode(context=context, parameter_overrides=overrides)
    other = rclpy.create_node(peer, context=context) if peer else None
    executor = (SingleThreadedExecutor(context=context) if threads == 1
                else MultiThreadedExecutor(num_threads=threads, context=context))
    for n in (node, other):
        if n is not None:
            executor.add_node(n)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        if activate:
            assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        yield node, other
    finally:
        node.trigger_deactivate()
        node.trigger_cleanup()
        executor.shutdown()
        node.destroy_node()
        if other is not None:
            other.destroy_node()
        rclpy.shutdown(context=context)
        spinner.join(timeout=5)
