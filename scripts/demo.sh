#!/usr/bin/env bash
# Sets everything up (scripts/setup.sh), then runs the embedded CPU backend on a real photo:
# scikit-image's camera.png (a man filming with a camcorder on a tripod), object "camera".
#  1. the ROS 2 chain in one process (python -m ivlm_ros.demo): the player publishes the photo with
#     its detection and camera info, the lifecycle contact node answers with an ivlm_ros/ContactArray,
#     which is printed;
#  2. the same photo through the command line (python -m ivlm_core.cli), which writes ./ivlm_out/:
#     result.json, overlay.png (look at this first), body/object/scene GLB meshes.
#
#   bash scripts/demo.sh                                  # the photo above
#   bash scripts/demo.sh IMAGE --object LABEL X0,Y0,X1,Y1 [--person X0,Y0,X1,Y1] ...   # your own (step 2)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
export VENV

bash "$ROOT/scripts/setup.sh"

cd "$ROOT"
if [[ $# -eq 0 ]]; then
  echo "[demo] ROS 2 chain: player -> contact node -> ContactArray"
  "$VENV/bin/python" -m ivlm_ros.demo
  PHOTO="$("$VENV/bin/python" -c 'import os, skimage; print(os.path.join(os.path.dirname(skimage.__file__), "data", "camera.png"))')"
  set -- "$PHOTO" --object camera 245,135,335,245
fi
echo "[demo] contact on $1 (CPU backend)"
exec "$VENV/bin/python" -m ivlm_core.cli "$@" --out "${IVLM_OUT:-$ROOT/ivlm_out}"
