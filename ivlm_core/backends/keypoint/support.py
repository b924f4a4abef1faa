"""Which body parts bear the body's weight: the fitted 3D body, gravity and the person's posture.

A body at rest is held up by the surface under it at its lowest points along gravity: the feet of
a standing person, the buttocks and legs of one sitting on the ground, the back (or side, or front)
of one lying down, the knees, shins and toes of one kneeling. So a part rests on the support when
its lowest point is within a contact tolerance of the body's lowest point. Gravity is the camera's
image-down direction unless the caller knows better (a robot's camera tilt); a person standing
upright balances with their body axis along gravity, so for a standing person that axis is used,
which removes most of the error of a camera looking down or up. A part "is low" by the height of
its lower quarter, not its lowest vertex: a limb lying on the floor is low along its length, while
a shin standing on the foot only touches the floor through the foot. Extremities (head, hands,
feet) touch through a small patch (the back of the head, a heel, a palm): their lowest 5 %.

A sitting posture whose hips are held up and not above the feet (balance needs the centre of mass
over the base of support) is carried by a seat, detected or not; a crouch keeps the hips over the
feet.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ivlm_core.backends.keypoint.body_fit import BodyFit
from ivlm_core.backends.keypoint.evidence import angle_deg, smoothstep

IMAGE_DOWN = np.array([0.0, 1.0, 0.0])  # gravity of an upright camera, in its optical frame
REST_TOLERANCE_M = 0.08  # fit error and soft tissue: a part this close to the lowest point rests
STRIDE_M = 0.25  # the second foot of a standing person: lifted at most this much in a step
STANDING_TILT_DEG = 35.0  # torso up and legs down within this of vertical, legs straight: standing
STRAIGHT_KNEE_DEG = 35.0  # knee bend below which a leg counts as straight
LYING_TILT_DEG = 55.0  # torso further than this from vertical: lying
LOW_HIPS = 0.3  # hips below this fraction of the body's height above the floor: sitting on it
LOW_QUANTILE = 25  # percent of a limb's or the trunk's vertices that must be low for it to lie on the support
EXTREMITY_QUANTILE = 5  # the same for the head, hands and feet, which touch through a small patch
BALANCE_M = 0.2  # hips further than this (horizontally) from the feet cannot balance without a seat


@dataclass
class BodySupport:
    """The parts that bear the body's weight, with a score in [0, 1] each, and the posture seen."""

    parts: dict[str, float]
    posture: str  # standing, sitting, lying, kneeling or crouching
    gravity: np.ndarray  # (3,) unit vector, camera frame, the one the parts were found with
    hip_height_m: float  # hips above the lowest point of the body, along gravity
    hips_off_feet_m: float  # horizontal distance from the hips to the middle of the feet

    @property
    def evidence(self) -> str:
        resting = ", ".join(
            f"{p} {s:.2f}" for p, s in sorted(self.parts.items(), key=lambda kv: -kv[1]) if s > 0.1
        )
        return (
            f"support:{self.posture}, hips {self.hip_height_m:.2f} m up and {self.hips_off_feet_m:.2f} m off "
            f"the feet, resting on [{resting}]"
        )

    @property
    def needs_seat(self) -> bool:
        """Hips held up and away from the feet: no balance without something under the buttocks."""
        return self.posture not in ("sitting", "lying") and self.hips_off_feet_m > BALANCE_M


def _unit(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), 1e-9)


def _smoothstep_down(x: float, lo: float, hi: float) -> float:
    """1 below lo, 0 above hi, smooth between."""
    return 1.0 - smoothstep(x, lo, hi)


def body_support(
    fit: BodyFit, part_ids: dict[str, np.ndarray], gravity: np.ndarray = IMAGE_DOWN
) -> BodySupport:
    """The weight-bearing parts of a fitted body (part_ids: part name -> body-model vertex ids)."""
    kp = fit.keypoints
    hips = 0.5 * (kp["left_hip"] + kp["right_hip"])
    shoulders = 0.5 * (kp["left_shoulder"] + kp["right_shoulder"])
    ankles = 0.5 * (kp["left_ankle"] + kp["right_ankle"])
    g = _unit(np.asarray(gravity, np.float64))
    tilt = angle_deg(shoulders - hips, -g)
    knee_bend = max(
        angle_deg(kp[f"{s}_knee"] - kp[f"{s}_hip"], kp[f"{s}_ankle"] - kp[f"{s}_knee"])
        for s in ("left", "right")
    )
    legs = angle_deg(ankles - hips, g)  # a standing body has its legs under it
    standing = max(tilt, legs) < STANDING_TILT_DEG and knee_bend < STRAIGHT_KNEE_DEG
    if standing:  # balance: a standing body's axis is vertical
        g = _unit(ankles - shoulders)
    heights = -(fit.vertices.astype(np.float64) @ g)
    floor = float(np.percentile(heights, 0.2))
    top = float(np.percentile(heights, 99.8))
    hip_height = float(-(hips @ g) - floor)
    tolerance = REST_TOLERANCE_M * fit.scale
    parts: dict[str, float] = {}
    for part, ids in part_ids.items():
        if ids.size == 0:
            continue
        extremity = part == "head" or part.endswith(("_hand", "_foot"))
        low = float(np.percentile(heights[ids], EXTREMITY_QUANTILE if extremity else LOW_QUANTILE)) - floor
        if standing:  # the weight is on the feet; every other part hangs above them
            parts[part] = (
                _smoothstep_down(low, STRIDE_M * fit.scale, 1.5 * STRIDE_M * fit.scale)
                if part.endswith("_foot")
                else 0.0
            )
        else:
            parts[part] = _smoothstep_down(low, tolerance, 2 * tolerance)
    if standing:
        posture = "standing"
    elif tilt > LYING_TILT_DEG:
        posture = "lying"
    elif hip_height < LOW_HIPS * max(top - floor, 1e-3):
        posture = "sitting"
    elif max(parts.get("left_calf", 0.0), parts.get("right_calf", 0.0)) > 0.5:
        posture = "kneeling"
    else:
        posture = "crouching"
    feet = np.mean([kp[f"{s}_{k}"] for s in ("left", "right") for k in ("heel", "big_toe")], axis=0)
    offset = hips - feet
    offset = offset - (offset @ g) * g
    return BodySupport(parts, posture, g, hip_height, float(np.linalg.norm(offset)))
