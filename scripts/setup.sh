#!/usr/bin/env bash
# One-command set-up for a machine without a ROS 2 distro (idempotent; re-run it any time).
#
#   bash scripts/setup.sh            creates/updates .venv with:
#     - the ROS 2 Kilted PyPI wheels, torch 2.13.0 (CPU) and every Python dependency, all
#       pinned in requirements/lock.txt (installed --no-deps, so a clone a month from now gets
#       exactly the same versions);
#     - this package (messages, ivlm_core, ivlm_ros, launch/, config/, node executables)
#       built with the system cmake and installed into the venv prefix: the same ament_cmake
#       path `colcon build` runs on a ROS 2 distro;
#     - the shipped body model's cache (built once, ~100 s, then reused).
#
#   IVLM_ROS_TOOLS=1 bash scripts/setup.sh   also installs `ros2 launch`, the ros2 CLI, launch_testing
#     and vision_msgs (not on PyPI) from their Kilted release sources: the official repositories
#     (needs git and GitHub), or IVLM_ROS_TOOLS_SOURCE=<folder> with one sub-folder per package.
#
# Knobs: PYTHON (interpreter for the venv, default python3), VENV (default .venv),
#        JOBS (build jobs), IVLM_SKIP_BODY_CACHE=1 (skip the body-model cache step),
#        IVLM_ROS_TOOLS=1 and IVLM_ROS_TOOLS_SOURCE=official|<folder> (step 3b).
# Needs: Python 3.11 with headers, a C/C++ compiler, make, CMake >= 3.19.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"
JOBS="${JOBS:-$(nproc 2>/dev/null || echo 2)}"
T0=$SECONDS
step() { printf '\n[setup %3ds] %s\n' "$((SECONDS - T0))" "$*"; }

# ------------------------------------------------------------------ 1. venv
if [[ ! -x "$VENV/bin/python" ]]; then
  step "creating venv $VENV"
  "$PYTHON" -m venv "$VENV"
fi
VPY="$VENV/bin/python"
"$VPY" -c 'import sys; assert sys.version_info[:2] == (3, 11), sys.version' 2>/dev/null || {
  echo "ERROR: $VENV uses $("$VPY" --version); the pinned wheels need Python 3.11. Remove $VENV and set PYTHON=python3.11." >&2
  exit 1; }
STATE="$VENV/share/ivlm_ros_venv"
mkdir -p "$STATE"

# ------------------------------------------------------------------ 2. pinned wheels
LOCK="$ROOT/requirements/lock.txt"
LOCK_SUM="$(sha256sum "$LOCK" | cut -d' ' -f1)"
if [[ "$(cat "$STATE/lock.sha256" 2>/dev/null)" != "$LOCK_SUM" ]]; then
  step "installing $(grep -c '==' "$LOCK") pinned packages (ROS 2 wheels, torch 2.13.0 CPU, models); first run takes a few minutes"
  # --no-deps: the lock is the complete closure. mediapipe 0.10.21 declares numpy<2, yet runs
  # with the numpy 2.4.6 that the ROS 2 wheels are built against (tested in test/test_setup.py).
  "$VPY" -m pip install --no-deps --progress-bar off -r "$LOCK" 2>&1 | grep -vE 'is ignored|^Requirement already' || true
  "$VPY" -c 'import rclpy, torch, mediapipe, anny, trimesh' || { echo "ERROR: pinned install incomplete" >&2; exit 1; }
  echo "$LOCK_SUM" > "$STATE/lock.sha256"
else
  step "pinned packages already installed (requirements/lock.txt unchanged)"
fi

# ------------------------------------------------------------------ 3. build + install the package
for tool in cc c++ make cmake; do
  command -v "$tool" >/dev/null || { echo "ERROR: '$tool' not found (Debian: apt-get install build-essential cmake)" >&2; exit 1; }
done
# `ros2-venv-build PKG_DIR...` builds ament_cmake packages into the venv prefix: what `colcon build`
# does on a ROS 2 distro. Also the entry point ../shared/ros2/install_launch_tools.sh expects.
mkdir -p "$VENV/share/ros2_venv"
cp "$LOCK" "$VENV/share/ros2_venv/constraints.txt"
cat > "$VENV/bin/ros2-venv-build" <<BLD
#!/usr/bin/env bash
# usage: ros2-venv-build PKG_DIR [PKG_DIR...]  (cmake configure + build + install into $VENV)
set -euo pipefail
export AMENT_PREFIX_PATH="$VENV\${AMENT_PREFIX_PATH:+:\$AMENT_PREFIX_PATH}"
for src in "\$@"; do
  src="\$(cd "\$src" && pwd)"
  build="$STATE/build/\$(basename "\$src")"
  cmake -S "\$src" -B "\$build" \\
    -DCMAKE_PROJECT_INCLUDE="$ROOT/cmake/drop_missing_wheel_includes.cmake" \\
    -DCMAKE_PREFIX_PATH="$VENV" -DCMAKE_INSTALL_PREFIX="$VENV" \\
    -DPython3_EXECUTABLE="$VPY" -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF
  cmake --build "\$build" -j "\${JOBS:-$JOBS}"
  cmake --install "\$build"
