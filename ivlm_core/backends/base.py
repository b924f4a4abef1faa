"""The one interface every contact backend implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np

from ivlm_core.body import BodyModel
from ivlm_core.objects.registry import ObjectRegistry
from ivlm_core.types import CameraIntrinsics, ContactResult, Detection

PERSON_LABEL = "person"


class ContactBackend(ABC):
    """Estimates, for every person and every object detection in an image, the contact between them.

    Heavy objects (models, renderers, caches) load in the constructor, never per call.
    """

    name: str
    body: BodyModel  # the body model the results' vertex ids refer to (loaded once, in the constructor)
    # Where the backend takes object meshes from (label policy and markers ask it too), None if nowhere.
    objects: ObjectRegistry | None = None

    @abstractmethod
    def estimate(
        self,
        image: np.ndarray,
        detections: Sequence[Detection],
        camera: CameraIntrinsics | None = None,
    ) -> list[ContactResult]:
        """One result per (person, object) pair.

        image: (H, W, 3) uint8 RGB. detections: objects and people (label "person"); without person
        detections the backend finds people itself. camera: intrinsics, or None for a default
        field of view. Bad input raises ValueError; an image without people returns results with
        empty contact and a `reason`, never raises.
        """

    def close(self) -> None:  # noqa: B027 - optional hook, default does nothing
        """Free models and GPU memory (lifecycle cleanup)."""
