"""Video: stable person and object ids across frames, and temporal smoothing of contact per pair.

The node keeps one `ContactTracker` per stream: it gives every person a stable id (the detector's
track id when it has one, else box overlap) and every object too (per label, the same way), so that
two cups without detector ids never share one smoothing state.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from ivlm_core.backends.base import PERSON_LABEL
from ivlm_core.geometry import box_iou
from ivlm_core.types import ContactResult, Detection

UNTRACKED = 0


@dataclass
class _Track:
    box: np.ndarray
    missed: int = 0


@dataclass
class PersonTracker:
    """Assigns stable ids to person boxes, by the detector's track id when it has one, else by IoU.

    A track survives `max_missed` frames without a match; boxes overlapping a track by less than
    `min_iou` start a new id. Ids start at 1 and are never reused within one stream; a person
    without a box gets `UNTRACKED` (0).
    """

    min_iou: float = 0.3
    max_missed: int = 15
    _tracks: dict[int, _Track] = field(default_factory=dict)
    _by_detector_id: dict[str, int] = field(default_factory=dict)
    _next_id: int = 0

    def _new(self, box: np.ndarray) -> int:
        self._next_id += 1
        self._tracks[self._next_id] = _Track(box)
        return self._next_id

    def update(self, boxes: list[np.ndarray | None], detector_ids: list[str] | None = None) -> list[int]:
        """One id per person of this frame (boxes: (4,) pixels, or None when the backend gave none).

        detector_ids: the detector's track id of each person, "" where it has none.
        """
        detector_ids = detector_ids or [""] * len(boxes)
        ids: list[int | None] = [None] * len(boxes)
        for i, det_id in enumerate(detector_ids):
            if det_id and boxes[i] is not None:
                track = self._by_detector_id.get(det_id)
                if track is None or track not in self._tracks:
                    track = self._by_detector_id[det_id] = self._new(boxes[i])
                ids[i] = track
        free_tracks = [t for t in self._tracks if t not in ids]
        todo = [i for i, b in enumerate(boxes) if ids[i] is None and b is not None]
        if free_tracks and todo:
            old_boxes = np.stack([self._tracks[t].box for t in free_tracks])
            iou = box_iou(np.stack([boxes[i] for i in todo]), old_boxes)
            for r, c in zip(*linear_sum_assignment(-iou), strict=True):
                if iou[r, c] >= self.min_iou:
                    ids[todo[r]] = free_tracks[c]
        for i, b in enumerate(boxes):
            if ids[i] is None:
                ids[i] = self._new(b) if b is not None else UNTRACKED
        for t, track in list(self._tracks.items()):
            if t in ids:
                track.box, track.missed = boxes[ids.index(t)], 0
            else:
                track.missed += 1
                if track.missed > self.max_missed:
                    del self._tracks[t]
        return [int(i) for i in ids]

    @property
    def size(self) -> int:
        """Tracks alive (seen within `max_missed` frames)."""
        return len(self._tracks)


@dataclass
class ContactSmoother:
    """Exponential moving average of per-vertex contact probabilities per (person id, object key).

    `alpha` is the weight of the newest frame: 1 turns smoothing off; 0.3 keeps ~3 frames of memory.
    Pairs unseen for `max_missed` frames are forgotten, so a returning pair starts fresh.
    """

    alpha: float = 1.0
    max_missed: int = 15
    _state: dict[tuple[int, str], tuple[np.ndarray, np.ndarray, int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha <= 1.0:
            raise ValueError(f"smoothing alpha must be in (0, 1], got {self.alpha}")

    def update(self, results: list[ContactResult], person_ids: list[int],
               object_keys: list[str] | None = None) -> list[ContactResult]:
        """Smooth `results` in place (body and object probabilities) and return them.

        object_keys: a stable key of each result's object (see ContactTracker); default its detector id
        or label.
        """
        seen = set()
        if object_keys is None:
            object_keys = [r.obj.id or r.obj.label for r in results]
        for result, pid, obj_key in zip(results, person_ids, object_keys, strict=True):
            key = (pid, obj_key)
            seen.add(key)
            body = np.asarray(result.body_probabilities, np.float32)
            obj = np.asarray(result.object_probabilities, np.float32)
            old = self._state.get(key)
            same_shape = old is not None and old[0].shape == body.shape and old[1].shape == obj.shape
            if self.alpha < 1.0 and same_shape:
                body = self.alpha * body + (1.0 - self.alpha) * old[0]
                obj = self.alpha * obj + (1.0 - self.alpha) * old[1]
            result.body_probabilities, result.object_probabilities = body, obj
            self._state[key] = (body, obj, 0)
        for key, (body, obj, missed) in list(self._state.items()):
            if key not in seen:
                if missed + 1 > self.max_missed:
                    del self._state[key]
                else:
                    self._state[key] = (body, obj, missed + 1)
        return results


@dataclass
class ContactTracker:
    """Stable person ids and per-pair smoothing for one video stream (plain data in, ids out).

    min_iou: box overlap that keeps an id across frames (people and objects) and that ties a result's
    person box to a person detection (for the detector's track id). max_missed: frames an id and its
    smoothing survive unseen. alpha: weight of the newest frame in the contact average (1 = off).
    """

    min_iou: float = 0.3
    max_missed: int = 15
    alpha: float = 1.0
    people: PersonTracker = field(init=False)
    smoother: ContactSmoother = field(init=False)
    _objects: dict[str, PersonTracker] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self.people = PersonTracker(self.min_iou, self.max_missed)
        self.smoother = ContactSmoother(self.alpha, self.max_missed)

    def reset(self) -> None:
        """Forget every id and smoothing state: the next frame starts a new stream (after a pause)."""
        self.__post_init__()
        self._objects.clear()

    def configure(self, min_iou: float, max_missed: int, alpha: float) -> None:
        """Change the settings live (ids and smoothing state are kept)."""
        ContactSmoother(alpha)  # validates
        self.min_iou, self.max_missed, self.alpha = min_iou, max_missed, alpha
        for tracker in (self.people, *self._objects.values()):
            tracker.min_iou, tracker.max_missed = min_iou, max_missed
        self.smoother.alpha, self.smoother.max_missed = alpha, max_missed

    def update(self, results: list[ContactResult], detections: list[Detection]) -> list[int]:
        """Person id of each result; smooths the results' probabilities in place, pair by pair."""
        person_ids = self._person_ids(results, detections)
        self.smoother.update(results, person_ids, self._object_keys(results))
        return person_ids

    def _person_ids(self, results: list[ContactResult], detections: list[Detection]) -> list[int]:
        people: dict[int, np.ndarray | None] = {}
        for r in results:
            people.setdefault(r.person_index, r.person_box)
        person_dets = [d for d in detections if d.label == PERSON_LABEL]
        det_ids = []
        for box in people.values():
            det_id = ""
            if box is not None and person_dets:
                iou = box_iou(np.asarray(box)[None], np.stack([d.box_xyxy for d in person_dets]))[0]
                if iou.max() >= self.min_iou:
                    det_id = person_dets[int(iou.argmax())].id
            det_ids.append(det_id)
        ids = dict(zip(people, self.people.update(list(people.values()), det_ids), strict=True))
        return [ids[r.person_index] for r in results]

    def _object_keys(self, results: list[ContactResult]) -> list[str]:
        """`label#id` of each result's object: its detector id, else its box tracked per label."""
        objects: dict[int, Detection] = {}
        for r in results:
            objects.setdefault(id(r.obj), r.obj)
        by_label: dict[str, list[Detection]] = {}
        for obj in objects.values():
            by_label.setdefault(obj.label, []).append(obj)
        key_of: dict[int, str] = {}
        for label, dets in by_label.items():
            tracker = self._objects.setdefault(label, PersonTracker(self.min_iou, self.max_missed))
            track_ids = tracker.update([d.box_xyxy for d in dets], [d.id for d in dets])
            for d, t in zip(dets, track_ids, strict=True):
                key_of[id(d)] = f"{label}#{t}"
        for label in set(self._objects) - set(by_label):  # unseen labels age too
            self._objects[label].update([])
            if not self._objects[label].size:
                del self._objects[label]
        return [key_of[id(r.obj)] for r in results]