done
BLD
chmod +x "$VENV/bin/ros2-venv-build"
step "building messages and installing ivlm_ros into $VENV (cmake, log: $STATE/build.log)"
"$VENV/bin/ros2-venv-build" "$ROOT" > "$STATE/build.log" 2>&1 \
  || { tail -40 "$STATE/build.log"; echo "ERROR: build failed, see $STATE/build.log" >&2; exit 1; }

# ament_index_python (share/ lookups, `ros2 launch`) needs AMENT_PREFIX_PATH; default it to the
# venv for every venv python, the same .pth mechanism the ROS 2 wheels use for their libraries.
SITE="$("$VPY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
echo "import os, sys; os.environ.setdefault('AMENT_PREFIX_PATH', sys.prefix)" > "$SITE/ivlm_ros_venv_env.pth"

# ------------------------------------------------------------------ 3b. ROS 2 tools (opt-in)
# `ros2 launch`, the ros2 CLI, launch_testing and vision_msgs are not on PyPI. With IVLM_ROS_TOOLS=1
# they are installed from their release sources: IVLM_ROS_TOOLS_SOURCE=official (default) clones the
# official repositories at the Kilted release tags below; a folder instead holds one sub-folder per
# package (a mirror of the same releases, e.g. for machines without GitHub access). Pure-Python
# packages are pip-installed (--no-deps); the interface packages are built with ros2-venv-build.
# package  repository  tag  folder in the repository
ROS_TOOLS=$(cat <<'TABLE'
launch                 https://github.com/ros2/launch.git                3.8.8   launch
launch_xml             https://github.com/ros2/launch.git                3.8.8   launch_xml
launch_yaml            https://github.com/ros2/launch.git                3.8.8   launch_yaml
launch_testing         https://github.com/ros2/launch.git                3.8.8   launch_testing
launch_ros             https://github.com/ros2/launch_ros.git            0.28.6  launch_ros
launch_testing_ros     https://github.com/ros2/launch_ros.git            0.28.6  launch_testing_ros
ros2launch             https://github.com/ros2/launch_ros.git            0.28.6  ros2launch
rosidl_runtime_py      https://github.com/ros2/rosidl_runtime_py.git     0.14.2  .
ros2cli                https://github.com/ros2/ros2cli.git               0.38.4  ros2cli
ros2pkg                https://github.com/ros2/ros2cli.git               0.38.4  ros2pkg
ros2topic              https://github.com/ros2/ros2cli.git               0.38.4  ros2topic
ros2node               https://github.com/ros2/ros2cli.git               0.38.4  ros2node
ros2run                https://github.com/ros2/ros2cli.git               0.38.4  ros2run
ros2param              https://github.com/ros2/ros2cli.git               0.38.4  ros2param
ros2service            https://github.com/ros2/ros2cli.git               0.38.4  ros2service
ros2interface          https://github.com/ros2/ros2cli.git               0.38.4  ros2interface
ros2lifecycle          https://github.com/ros2/ros2cli.git               0.38.4  ros2lifecycle
ros2action             https://github.com/ros2/ros2cli.git               0.38.4  ros2action
composition_interfaces https://github.com/ros2/rcl_interfaces.git        2.3.0   composition_interfaces
vision_msgs            https://github.com/ros-perception/vision_msgs.git 4.2.0   vision_msgs
TABLE
)
ROS_TOOLS_INTERFACES="composition_interfaces vision_msgs"   # built with cmake; the rest is pure Python
# their PyPI dependencies not already in requirements/lock.txt (wheel: builds without isolation)
ROS_TOOLS_PINS="osrf-pycommon==2.0.2 argcomplete==3.7.2 wheel==0.48.0"

