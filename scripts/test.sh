#!/usr/bin/env bash
# Sets everything up (scripts/setup.sh) and runs the whole test suite: lint, then pytest.
# CI (.ci/run) calls exactly this. Extra arguments go to pytest (e.g. -k lift, -x).
#
# When the team's ../shared/ros2 is next to the checkout (development machines and CI), its
# install_launch_tools.sh adds `ros2 launch`, the ros2 CLI and vision_msgs to the venv, so the
# launch and Detection2DArray tests run for real; without it those tests are skipped.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
export VENV

bash "$ROOT/scripts/setup.sh"

LAUNCH_TOOLS="$ROOT/../shared/ros2/install_launch_tools.sh"
if [[ -f "$LAUNCH_TOOLS" ]]; then
  if "$VENV/bin/python" -c 'import launch_ros, ros2launch, vision_msgs.msg' 2>/dev/null; then
    echo "[test] ros2 launch tools already in the venv"
  else
    echo "[test] installing ros2 launch tools from $LAUNCH_TOOLS (about a minute)"
    bash "$LAUNCH_TOOLS" "$VENV"
  fi
fi

cd "$ROOT"
echo "[test] ruff check"
"$VENV/bin/ruff" check .
echo "[test] pytest"
exec "$VENV/bin/python" -m pytest "$@"
