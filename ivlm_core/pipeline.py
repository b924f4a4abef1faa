"""One stream's contact pipeline: label policy -> backend -> tracking and smoothing -> contact reports.

What a node (or any video consumer) loads once from its settings (ivlm_core.settings) and frees with
`close`; per frame it takes an RGB image, the camera and the checked detections. No ROS.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ivlm_core.backends import backend_options, create_backend
from ivlm_core.backends.base import PERSON_LABEL
from ivlm_core.contact_report import ContactReport, ReportConfig, contact_report
from ivlm_core.labels import LabelPolicy
from ivlm_core.objects import ObjectRegistry
from ivlm_core.settings import backend_kwargs
from ivlm_core.tracking import ContactTracker
from ivlm_core.types import CameraIntrinsics, ContactResult, Detection


@dataclass
class Estimate:
    """One frame's answer: a result, a stable person id and a report per (person, object) pair."""

    results: list[ContactResult]
    person_ids: list[int]
    reports: list[ContactReport]
    problems: list[str] = field(default_factory=list)  # dropped detections, labels without a mesh
    backend_ms: float = 0.0


class ContactPipeline:
    """The backend (models loaded here, once), the label policy, the tracker and the report settings."""

    def __init__(self, settings: dict[str, Any]) -> None:
        name = settings["backend"]
        self.backend = create_backend(name, **backend_kwargs(settings, backend_options(name)))
        try:
            registry = self.backend.objects or ObjectRegistry(settings["object_mesh_folder"] or None)
            self.labels = LabelPolicy(registry, settings["unknown_label_policy"])
            self.tracker = ContactTracker(settings["track_min_iou"], settings["track_max_missed"],
                                          settings["smoothing_alpha"])
            self.report = ReportConfig(settings["contact_threshold"], settings["grasp_clearance"])
        except Exception:
            self.close()
            raise

    def update(self, settings: dict[str, Any]) -> None:
        """Apply the live settings (thresholds, smoothing, tracking, label policy); checked first."""
        s = settings
        report = ReportConfig(s["contact_threshold"], s["grasp_clearance"])
        self.tracker.configure(s["track_min_iou"], s["track_max_missed"], s["smoothing_alpha"])
        self.report, self.labels.policy = report, s["unknown_label_policy"]

    def estimate(self, rgb: np.ndarray, camera: CameraIntrinsics, detections: list[Detection],
                 problems: list[str] | tuple[str, ...] = (), track: bool = True) -> Estimate:
        """Contact for every (person, object) pair of a frame. problems: what the detection check dropped.

        A frame left without any object because of problems raises ValueError (reported, not answered):
        an empty answer would read as "no contact". track: False for a single image (person ids are then
        the frame's person indices and the video's tracking state is untouched).
        """
        problems = list(problems)
        detections, unknown = self.labels.apply(detections)
        if unknown:
            problems.append(f"unknown object label(s) {unknown}: no size prior or mesh; add <label>.obj to "
                            f"object_mesh_folder, map ids with class_names, or set unknown_label_policy to "
                            f"'generic'")
        if problems and all(d.label == PERSON_LABEL for d in detections):
            raise ValueError("; ".join(problems) + " (no object left: frame not published, an empty "
                             "ContactArray would read as 'no contact')")
        t0 = time.perf_counter()
        results = self.backend.estimate(rgb, detections, camera)
        backend_ms = 1e3 * (time.perf_counter() - t0)
        person_ids = self.tracker.update(results, detections) if track else [r.person_index for r in results]
        reports = [contact_report(r, self.report) for r in results]
        return Estimate(results, person_ids, reports, problems, backend_ms)

    def close(self) -> None:
        """Free the backend's models (and cached GPU memory, when a backend used torch)."""
        self.backend.close()
        torch = sys.modules.get("torch")  # only if a backend imported it
        if torch is not None and torch.cuda.is_available():
            torch.cuda.empty_cache()
