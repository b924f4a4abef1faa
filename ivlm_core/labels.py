"""Detector output -> checked Detections, and which object labels the pipeline can place.

One bad detection never costs the good ones beside it: each is checked on its own (box finite with a
positive size, a class id that names a label, a finite score) and dropped with the reason. Numeric
class ids index `class_names` (e.g. COCO's 80 names); a number without `class_names` is refused, since
it names no object. Labels without a mesh follow the unknown-label policy.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ivlm_core.backends.base import PERSON_LABEL
from ivlm_core.objects.registry import ObjectRegistry
from ivlm_core.types import Detection

POLICIES = ("error", "generic")


@dataclass
class RawDetection:
    """One detection as a detector message carries it, before any check."""

    class_id: str
    box_xyxy: Sequence[float]  # [x0, y0, x1, y1] pixels
    score: float = 1.0
    id: str = ""


@dataclass
class ParsedDetections:
    """The valid detections of one message, and one line per detection dropped (why, what to do)."""

    detections: list[Detection] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def label_of(class_id: str, class_names: Sequence[str] = ()) -> str:
    """Detector class id -> label; ValueError saying what to do when the id names no label."""
    text = class_id.strip()
    if not text:
        raise ValueError("empty class_id; the detector must name each detection's class")
    if text.isdigit() and not text.isascii():  # e.g. superscript digits: int() refuses them
        raise ValueError(f"class_id {class_id!r} has non-ASCII digits; publish plain digits 0-9 or a label")
    if text.isdigit():
        if not class_names:
            raise ValueError(f"class_id {text!r} is a number but the parameter class_names is empty; set "
                             f"class_names to the detector's labels (e.g. the 80 COCO names)")
        if int(text) >= len(class_names):
            raise ValueError(f"class_id {text} is beyond class_names ({len(class_names)} names); give the "
                             f"detector's full label list")
        return class_names[int(text)]
    return text


def parse_detections(raw: Iterable[RawDetection], class_names: Sequence[str] = ()) -> ParsedDetections:
    """Check each detection on its own: the good ones are kept, each bad one is dropped with the reason."""
    out = ParsedDetections()
    for k, r in enumerate(raw):
        try:
            label = label_of(r.class_id, class_names)
            score = float(r.score)
            if not np.isfinite(score):
                raise ValueError(f"score is {score}; give a finite confidence")
            out.detections.append(Detection(label, np.asarray(r.box_xyxy, np.float64), score, r.id))
        except ValueError as exc:
            name = f" '{r.id}'" if r.id else ""
            out.problems.append(f"detection {k}{name} ({r.class_id!r}) dropped: {exc}")
    return out


@dataclass
class LabelPolicy:
    """Which object labels have a mesh (user file or built-in) and what to do with the others.

    policy: "error" drops detections of labels without a mesh and reports them; "generic" keeps them
    (a generic box of their pixel size) and warns.
    """

    registry: ObjectRegistry
    policy: str = "error"
    _has_mesh: dict[str, bool] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ValueError(f"unknown_label_policy is {self.policy!r}; choose one of: {', '.join(POLICIES)}")

    def has_mesh(self, label: str) -> bool:
        if label not in self._has_mesh:
            self._has_mesh[label] = not self.registry.get(label).mesh_id.startswith("generic:")
        return self._has_mesh[label]

    def apply(self, detections: list[Detection]) -> tuple[list[Detection], list[str]]:
        """(detections to estimate, sorted labels without a mesh)."""
        objects = {d.label for d in detections if d.label != PERSON_LABEL}
        unknown = sorted(label for label in objects if not self.has_mesh(label))
        if unknown and self.policy == "error":
            detections = [d for d in detections if d.label not in unknown]
        return detections, unknown
