"""ROS 2 adapter of ivlm_core: converts messages, schedules work, publishes results.

The generated message classes (`ivlm_ros.msg`) are installed by the CMake build next to the
installed copy of this package. `extend_path` merges every `ivlm_ros` folder on `sys.path`, so
`ivlm_ros.msg` also resolves when this source tree comes first on the path (running from a
checkout, pytest), not only from the installed copy.
"""

from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)
