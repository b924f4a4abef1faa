"""Embedded CPU default backend: mediapipe pose, anny body fit, object-category contact priors."""

from ivlm_core.backends.keypoint.backend import KeypointBackend

__all__ = ["KeypointBackend"]
