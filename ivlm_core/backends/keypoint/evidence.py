"""Image evidence for contact: 2D part-to-object proximity, seated pose, foot support, depth agreement.

Every score is in [0, 1]. Distances are normalised by the person's body length in pixels so the same
rule works for a child filling the frame and for a small figure far away.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ivlm_core.backends.keypoint import landmarks as lm
from ivlm_core.backends.keypoint.landmarks import PersonPose
from ivlm_core.types import CameraIntrinsics

NEAR_SIGMA = 0.04  # point-to-object tolerance, fraction of body length (~7 cm on an adult)
SEAT_SIGMA = 0.08  # hips-to-seat tolerance: seats are wide and their boxes loose
SEATED_FLEXION_DEG = (
    20.0,
    45.0,
)  # hip flexion mapped to a seated score of 0 .. 1 (mediapipe 3D under-reads it)
FORESHORTENED_RATIO = (0.25, 0.4)  # thigh/torso image-length ratio mapped to a seated score of 1 .. 0
FORESHORTENED_KNEE_VISIBILITY = 0.3  # knees below this mean visibility count as hidden
DEPTH_TOLERANCE = np.log(2.5)  # object/person depth ratio accepted without penalty (size priors are rough)
DEPTH_SIGMA = 0.5  # log-ratio fall-off beyond the tolerance
OFF_GROUND = (0.15, 0.3)  # lower ankle's height above the object box's bottom (box heights): carried 0 .. 1
LIFTED_FLEXION_DEG = (60.0, 90.0)  # elbow flexion mapped to a folded-arm score of 0 .. 1
LIFTED_RISE = (0.0, 0.3)  # sine of the forearm's rise above the horizontal (wrist over elbow): 0 .. 1
OUT_OF_FRAME_WEIGHT = 0.5  # landmarks outside the image are guesses: they count half
EXTREMITIES = ("left_hand", "right_hand", "left_foot", "right_foot", "head")


def _segment(a: np.ndarray, b: np.ndarray, n: int = 5, t0: float = 0.0, t1: float = 1.0) -> np.ndarray:
    t = np.linspace(t0, t1, n, dtype=np.float32)[:, None]
    return a[None] * (1 - t) + b[None] * t


def part_points(kp: np.ndarray) -> dict[str, np.ndarray]:
    """Sample points (N, 2) per named body part from mediapipe landmarks kp: (33, 2), any units."""
    sh_l, sh_r, hip_l, hip_r = kp[lm.LEFT_SHOULDER], kp[lm.RIGHT_SHOULDER], kp[lm.LEFT_HIP], kp[lm.RIGHT_HIP]
    sh_c, hip_c = 0.5 * (sh_l + sh_r), 0.5 * (hip_l + hip_r)
    mouth = 0.5 * (kp[lm.MOUTH_LEFT] + kp[lm.MOUTH_RIGHT])
    u = np.linspace(0.0, 1.0, 3, dtype=np.float32)
    top = sh_l[None] * (1 - u[:, None]) + sh_r[None] * u[:, None]
    bottom = hip_l[None] * (1 - u[:, None]) + hip_r[None] * u[:, None]
    torso = np.concatenate([_segment(t, b, 4) for t, b in zip(top, bottom, strict=True)])
    pts = {
        "head": kp[0:11],
        "neck": _segment(mouth, sh_c, 3, 0.4, 0.8),
        "torso_front": torso,
        "torso_back": torso,
        "hips": np.stack([hip_l, hip_r, hip_c]),
        "buttocks": np.concatenate(
            [
                _segment(hip_l, hip_r, 3),
                _segment(hip_c, 0.5 * (kp[lm.LEFT_KNEE] + kp[lm.RIGHT_KNEE]), 2, 0.1, 0.2),
            ]
        ),
    }
    for side, (s, e, w, pi, ix, th, h, k, a, he, fi) in {
        "left": (
            lm.LEFT_SHOULDER,
            lm.LEFT_ELBOW,
            lm.LEFT_WRIST,
            lm.LEFT_PINKY,
            lm.LEFT_INDEX,
            lm.LEFT_THUMB,
            lm.LEFT_HIP,
            lm.LEFT_KNEE,
            lm.LEFT_ANKLE,
            lm.LEFT_HEEL,
            lm.LEFT_FOOT_INDEX,
        ),
        "right": (
            lm.RIGHT_SHOULDER,
            lm.RIGHT_ELBOW,
            lm.RIGHT_WRIST,
            lm.RIGHT_PINKY,
            lm.RIGHT_INDEX,
            lm.RIGHT_THUMB,
            lm.RIGHT_HIP,
            lm.RIGHT_KNEE,
            lm.RIGHT_ANKLE,
            lm.RIGHT_HEEL,
            lm.RIGHT_FOOT_INDEX,
        ),
    }.items():
        knuckles = 0.5 * (kp[pi] + kp[ix])
        fingertips = kp[w] + 1.8 * (knuckles - kp[w])
        pts[f"{side}_upper_arm"] = _segment(kp[s], kp[e], 5, 0.15, 1.0)
        pts[f"{side}_forearm"] = _segment(kp[e], kp[w], 5)
        pts[f"{side}_hand"] = np.stack([kp[w], kp[pi], kp[ix], kp[th], knuckles, fingertips])
        pts[f"{side}_thigh"] = _segment(kp[h], kp[k], 5, 0.15, 1.0)
        pts[f"{side}_calf"] = _segment(kp[k], kp[a], 5)
        pts[f"{side}_foot"] = np.stack([kp[a], kp[he], kp[fi], 0.5 * (kp[he] + kp[fi])])
    return {k: np.asarray(v, np.float32) for k, v in pts.items()}


@dataclass
class ObjectRegion:
    """Where the object is in the image: its box and, when the detector gave one, its mask."""

    box_xyxy: np.ndarray  # (4,) pixels
    image_size: tuple[int, int]  # (H, W) pixels
    mask_distance: np.ndarray | None = None  # (H, W) float32 pixels to the nearest mask pixel

    @classmethod
    def from_detection(
        cls, box_xyxy: np.ndarray, mask: np.ndarray | None, shape: tuple[int, int]
    ) -> ObjectRegion:
        if mask is None:
            return cls(np.asarray(box_xyxy, np.float64), shape)
        m = np.asarray(mask, bool)
        if m.shape != shape:
            raise ValueError(f"object mask shape {m.shape} does not match the image {shape}")
        if not m.any():
            return cls(np.asarray(box_xyxy, np.float64), shape)
        dist = cv2.distanceTransform((~m).astype(np.uint8), cv2.DIST_L2, 3)
        return cls(np.asarray(box_xyxy, np.float64), shape, dist)

    def top_half(self) -> ObjectRegion:
        """The upper half of the box (where a seat's or a table's top surface shows), without the mask."""
        x0, y0, x1, y1 = self.box_xyxy
        return ObjectRegion(np.array([x0, y0, x1, 0.5 * (y0 + y1)]), self.image_size)

    def distance(self, pts: np.ndarray) -> np.ndarray:
        """(N,) pixel distance from pts (N, 2) to the object (0 inside)."""
        x0, y0, x1, y1 = self.box_xyxy
        dx = np.maximum(np.maximum(x0 - pts[:, 0], pts[:, 0] - x1), 0.0)
        dy = np.maximum(np.maximum(y0 - pts[:, 1], pts[:, 1] - y1), 0.0)
        d_box = np.hypot(dx, dy)
        if self.mask_distance is None:
            return d_box
        h, w = self.mask_distance.shape
        xi = np.clip(np.round(pts[:, 0]).astype(int), 0, w - 1)
        yi = np.clip(np.round(pts[:, 1]).astype(int), 0, h - 1)
        return np.maximum(d_box, self.mask_distance[yi, xi])


def proximity(
    part: str, pts: np.ndarray, region: ObjectRegion, body_px: float, sigma: float = NEAR_SIGMA
) -> float:
    """How close a part is to the object: 1 inside, Gaussian fall-off outside.

    Extremities (hands, feet, head) count their closest point; limbs and torso the mean of their
    closer half, so a box grazing one end of a thigh is weak evidence. Points outside the image
    (mediapipe extrapolates hidden limbs) count OUT_OF_FRAME_WEIGHT.
    """
    d = region.distance(pts) / (sigma * body_px)
    h, w = region.image_size
    in_frame = (pts[:, 0] >= 0) & (pts[:, 0] < w) & (pts[:, 1] >= 0) & (pts[:, 1] < h)
    s = np.exp(-0.5 * d**2) * np.where(in_frame, 1.0, OUT_OF_FRAME_WEIGHT)
    if part in EXTREMITIES:
        return float(s.max())
    top = np.sort(s)[::-1][: max(1, len(s) // 2)]
    return float(top.mean())


def hip_flexion_deg(world: np.ndarray) -> float:
    """Mean hip flexion (0 standing, 90 sitting upright) from the metric 3D landmarks world: (33, 3)."""
    sh_c = 0.5 * (world[lm.LEFT_SHOULDER] + world[lm.RIGHT_SHOULDER])
    angles = []
    for hip, knee in ((lm.LEFT_HIP, lm.LEFT_KNEE), (lm.RIGHT_HIP, lm.RIGHT_KNEE)):
        a, b = sh_c - world[hip], world[knee] - world[hip]
        cos = float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-9))
        angles.append(180.0 - np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))))
    return float(np.mean(angles))


def smoothstep(x: float, lo: float, hi: float) -> float:
    """0 below lo, 1 above hi, smooth (cubic Hermite) between: how evidence grades a measured quantity."""
    t = float(np.clip((x - lo) / (hi - lo), 0.0, 1.0))
    return t * t * (3 - 2 * t)


def angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    """Angle between two vectors, degrees in [0, 180]."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    cos = float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-9))
    return float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))))


