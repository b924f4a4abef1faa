"""Process set-up of the executables: bounded malloc arenas, and spinning a node until Ctrl-C or shutdown
with a cleanup that a second Ctrl-C cannot cut."""

from __future__ import annotations

import contextlib
import ctypes
import signal
from collections.abc import Callable

import rclpy
import rclpy.executors
from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy
from rclpy.node import Node

M_ARENA_MAX = -8  # glibc mallopt parameter (malloc.h)


def limit_malloc_arenas(arenas: int = 2) -> None:
    """Cap glibc's malloc arenas for this process; call before any thread starts.

    glibc gives threads arenas of their own and keeps their freed memory; each configure starts new
    model threads (mediapipe, torch), so with the default cap (8 x cores) 20 configure/cleanup cycles
    kept ~120 MB more after cleanup; with 2 arenas 25-40 MB (bench/lifecycle_churn.py). No-op without glibc.
    """
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").mallopt(M_ARENA_MAX, arenas)


def spin_until_shutdown(node: Node, cleanup: Callable[[], None] | None = None) -> None:
    """Spin `node`; on Ctrl-C or external shutdown run `cleanup`, destroy the node, shut rclpy down.

    `ros2 launch` forwards a second SIGINT while processes stop: it is ignored from the moment
    shutdown starts, so the cleanup (stopping workers, freeing models) always completes.
    """
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
        pass
    except _rclpy.RCLError:  # SIGINT shut the context down between the executor's check and its wait
        if rclpy.ok(context=node.context):
            raise
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if cleanup is not None:
            cleanup()
        node.destroy_node()
        rclpy.try_shutdown()
