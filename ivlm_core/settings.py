"""The contact node's settings: names, defaults, ranges, which may change live, and their checks.

Plain data and functions, so every check runs without ROS: a value outside its range, of the wrong
type (an int is accepted where a float is meant) or not among its choices is refused with a message
naming the setting, the value and what to do; names that are no setting get the nearest one.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import yaml

from ivlm_core.contact_report import ReportConfig
from ivlm_core.objects.registry import MAX_USER_FACES
from ivlm_core.reconstruct import ReconstructConfig

NOT_LIVE = ("is read at configure (it loads models, meshes, subscriptions or timers): set it while the node "
            "is unconfigured, or deactivate, cleanup, set it and configure again")


@dataclass(frozen=True)
class Setting:
    """One setting: default (its type is the setting's), description, range (lo, hi) or choices."""

    default: Any
    description: str
    limits: tuple[Any, ...] | None = None
    live: bool = False  # may change while the node runs

    def describe(self) -> str:
        """The description with its range or choices and whether it may change live."""
        text = self.description
        if self.limits and isinstance(self.limits[0], str):
            text += f" (one of: {', '.join(self.limits)})"
        elif self.limits:
            text += f" [{self.limits[0]}, {self.limits[1]}]"
        return text + (" (live)" if self.live else " (read at configure)")

    def check(self, name: str, value: Any) -> Any:
        """`value` as this setting's type; ValueError saying what is wrong and what to do."""
        d = self.default
        if isinstance(value, bool) and isinstance(d, str) and set(self.limits or ()) >= {"true", "false"}:
            value = "true" if value else "false"  # a tri-state (auto/true/false) set with a YAML boolean
        if isinstance(d, list) and d and isinstance(d[0], float):  # a vector: (len(d),) finite numbers
            ok = isinstance(value, list | tuple) and len(value) == len(d)
            ok = ok and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
            if not ok or not all(math.isfinite(v) for v in value) or not any(value):
                raise ValueError(f"parameter {name} = {value!r} must be {len(d)} finite numbers, not all "
                                 f"zero; {self.description}")
            return [float(v) for v in value]
        if isinstance(d, list):
            value = [] if value is None else value  # `[]` in a params file has no type: no names
            if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
                raise ValueError(f"parameter {name} = {value!r} must be a list of strings")
            return [v for v in value if v]
        if isinstance(d, bool) != isinstance(value, bool):
            kind = "true or false" if isinstance(d, bool) else "a number"
            raise ValueError(f"parameter {name} = {value!r} must be {kind}")
        if isinstance(d, str):
            if not isinstance(value, str):
                raise ValueError(f"parameter {name} = {value!r} must be a string")
            if self.limits and value not in self.limits:
                raise ValueError(f"parameter {name} is {value!r}; choose one of: {', '.join(self.limits)}")
            return value
        if isinstance(d, bool):
            return value
        if not isinstance(value, int | float):
            raise ValueError(f"parameter {name} = {value!r} must be a number")
        if isinstance(d, int) and value != int(value):
            raise ValueError(f"parameter {name} = {value!r} must be a whole number")
        value = int(value) if isinstance(d, int) else float(value)
        if not math.isfinite(value):
            raise ValueError(f"parameter {name} = {value!r} must be finite")
        if self.limits and not self.limits[0] <= value <= self.limits[1]:
            raise ValueError(f"parameter {name} = {value} is outside [{self.limits[0]}, {self.limits[1]}]; "
                             f"{self.description}")
        return value


SETTINGS: dict[str, Setting] = {
    "backend": Setting("keypoint", "contact estimator", ("keypoint", "interactvlm")),
    "backend_options": Setting("", "extra backend constructor options, a YAML mapping ('{checkpoint: /x}')"),
    "device": Setting("cpu", "torch device for the backend: cpu, cuda, cuda:1"),
    "body_model": Setting("auto", "body model the vertex ids refer to; auto = the backend's own (keypoint: "
                          "anny; interactvlm: the body its checkpoint was trained on)",
                          ("auto", "anny", "smpl", "smplh", "smplx")),
    "body_model_path": Setting("", "folder with SMPL-family model files (not needed for anny)"),
    "object_mesh_folder": Setting("", "user object meshes named after labels ('' = built-in shapes only)"),
    "max_user_faces": Setting(MAX_USER_FACES, "user object meshes with more faces are decimated to this "
                              "budget once, at configure (placement and messages stay fast)", (4, 1_000_000)),
    "video": Setting(True, "frames are consecutive (a backend that tracks reuses the previous fit)"),
    "reconstruct": Setting("auto", "place each object in contact against the body in 3D (pose, object "
                           "contact points, grasp points, Detection3DArray, object marker); auto = on for "
                           "backends that fit the body in the camera frame (keypoint: ~7 ms a pair on "
                           "video), off for those that cannot (interactvlm); true or false to choose",
                           ("auto", "true", "false")),
    "binary_contact": Setting(False, "also answer, per person, which body parts touch anything (ground, "
                              "seat, wall, objects): one extra Contact with object_label 'any' and no object "
                              "mesh (InteractVLM's hcontact mode)"),
    "gravity": Setting([0.0, 1.0, 0.0], "direction of gravity in the camera's optical frame (x right, y "
                       "down, z forward); the default is image-down, set it when the camera's tilt is known",
                       live=False),
    "grasp_clearance": Setting(ReportConfig.grasp_clearance_m, "metres kept between published grasp points "
                               "and every body or object contact point", (0.0, 0.5), live=True),
    "contact_threshold": Setting(ReportConfig.contact_threshold, "vertex contact probability threshold",
                                 (0.01, 1.0), live=True),
    "max_rate_hz": Setting(10.0, "most images processed per second (0 = as fast as the backend runs)",
                           (0.0, 120.0), live=True),
    "use_compressed": Setting(False, "subscribe to sensor_msgs/CompressedImage on 'image/compressed'"),
    "use_detections": Setting(True, "pair images with detections; false: the backend finds people alone"),
    "detections_type": Setting("auto", "detections message: auto = vision_msgs/Detection2DArray when "
                               "installed, else ivlm_ros/ObjectDetectionArray",
                               ("auto", "vision_msgs", "ivlm")),
    "class_names": Setting([""], "label of each numeric detector class id, e.g. the 80 COCO names "
                           "([''] or [] = class ids are labels)", live=True),
    "unknown_label_policy": Setting("error", "labels without an object model: error = skip them and report, "
                                    "generic = use a generic box and warn", ("error", "generic"), live=True),
    "pairing_tolerance_s": Setting(0.05, "largest image/detections stamp difference that pairs them",
                                   (0.0, 1.0), live=True),
    "detection_wait_s": Setting(1.0, "most time an image waits for its detections (the wait adapts to the "
                                "detector's measured delay below this); then it is skipped and reported",
                                (0.0, 10.0), live=True),
    "default_fov_deg": Setting(60.0, "horizontal field of view used until a CameraInfo arrives",
                               (10.0, 170.0), live=True),
    "smoothing_alpha": Setting(0.6, "weight of the newest frame in the per-pair contact average "
                               "(1 = no smoothing)", (0.01, 1.0), live=True),
    "track_min_iou": Setting(0.3, "box overlap that keeps a person or object id across frames", (0.0, 1.0),
                             live=True),
    "track_max_missed": Setting(15, "frames an id (and its smoothing) survives unseen", (0, 1000), live=True),
    "publish_markers": Setting(True, "publish RViz markers (only while someone subscribes)"),
    "marker_rate_hz": Setting(2.0, "most marker arrays per second", (0.1, 60.0), live=True),
    "marker_max_triangles": Setting(2000, "triangle budget of each body and object mesh marker",
                                    (100, 100000)),
    "diagnostics_period_s": Setting(1.0, "period of /diagnostics", (0.1, 60.0)),
}


def check_settings(specs: dict[str, Setting], values: dict[str, Any]) -> dict[str, Any]:
    """Every setting checked (see Setting.check); backend_options parsed into a mapping."""
    out = {name: spec.check(name, values.get(name, spec.default)) for name, spec in specs.items()}
    if "backend_options" in out:
        text = out["backend_options"]
        options = yaml.safe_load(text) if text.strip() else {}
        if not isinstance(options, dict):
            raise ValueError(f"parameter backend_options must be a YAML mapping, got {text!r}")
        out["backend_options"] = options
    return out


def check_changes(specs: dict[str, Setting], changes: dict[str, Any], configured: bool) -> dict[str, Any]:
    """Checked values of a live change (`ros2 param set`); a setting that is not live refuses while
    configured."""
    for name in changes:
        if configured and name in specs and not specs[name].live:
            raise ValueError(f"parameter {name} {NOT_LIVE}")
    return {name: specs[name].check(name, value) for name, value in changes.items() if name in specs}


def unknown_names(names: Iterable[str], specs: dict[str, Setting]) -> list[str]:
    """One warning per name that is no setting, with the nearest setting's name."""
    warnings = []
    for name in sorted(set(names) - set(specs)):
        near = difflib.get_close_matches(name, specs, n=1, cutoff=0.6)
        hint = f"; did you mean '{near[0]}'?" if near else ""
        warnings.append(f"parameter '{name}' is not a parameter of this node and is ignored{hint}")
    return warnings


# Backend options the node passes from its own settings; "hints" a backend may ignore without harm.
BACKEND_SETTINGS = ("device", "body_model", "body_model_path", "object_mesh_folder", "reconstruct",
                    "binary_contact", "max_user_faces")
BACKEND_HINTS = ("video", "default_fov_deg", "gravity")  # the node supplies the camera itself
OPTION_NAMES = {"binary_contact": "binary"}  # setting -> backend option, where the names differ


def backend_kwargs(values: dict[str, Any], accepted: set[str]) -> dict[str, Any]:
    """Constructor options of the backend from the settings; ValueError for a setting it cannot honour.

    "auto" (body_model, reconstruct) leaves the choice to the backend, except that reconstruct is on for
    every backend that can place objects (the 3D pose and grasp points are what planners need).
    """
    options = {}
    for name in BACKEND_SETTINGS + BACKEND_HINTS:
        option, value = OPTION_NAMES.get(name, name), values[name]
        if name == "reconstruct":
            value = {"auto": option in accepted or "auto", "true": True, "false": False}[value]
        if value in ("", "auto"):
            continue
        if option in accepted:
            options[option] = value
        elif name in BACKEND_SETTINGS and value is not False and values[name] != SETTINGS[name].default:
            raise ValueError(f"parameter {name} = {values[name]!r}: the '{values['backend']}' backend cannot "
                             f"honour it (it accepts {', '.join(sorted(accepted))}); unset it or choose "
                             f"another backend")
    if "reconstruct_config" in accepted:  # the node's threshold and clearance reach the reconstruction
        options["reconstruct_config"] = ReconstructConfig(contact_threshold=values["contact_threshold"],
                                                          grasp_clearance_m=values["grasp_clearance"])
    options.update(values["backend_options"])
    return options
