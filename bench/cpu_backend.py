"""Whole keypoint backend on a 640x480 frame, warm, on the CPU: frames per second, p95 latency, stage split.

Usage: PYTHONPATH=. .venv/bin/python bench/cpu_backend.py [--frames 40] [--person-box] [--no-binary]
The frame is skimage's camera.png scaled to 640 px wide and cropped to 640x480, with its "camera"
box. Without --person-box the backend runs as on a video stream (mediapipe tracking graph or the
last square window that found the person, warm-started fit). Binary (object-agnostic) contact is
on unless --no-binary. Last line: one JSON object with fps (1000 / median ms), median_ms, p95_ms,
the median of each stage in ms and ratio_to_pose: the median frame time over the median time of the
pose model (mediapipe) itself in the same frames (goal <= 2.0), and reconstruct_overhead: what 3D
placement adds on video (640x480, 1 person, 2 objects in contact: test/data/photos' woman on a ledge
with her handbag, letterboxed), median with / median without - 1 (goal <= 0.3); two backends, with and
without placement, process the same frames alternately so load on a shared machine hits both alike.
Timings on a shared machine are noisy: run it twice.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import skimage.data
import torch

from ivlm_core.backends import create_backend
from ivlm_core.types import Detection

WARMUP = 5
LEDGE = Path(__file__).resolve().parents[1] / "test/data/photos/woman_on_ledge_near_pigeons.jpg"


def ledge_frame() -> tuple[np.ndarray, list[Detection]]:
    """The woman on the ledge letterboxed from 640x426 to 640x480, with person, bench and handbag boxes."""
    photo = cv2.cvtColor(cv2.imread(str(LEDGE)), cv2.COLOR_BGR2RGB)
    top = (480 - photo.shape[0]) // 2
    image = np.zeros((480, 640, 3), np.uint8)
    image[top : top + photo.shape[0]] = photo
    boxes = {"person": [150, 66, 306, 305], "bench": [0, 225, 640, 300], "handbag": [262, 178, 303, 232]}
    return image, [Detection(label, np.add(box, [0, top, 0, top])) for label, box in boxes.items()]


def reconstruct_overhead(frames: int) -> dict[str, float]:
    """Median frame time on video with and without 3D placement, measured alternately in one run."""
    image, dets = ledge_frame()
    backends = {flag: create_backend("keypoint", video=True, reconstruct=flag) for flag in (False, True)}
    times: dict[bool, list[float]] = {False: [], True: []}
    placing: list[float] = []
    try:
        for i in range(WARMUP + frames):
            for flag, backend in backends.items():
                start = time.perf_counter()
                results = backend.estimate(image, dets)
                if i >= WARMUP:
                    times[flag].append(1e3 * (time.perf_counter() - start))
                    if flag:
                        placing.append(backend.last_timings_ms.get("reconstruct", 0.0))
    finally:
        for backend in backends.values():
            backend.close()
    placed = [r.reconstruction.ok for r in results if r.reconstruction is not None]
    without, with_ = (float(np.median(times[flag])) for flag in (False, True))
    return {"median_ms_without_3d": round(without, 1), "median_ms_with_3d": round(with_, 1),
            "reconstruct_ms": round(float(np.median(placing)), 1), "pairs_placed": len(placed),
            "pairs_ok": int(sum(placed)), "reconstruct_overhead": round(with_ / without - 1.0, 3)}


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
    backend.close()
    print(f"frames {frames}, contact parts {parts}, torch threads {torch.get_num_threads()}")
    placement = reconstruct_overhead(frames)
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
                **placement,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