install_ros_tools() {
  local source="${IVLM_ROS_TOOLS_SOURCE:-official}" stamp="$STATE/ros_tools.stamp" want tmp
  want="$source $(printf '%s' "$ROS_TOOLS" | sha256sum | cut -c1-16)"
  if [[ "$(cat "$stamp" 2>/dev/null)" == "$want" ]] \
      && "$VPY" -c 'import launch_ros, ros2launch, launch_testing_ros, vision_msgs.msg' 2>/dev/null; then
    step "ROS 2 tools already installed from $source"
    return
  fi
  step "installing ROS 2 tools (launch, launch_ros, ros2cli, launch_testing, vision_msgs) from $source"
  tmp="$(mktemp -d)"
  local name repo tag folder dir python_dirs=() interface_dirs=()
  while read -r name repo tag folder; do
    if [[ "$source" == official ]]; then
      dir="$tmp/repos/$(basename "$repo" .git)"
      [[ -d "$dir" ]] || git -c advice.detachedHead=false clone -q --depth 1 --branch "$tag" "$repo" "$dir" \
        || { echo "ERROR: cannot clone $repo at tag $tag (network?); or set IVLM_ROS_TOOLS_SOURCE to a folder" >&2; exit 1; }
      dir="$dir/$folder"
    else
      dir="$source/$name"
    fi
    [[ -f "$dir/package.xml" ]] || { echo "ERROR: $dir/package.xml not found ($name $tag)" >&2; exit 1; }
    grep -q "<version>$tag</version>" "$dir/package.xml" \
      || { echo "ERROR: $dir is not $name $tag (package.xml says $(grep -o '<version>[^<]*' "$dir/package.xml"))" >&2; exit 1; }
    if [[ " $ROS_TOOLS_INTERFACES " == *" $name "* ]]; then
      interface_dirs+=("$dir")
    else  # pip builds in-tree (build/, *.egg-info): from a scratch copy, never in the source location
      cp -r "$dir" "$tmp/$name"; python_dirs+=("$tmp/$name")
    fi
  done <<< "$ROS_TOOLS"
  # shellcheck disable=SC2086
  "$VPY" -m pip install -q -c "$LOCK" $ROS_TOOLS_PINS 2>&1 | grep -v 'is ignored' || true
  "$VPY" -m pip install -q --no-deps --no-build-isolation "${python_dirs[@]}" 2>&1 | grep -v 'is ignored' || true
  "$VENV/bin/ros2-venv-build" "${interface_dirs[@]}" > "$STATE/ros_tools_build.log" 2>&1 \
    || { tail -40 "$STATE/ros_tools_build.log"; echo "ERROR: interface build failed, see $STATE/ros_tools_build.log" >&2; exit 1; }
  rm -rf "$tmp"
  (cd "$STATE" && env -u AMENT_PREFIX_PATH -u LD_LIBRARY_PATH -u PYTHONPATH "$VPY" - <<'PY'
import launch_ros.actions, launch_testing_ros, ros2launch  # noqa: F401
from rclpy.serialization import deserialize_message, serialize_message
from vision_msgs.msg import Detection3DArray
msg = Detection3DArray()
assert deserialize_message(serialize_message(msg), Detection3DArray) == msg
print('ROS 2 tools OK')
PY
  ) || { echo "ERROR: ROS 2 tools installed but do not import" >&2; exit 1; }
  env -u AMENT_PREFIX_PATH "$VENV/bin/ros2" pkg prefix ivlm_ros >/dev/null \
    || { echo "ERROR: 'ros2 pkg prefix ivlm_ros' fails" >&2; exit 1; }
  echo "$want" > "$stamp"
}
if [[ "${IVLM_ROS_TOOLS:-0}" == 1 ]]; then
  install_ros_tools
fi

# ------------------------------------------------------------------ 4. body-model cache
if [[ "${IVLM_SKIP_BODY_CACHE:-0}" != 1 ]]; then
  step "body model cache (anny: built once per machine, about 1-3 min; then reused)"
  (cd "$STATE" && "$VPY" -m ivlm_core.body.cache --prune)
fi

# ------------------------------------------------------------------ 5. smoke test
step "smoke test"
(cd "$STATE" && env -u AMENT_PREFIX_PATH -u LD_LIBRARY_PATH -u PYTHONPATH "$VPY" - <<'PY'
from rclpy.serialization import deserialize_message, serialize_message
from ivlm_ros.msg import Contact, ContactArray
msg = ContactArray(contacts=[Contact(object_label='cup', body_vertex_ids=[1, 2])])
assert deserialize_message(serialize_message(msg), ContactArray) == msg
import ivlm_core
print('ivlm_ros messages and ivlm_core OK')
PY
)
step "done ($(du -sh "$VENV" | cut -f1) in $VENV)"
