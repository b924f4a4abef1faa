"""Whole keypoint backend on a 640x480 frame, warm, on the CPU: frames per second, p95 latency, stage split.

Usage: .venv/bin/python bench/cpu_backend.py [--frames 40] [--person-box]
The frame is skimage's camera.png scaled to 640 px wide and cropped to 640x480, with its "camera"
box. Without --person-box the backend runs as on a video stream (mediapipe tracking graph or the
last square window that found the person, warm-started fit). Last line: one JSON object with fps
(1000 / median ms), median_ms, p95_ms and the median of each stage in ms. Timings on a shared
machine are noisy: run it twice.
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

from ivlm_core.backends.keypoint import KeypointBackend
from ivlm_core.types import Detection

WARMUP = 5


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=40, help="timed frames (at least 30)")
    ap.add_argument("--person-box", action="store_true", help="give the person box (static pose per crop)")
    args = ap.parse_args()
    frames = max(30, args.frames)
    src = skimage.data.camera()
    s, top = 640 / src.shape[1], 40  # scale, rows cropped off the top after scaling
    image = cv2.resize(np.stack([src] * 3, -1), (640, 640), interpolation=cv2.INTER_AREA)[top : top + 480]
    dets = [Detection("camera", np.array([245 * s, 135 * s - top, 335 * s, 245 * s - top]))]
    if args.person_box:
        dets.insert(0, Detection("person", np.array([0.0, 60 * s - top, 340 * s, 480.0])))
    backend = KeypointBackend(video=not args.person_box)
    totals, stages = [], []
    for i in range(WARMUP + frames):
        t = time.perf_counter()
        results = backend.estimate(image, dets)
        dt = 1e3 * (time.perf_counter() - t)
        if i >= WARMUP:
            totals.append(dt)
            stages.append(backend.last_timings_ms)
    parts = sorted(results[0].body_parts)
    med = float(np.median(totals))
    split = {k: round(float(np.median([s[k] for s in stages])), 2) for k in stages[0] if k != "total"}
    print(f"frames {frames}, contact parts {parts}, torch threads {torch.get_num_threads()}")
    print(
        json.dumps(
            {
                "mode": "person_box" if args.person_box else "video",
                "frames": frames,
                "fps": round(1e3 / med, 2),
                "median_ms": round(med, 2),
                "p95_ms": round(float(np.percentile(totals, 95)), 2),
                "stages_ms": split,
            }
        )
    )
    backend.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
