#!/usr/bin/env bash
# Sets everything up (scripts/setup.sh) and runs the whole test suite: lint, then pytest.
# CI (.ci/run) calls exactly this. Extra arguments go to pytest (e.g. -k lift, -x).
#
# When the team's ../shared/ros2/vendor (a mirror of the Kilted release sources) is next to the
# checkout (development machines and CI), set-up runs its opt-in ROS 2 tools step from there
# (IVLM_ROS_TOOLS_SOURCE: the same code path a user runs against the official repositories), so the
# launch, service-client and vision_msgs tests run for real; without it those tests are skipped.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
export VENV

ROS_TOOLS_MIRROR="$ROOT/../shared/ros2/vendor"
if [[ -d "$ROS_TOOLS_MIRROR" ]]; then
  IVLM_ROS_TOOLS=1 IVLM_ROS_TOOLS_SOURCE="$(cd "$ROS_TOOLS_MIRROR" && pwd)" bash "$ROOT/scripts/setup.sh"
else
  bash "$ROOT/scripts/setup.sh"
fi

cd "$ROOT"
echo "[test] ruff check"
"$VENV/bin/ruff" check .
echo "[test] pytest"
exec "$VENV/bin/python" -m pytest "$@"
