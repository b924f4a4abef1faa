"""The colours every view of a result shares (RViz markers, GLB scenes, CLI overlays and meshes).

Contact is a ramp from a neutral colour (grey on the body) to InteractVLM's contact red with the
vertex's probability; grasp candidates are green. RGB in [0, 1]; `rgba8` converts for files.
"""

from __future__ import annotations

import numpy as np

NO_CONTACT_RGB = np.array([200, 200, 200], np.float32) / 255  # body surface away from any contact
CONTACT_RGB = np.array([255, 38, 25], np.float32) / 255  # InteractVLM's contact red
OBJECT_RGB = np.array([255, 230, 77], np.float32) / 255  # object, no contact: InteractVLM's overlay yellow
GRASP_RGB = np.array([40, 200, 60], np.float32) / 255  # grasp candidates, clear of the person


def contact_rgb(probabilities: np.ndarray, base: np.ndarray = NO_CONTACT_RGB) -> np.ndarray:
    """(N,) contact probabilities -> (N, 3) float32 RGB in [0, 1]: `base` at 0, `CONTACT_RGB` at 1.

    Probabilities outside [0, 1] are clipped.
    """
    p = np.clip(np.asarray(probabilities, np.float32).reshape(-1, 1), 0.0, 1.0)
    return (1.0 - p) * np.asarray(base, np.float32) + p * CONTACT_RGB


def rgba8(rgb: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    """(N, 3) RGB in [0, 1] -> (N, 4) uint8 RGBA (rounded), for mesh files and images."""
    rgb = np.atleast_2d(np.asarray(rgb, np.float32))
    a = np.full((len(rgb), 1), alpha, np.float32)
    return np.round(np.clip(np.hstack([rgb, a]), 0.0, 1.0) * 255).astype(np.uint8)