def lifted_hand_score(pose: PersonPose, side: str, gravity: np.ndarray) -> float:
    """A hand held up by its own arm: the elbow folded (flexion from the metric 3D landmarks) and the wrist
    above the elbow along gravity (its image direction). Such a hand is at the face, gestures or holds
    something up; it does not rest or push on a table, counter, wall or railing, which take a hand's
    weight from below with the forearm lying on them or the arm reaching out to them.

    side: "left" or "right"; gravity: (3,) unit, camera frame. 0 when gravity runs along the line of
    sight (a camera looking straight down: "above" is not seen in the image).
    """
    s, e, w = ((lm.LEFT_SHOULDER, lm.LEFT_ELBOW, lm.LEFT_WRIST) if side == "left"
               else (lm.RIGHT_SHOULDER, lm.RIGHT_ELBOW, lm.RIGHT_WRIST))
    world = pose.world.astype(np.float64)
    upper, fore = world[e] - world[s], world[w] - world[e]
    flexion = angle_deg(upper, fore)
    down = np.asarray(gravity, np.float64)[:2]
    if np.linalg.norm(down) < 0.3:
        return 0.0
    forearm = (pose.keypoints[w] - pose.keypoints[e]).astype(np.float64)
    rise = float(-forearm @ down / (np.linalg.norm(down) * np.linalg.norm(forearm) + 1e-9))
    return smoothstep(flexion, *LIFTED_FLEXION_DEG) * smoothstep(rise, *LIFTED_RISE)


