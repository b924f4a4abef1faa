"""Whole keypoint backend on a 640x480 frame, warm, on the CPU: frames per second, p95 latency, stage split.

Usage: .venv/bin/python bench/cpu_backend.py [--frames 40] [--person-box] [--no-binary]
The frame is skimage's camera.png scaled to 640 px wide and cropped to 640x480, with its "camera"
box. Without --person-box the backend runs as on a video stream (mediapipe tracking graph or the
last square window that found the person, warm-started fit). Binary (object-agnostic) contact is
on unless --no-binary. Last line: one JSON object with fps (1000 / median ms), median_ms, p95_ms,
the median of each stage in ms and ratio_to_pose: the median frame time over the median time of the
pose model (mediapipe) itself in the same frames (goal <= 2.0). Timings on a shared machine are
noisy: run it twice.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import cv2
import numpy as np
import skimage.data
import torch

from ivlm_core.backends import create_backend
from ivlm_core.types import Detection

WARMUP = 5


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=40, help="timed frames (at least 30)")
    ap.add_argument("--person-box", action="store_true", help="give the person box (static pose per crop)")
    ap.add_argument("--no-binary", action="store_true", help="without the object-agnostic contact")
    args = ap.parse_args()
    frames = max(30, args.frames)
    src = skimage.data.camera()
    s, top = 640 / src.shape[1], 40  # scale, rows cropped off the top after scaling
    image = cv2.resize(np.stack([src] * 3, -1), (640, 640), interpolation=cv2.INTER_AREA)[top : top + 480]
    dets = [Detection("camera", np.array([245 * s, 135 * s - top, 335 * s, 245 * s - top]))]
    if args.person_box:
        dets.insert(0, Detection("person", np.array([0.0, 60 * s - top, 340 * s, 480.0])))
    backend = create_backend("keypoint", video=not args.person_box, binary=not args.no_binary)
    totals, stages = [], []
    for i in range(WARMUP + frames):
        t = time.perf_counter()
        results = backend.estimate(image, dets)
        dt = 1e3 * (time.perf_counter() - t)
        if i >= WARMUP:
            totals.append(dt)
            stages.append(backend.last_timings_ms)
    parts = [sorted(r.body_parts) for r in results]
    med = float(np.median(totals))
    pose_ms = float(np.median([s["pose"] for s in stages]))
    split = {k: round(float(np.median([s[k] for s in stages])), 2) for k in stages[0] if k != "total"}
    print(f"frames {frames}, contact parts {parts}, torch threads {torch.get_num_threads()}")
    print(
        json.dumps(
            {
                "mode": "person_box" if args.person_box else "video",
                "binary": not args.no_binary,
                "frames": frames,
                "fps": round(1e3 / med, 2),
                "median_ms": round(med, 2),
                "p95_ms": round(float(np.percentile(totals, 95)), 2),
                "stages_ms": split,
                "ratio_to_pose": round(med / max(pose_ms, 1e-6), 2),
            }
        )
    )
    backend.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
