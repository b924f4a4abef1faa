#!/usr/bin/env bash
# Re-resolve requirements/ros.txt + requirements/python.txt in a scratch venv and write the exact
# closure to requirements/lock.txt. Run after changing a direct requirement; commit the result.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TMP="$(mktemp -d)"; trap 'rm -rf "$TMP"' EXIT
python3 -m venv "$TMP/venv"; PIP="$TMP/venv/bin/pip"
echo "[lock] resolving ROS 2 wheels"
"$PIP" install -q -r "$ROOT/requirements/ros.txt"
"$TMP/venv/bin/pip" freeze | grep '==' > "$TMP/ros_pins.txt"
echo "[lock] resolving Python dependencies (numpy held at the ROS 2 wheels' pin)"
grep -v '^mediapipe' "$ROOT/requirements/python.txt" > "$TMP/python.txt"
"$PIP" install -q -r "$TMP/python.txt" -c "$TMP/ros_pins.txt"
# mediapipe 0.10.21 declares numpy<2 and jax/opencv-contrib/sounddevice, none of which the
# solutions we use need: install it without its declared dependencies, plus the ones it imports.
"$PIP" install -q --no-deps "$(grep '^mediapipe' "$ROOT/requirements/python.txt" | cut -d' ' -f1)"
"$PIP" install -q -c "$TMP/ros_pins.txt" matplotlib attrs absl-py flatbuffers 'protobuf>=4.25.3,<5'
"$TMP/venv/bin/python" - "$ROOT/requirements/lock.txt" <<'PY'
import importlib.metadata as md, sys
pins = sorted({(d.metadata["Name"], d.version.split("+")[0]) for d in md.distributions()
               if (d.read_text("INSTALLER") or "").strip() == "pip" and d.metadata["Name"] != "pip"},
              key=lambda p: p[0].lower())
head = ("# Complete, exact closure of every Python package the venv needs, installed with --no-deps by\n"
        "# scripts/setup.sh. Regenerate with scripts/lock.sh after changing requirements/*.txt.\n")
open(sys.argv[1], "w").write(head + "".join(f"{n}=={v}\n" for n, v in pins))
print(f"[lock] wrote {len(pins)} pins to {sys.argv[1]}")
PY
