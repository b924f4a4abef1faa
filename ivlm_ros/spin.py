"""Spinning a node until Ctrl-C or shutdown, with a cleanup that a second Ctrl-C cannot cut."""

from __future__ import annotations

import signal
from collections.abc import Callable

import rclpy
import rclpy.executors
from rclpy.node import Node


def spin_until_shutdown(node: Node, cleanup: Callable[[], None] | None = None) -> None:
    """Spin `node`; on Ctrl-C or external shutdown run `cleanup`, destroy the node, shut rclpy down.

    `ros2 launch` forwards a second SIGINT while processes stop: it is ignored from the moment
    shutdown starts, so the cleanup (stopping workers, freeing models) always completes.
    """
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
        pass
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if cleanup is not None:
            cleanup()
        node.destroy_node()
        rclpy.try_shutdown()