def seated_score(flexion_deg: float) -> float:
    """Seated from the metric 3D hip flexion."""
    return smoothstep(flexion_deg, *SEATED_FLEXION_DEG)


def carried_score(pose: PersonPose, region: ObjectRegion) -> float:
    """Carried by the object (a rider astride an animal, legs hanging): the hips over the upper half of
    its box and the lower ankle well above the box's bottom, where the ground it stands on is. A person
    whose feet are off that ground is held up by the object, whatever their hip flexion."""
    x0, y0, x1, y1 = region.box_xyxy
    kp = pose.keypoints
    hips = 0.5 * (kp[lm.LEFT_HIP] + kp[lm.RIGHT_HIP])
    if not (x0 <= hips[0] <= x1 and hips[1] <= 0.5 * (y0 + y1)):
        return 0.0
    feet = max(kp[lm.LEFT_ANKLE, 1], kp[lm.RIGHT_ANKLE, 1])
    return smoothstep((y1 - feet) / max(y1 - y0, 1.0), *OFF_GROUND)


def foreshortened_thighs_score(pose: PersonPose) -> tuple[float, float]:
    """Seated from 2D: thighs much shorter than the torso in the image, with hidden knees, point along
    the line of sight, which a standing person's thighs never do (people seen from behind or in front
    on a seat, whose 3D hip flexion mediapipe often misses). Returns (score, thigh/torso length ratio).
    """
    kp = pose.keypoints
    torso = np.linalg.norm(
        0.5 * (kp[lm.LEFT_SHOULDER] + kp[lm.RIGHT_SHOULDER]) - 0.5 * (kp[lm.LEFT_HIP] + kp[lm.RIGHT_HIP])
    )
    thighs = 0.5 * (
        np.linalg.norm(kp[lm.LEFT_KNEE] - kp[lm.LEFT_HIP])
        + np.linalg.norm(kp[lm.RIGHT_KNEE] - kp[lm.RIGHT_HIP])
    )
    ratio = float(thighs / max(torso, 1e-6))
    knees_hidden = (
        float(np.mean(pose.visibility[[lm.LEFT_KNEE, lm.RIGHT_KNEE]])) < FORESHORTENED_KNEE_VISIBILITY
    )
    return (
        smoothstep(-ratio, -FORESHORTENED_RATIO[1], -FORESHORTENED_RATIO[0]) if knees_hidden else 0.0
    ), ratio


