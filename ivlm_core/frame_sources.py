"""Where demo and test frames come from: image files, folders of images, videos, skimage's photos.

The player (ivlm_ros.player) publishes these like a camera driver; the detections that go with them
come from a labels file (ivlm_core.labels.load_labels) or a YAML list (`detections_from_yaml`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import yaml

from ivlm_core.labels import RawDetection, parse_detections
from ivlm_core.types import Detection

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v"}
BUILTIN = ("skimage:camera", "skimage:astronaut")


@dataclass
class Frame:
    name: str  # file name (labels are looked up by it) or "<video>#<index>"
    rgb: np.ndarray  # (H, W, 3) uint8


def _read(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"cannot read image {path}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def load_stills(source: str) -> list[Frame]:
    """The frames of an image file, a folder of images (sorted by name) or a built-in skimage photo."""
    if source in BUILTIN:
        import skimage.data

        rgb = getattr(skimage.data, source.split(":")[1])()
        return [Frame(source, np.ascontiguousarray(np.dstack([rgb] * 3) if rgb.ndim == 2 else rgb[:, :, :3]))]
    path = Path(source).expanduser()
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise ValueError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in folder {path}")
        return [Frame(p.name, _read(p)) for p in files]
    if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
        return [Frame(path.name, _read(path))]
    raise ValueError(f"player source {source!r} is not an image, a folder of images, a video "
                     f"({', '.join(sorted(VIDEO_SUFFIXES))}) or one of {BUILTIN}")


def video_frames(path: Path) -> Iterator[Frame]:
    """Frames of a video file, decoded one at a time (OpenCV)."""
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise ValueError(f"cannot open video {path}")
    try:
        index = 0
        while True:
            ok, bgr = cap.read()
            if not ok:
                return
            yield Frame(f"{path.name}#{index}", cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            index += 1
    finally:
        cap.release()


def detections_from_yaml(text: str) -> list[Detection]:
    """'[{label: cup, box: [x0, y0, x1, y1], score: 0.9, id: a}, ...]' (YAML) -> detections.

    A configuration: every item is checked as a detector's would be (labels.parse_detections), and any
    bad one refuses the whole list with each item's reason, rather than playing a part of it.
    """
    items = yaml.safe_load(text) if text.strip() else []
    if not isinstance(items, list):
        raise ValueError(f"detections must be a YAML list of {{label, box}} mappings, got {text!r}")
    malformed = [f"detection {k} needs 'label' and 'box' [x0, y0, x1, y1], got {d!r}"
                 for k, d in enumerate(items) if not (isinstance(d, dict) and "label" in d and "box" in d)]
    if malformed:
        raise ValueError("; ".join(malformed))
    parsed = parse_detections(RawDetection(str(d["label"]), d["box"], d.get("score", 1.0),
                                           str(d.get("id", ""))) for d in items)
    if parsed.problems:
        raise ValueError("; ".join(parsed.problems))
    return parsed.detections
