"""Detector output -> checked Detections, and which object labels the pipeline can place.

One bad detection never costs the good ones beside it: each is checked on its own (box finite with a
positive size, a class id that names a label, a finite score) and dropped with the reason. Numeric
class ids index `class_names` (e.g. COCO's 80 names); a number without `class_names` is refused, since
it names no object. Labels without a mesh follow the unknown-label policy.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

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
        except (ValueError, TypeError) as exc:  # TypeError: a box or score of the wrong kind (YAML)
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


def load_labels(path: str) -> dict[str, list[Detection]]:
    """labels.json (list of {file, pairs: [{object, box_xyxy, person_box_xyxy}]}) -> detections per file.

    Each distinct person box becomes a "person" detection (id "person<k>"); each pair's object box an
    object detection (id "object<k>").
    """
    entries = json.loads(Path(path).expanduser().read_text())
    if not isinstance(entries, list):
        raise ValueError(f"labels file {path} must hold a list of {{file, pairs}} entries")
    out = {}
    for entry in entries:
        people: list[tuple[float, ...]] = []
        objects: list[tuple[str, tuple[float, ...]]] = []
        for pair in entry.get("pairs", []):
            if "person_box_xyxy" in pair and tuple(pair["person_box_xyxy"]) not in people:
                people.append(tuple(pair["person_box_xyxy"]))
            if (pair["object"], tuple(pair["box_xyxy"])) not in objects:
                objects.append((pair["object"], tuple(pair["box_xyxy"])))
        dets = [Detection("person", np.array(b), 1.0, id=f"person{k}") for k, b in enumerate(people)]
        dets += [Detection(label, np.array(b), 1.0, id=f"object{k}") for k, (label, b) in enumerate(objects)]
        out[entry["file"]] = dets
    return out