_LIMBS = (
    (lm.LEFT_SHOULDER, lm.RIGHT_SHOULDER),
    (lm.LEFT_SHOULDER, lm.LEFT_HIP),
    (lm.RIGHT_SHOULDER, lm.RIGHT_HIP),
    (lm.LEFT_HIP, lm.LEFT_KNEE),
    (lm.RIGHT_HIP, lm.RIGHT_KNEE),
    (lm.LEFT_KNEE, lm.LEFT_ANKLE),
    (lm.RIGHT_KNEE, lm.RIGHT_ANKLE),
    (lm.LEFT_SHOULDER, lm.LEFT_ELBOW),
    (lm.RIGHT_SHOULDER, lm.RIGHT_ELBOW),
    (lm.LEFT_ELBOW, lm.LEFT_WRIST),
    (lm.RIGHT_ELBOW, lm.RIGHT_WRIST),
)


def person_depth(pose: PersonPose, camera: CameraIntrinsics) -> float:
    """Distance of the person from the camera (metres), from metric limb lengths over their pixel lengths.

    Foreshortening only shortens a limb in the image (overestimating depth), so a low quantile of the
    per-limb estimates is used. Falls back to a 1.7 m tall person filling the box.
    """
    f = 0.5 * (camera.fx + camera.fy)
    est = []
    for a, b in _LIMBS:
        if min(pose.visibility[a], pose.visibility[b]) < 0.5:
            continue
        px = float(np.linalg.norm(pose.keypoints[a] - pose.keypoints[b]))
        metres = float(np.linalg.norm(pose.world[a] - pose.world[b]))
        if px > 4.0 and metres > 0.05:
            est.append(f * metres / px)
    if len(est) >= 3:
        return float(np.quantile(est, 0.25))
    return f * 1.7 / max(1.0, pose.box_xyxy[3] - pose.box_xyxy[1])


def object_depth(
    box: np.ndarray, size_m: float, camera: CameraIntrinsics, width_m: float | None = None
) -> tuple[float, float] | None:
    """(nearest, farthest) object distance (metres) its box allows; None if the image border cuts the box.

    The box's longer side spans the object's largest extent `size_m` when the object is seen side-on;
    an elongated object pointing at the camera (a board, a bat) is foreshortened down to its second
    extent `width_m`, which makes it look farther. Without width_m the object is taken as compact.
    """
    x0, y0, x1, y1 = box
    if x0 <= 1 or y0 <= 1 or x1 >= camera.width - 1 or y1 >= camera.height - 1:
        return None
    f_over_px = 0.5 * (camera.fx + camera.fy) / max(x1 - x0, y1 - y0)
    return f_over_px * min(width_m or size_m, size_m), f_over_px * size_m


def depth_agreement(z_person: float, z_object: tuple[float, float] | None) -> float:
    """1 when the person's depth lies in the object's depth range (within the size priors' slack),
    decaying beyond."""
    if z_object is None:
        return 1.0
    near, far = z_object
    excess = max(0.0, np.log(near / z_person) - DEPTH_TOLERANCE, np.log(z_person / far) - DEPTH_TOLERANCE)
    return float(np.exp(-0.5 * (excess / DEPTH_SIGMA) ** 2))
