"""What 3D placement adds to the keypoint backend on video: 640x480, 1 person, 2 objects in contact.

Usage: PYTHONPATH=. .venv/bin/python bench/reconstruct_overhead.py [--frames 40]
The frame is test/data/photos/woman_on_ledge_near_pigeons.jpg (a woman sitting on a ledge, her
handbag beside her) letterboxed to 640x480, with its person, bench and handbag boxes; it is fed as a
video stream (consecutive frames: warm-started fit and placement). Two backends, without and with
reconstruction, process the same frames alternately, so load on a shared machine hits both alike.
Last line: one JSON object; `reconstruct_overhead` = median with / median without - 1 (goal <= 0.3).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from skimage.io import imread

from ivlm_core.backends.keypoint import KeypointBackend
from ivlm_core.types import Detection

PHOTO = Path(__file__).resolve().parents[1] / "test/data/photos/woman_on_ledge_near_pigeons.jpg"
WARMUP = 5


def frame() -> tuple[np.ndarray, list[Detection]]:
    """The photo letterboxed from 640x426 to 640x480, and its boxes moved with it."""
    photo = imread(PHOTO)[..., :3]
    top = (480 - photo.shape[0]) // 2
    image = np.zeros((480, 640, 3), np.uint8)
    image[top : top + photo.shape[0]] = photo
    boxes = {"person": [150, 66, 306, 305], "bench": [0, 225, 640, 300], "handbag": [262, 178, 303, 232]}
    return image, [Detection(label, np.add(box, [0, top, 0, top])) for label, box in boxes.items()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=40, help="timed frames (at least 20)")
    frames = max(20, ap.parse_args().frames)
    image, dets = frame()
    backends = {flag: KeypointBackend(video=True, reconstruct=flag) for flag in (False, True)}
    times: dict[bool, list[float]] = {False: [], True: []}
    stages: list[dict[str, float]] = []
    try:
        for i in range(WARMUP + frames):
            for flag, backend in backends.items():
                start = time.perf_counter()
                results = backend.estimate(image, dets)
                if i >= WARMUP:
                    times[flag].append(1e3 * (time.perf_counter() - start))
                    if flag:
                        stages.append(backend.last_timings_ms)
    finally:
        for backend in backends.values():
            backend.close()
    placed = [(r.obj.label, r.reconstruction.ok) for r in results if r.reconstruction is not None]
    without, with_ = (float(np.median(times[flag])) for flag in (False, True))
    print(f"frames {frames}; pairs placed (label, ok): {placed}")
    print(json.dumps({
        "frames": frames,
        "median_ms_without": round(without, 1),
        "median_ms_with": round(with_, 1),
        "reconstruct_ms": round(float(np.median([s.get("reconstruct", 0.0) for s in stages])), 1),
        "pairs_placed": len(placed),
        "pairs_ok": sum(ok for _, ok in placed),
        "reconstruct_overhead": round(with_ / without - 1.0, 3),
    }))


if __name__ == "__main__":
    main()
