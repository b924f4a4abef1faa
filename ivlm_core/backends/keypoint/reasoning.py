"""Semantic contact reasoning: category prior x image evidence x depth agreement, per body part."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ivlm_core.backends.keypoint import evidence as ev
from ivlm_core.backends.keypoint.landmarks import HandLandmarks, PersonPose
from ivlm_core.backends.keypoint.priors import CategoryPrior
from ivlm_core.backends.keypoint.support import BodySupport
from ivlm_core.types import CameraIntrinsics

HIDDEN_VISIBILITY = 0.3  # mediapipe visibility below which an extremity counts as not seen
HIDDEN_MIN_WEIGHT = 0.35  # the least weight a hidden extremity's 2D evidence keeps
_TAGS = {  # evidence names of the tests
    "near": "near",
    "support": "support",
    "seated": "seated_on",
    "stands_on": "stands_on",
    "rides": "rides",
    "pedals": "pedals",
    "rests": "rests_on",
    "leans": "leans_on",
}


@dataclass
class PartContact:
    """Contact confidence of every part the category's prior names, and why."""

    scores: dict[str, float]  # part -> prior x evidence x depth agreement, in [0, 1]
    evidence: list[str] = field(default_factory=list)  # human-readable, for logs
    object_depth_m: tuple[float, float] | None = None  # (nearest, farthest) from the box and size prior;
    # None if the box is cut off
    person_depth_m: float = 0.0

    def contacted(self, threshold: float) -> dict[str, float]:
        return {
            p: round(s, 3) for p, s in sorted(self.scores.items(), key=lambda kv: -kv[1]) if s >= threshold
        }


def score_parts(
    pose: PersonPose,
    region: ev.ObjectRegion,
    category: CategoryPrior,
    camera: CameraIntrinsics,
    z_person: float | None = None,
    support: BodySupport | None = None,
    hands: Sequence[HandLandmarks] = (),
) -> PartContact:
    """Score each part of the category prior with its test (near / seated / support / rests) and the
    depth check.

    z_person: the person's distance from the camera (metres) from the body fit; estimated from limb
    lengths when None. support: the weight-bearing parts of the fitted body (the `rests` test).
    hands: the person's hands found by the hand model around the object: a hand on the object counts
    as `near` evidence for its side, where the pose's hand is farther.
    """
    body_px = pose.scale_px
    pts = ev.part_points(pose.keypoints)
    if category.known:
        how = f"; {category.via}" if category.via else ""
        evidence = [f"prior:{category.label} ({category.affordance}{how})"]
    else:
        evidence = [
            f"prior:unresolved label '{category.label}', reasoned from geometry: {category.size_m:.2f} m "
            f"at the person's depth, taken as {category.affordance}"
        ]
    if not category.parts:
        evidence.append(f"background:'{category.label}' is scenery behind people, never in contact")

    if z_person is None:
        z_person = ev.person_depth(pose, camera)
    z_object = None
    if category.extended:
        depth = 1.0
        evidence.append(f"depth:person {z_person:.1f} m, '{category.label}' is a surface (no depth check)")
    elif not category.known:
        depth = 1.0
        evidence.append(f"depth:person {z_person:.1f} m, object sized at that depth (not checked)")
    else:
        z_object = ev.object_depth(region.box_xyxy, category.size_m, camera, category.width_m)
        depth = ev.depth_agreement(z_person, z_object)
        if z_object is None:
            evidence.append(f"depth:person {z_person:.1f} m, object box cut by the image border (unchecked)")
        else:
            near, far = z_object
            span = f"{far:.1f}" if far - near < 0.05 else f"{near:.1f}-{far:.1f}"
            evidence.append(f"depth:person {z_person:.1f} m, object {span} m, agreement {depth:.2f}")
    if support is not None and any(p.test == "rests" for p in category.parts):
        evidence.append(support.evidence)

    flexion = ev.hip_flexion_deg(pose.world)
    foreshortened, thigh_ratio = ev.foreshortened_thighs_score(pose)
    seated = max(ev.seated_score(flexion), foreshortened)
    hips_on_object = ev.proximity("hips", pts["buttocks"], region, body_px, sigma=ev.SEAT_SIGMA)
    if any(p.test in ("seated", "rides", "pedals") for p in category.parts):
        evidence.append(
            f"seated:{seated:.2f} (hip flexion {flexion:.0f} deg, thigh/torso in image {thigh_ratio:.2f}, "
            f"hips on object {hips_on_object:.2f})"
        )

    scores: dict[str, float] = {}
    for prior in category.parts:
        if prior.test == "seated":  # held up by the object: sitting on it, or lying on it
            e = seated * hips_on_object
            if support is not None and support.posture == "lying":
                on = ev.proximity(prior.part, pts[prior.part], region, body_px, sigma=ev.SEAT_SIGMA)
                e = max(e, support.parts.get(prior.part, 0.0) * on)
        elif prior.test == "rides":  # astride: seated on it, or carried by it with the feet off the ground
            e = max(seated * hips_on_object, ev.carried_score(pose, region))
        elif prior.test == "pedals":  # feet on pedals, footpegs or stirrups: only while riding
            riding = max(seated * hips_on_object, ev.carried_score(pose, region))
            e = riding * ev.proximity(prior.part, pts[prior.part], region, body_px)
        elif prior.test == "stands_on":  # standing, feet on the object's top surface (its box's upper half)
            standing = support is not None and support.posture == "standing"
            e = ev.proximity(prior.part, pts[prior.part], region.top_half(), body_px) if standing else 0.0
        elif prior.test == "leans":  # a hand resting or pushing on a structure, not held up by its arm
            e = ev.proximity(prior.part, pts[prior.part], region, body_px)
            side = prior.part.split("_")[0]
            if e >= 0.5 and side in ("left", "right") and support is not None:
                lifted = ev.lifted_hand_score(pose, side, support.gravity)
                if lifted >= 0.5:
                    evidence.append(f"lifted:{prior.part}({lifted:.2f}), held up by its folded arm")
                e *= 1.0 - lifted
        elif prior.test == "rests":  # bears the body's weight, and lies on the surface's image region
            weight = 0.0 if support is None else support.parts.get(prior.part, 0.0)
            e = weight * ev.proximity(prior.part, pts[prior.part], region, body_px, sigma=ev.SEAT_SIGMA)
        else:
            e = ev.proximity(prior.part, pts[prior.part], region, body_px)
            vis = _part_visibility(pose, prior.part)
            if e >= 0.5 and vis is not None and vis < HIDDEN_VISIBILITY:
                # occlusion order: a hidden extremity on the object is either behind it (grasped from
                # behind) or guessed by the pose model; it counts less than one that is seen
                e *= max(HIDDEN_MIN_WEIGHT, vis / HIDDEN_VISIBILITY)
                evidence.append(f"hidden:{prior.part}(visibility {vis:.2f}, evidence {e:.2f})")
            for hand in hands:
                found = ev.proximity(prior.part, hand.points, region, body_px)
                if f"{hand.side}_hand" == prior.part and found > e:
                    e = found
                    if found >= 0.5:
                        evidence.append(f"hand_model:{prior.part}({found:.2f}) on the object")
        scores[prior.part] = prior.prior * e * depth
        if e >= 0.5:
            evidence.append(f"{_TAGS[prior.test]}:{prior.part}({e:.2f})")
    for prior in category.parts:  # a part that can only touch together with another one
        if prior.requires is not None and scores[prior.part] > scores.get(prior.requires, 0.0):
            scores[prior.part] = scores.get(prior.requires, 0.0)
            evidence.append(f"requires:{prior.part} only with {prior.requires}")
    return PartContact(scores=scores, evidence=evidence, object_depth_m=z_object, person_depth_m=z_person)


_PART_LANDMARKS = {
    "left_hand": (15, 17, 19, 21),
    "right_hand": (16, 18, 20, 22),
    "left_foot": (27, 29, 31),
    "right_foot": (28, 30, 32),
    "head": (0, 7, 8, 9, 10),
}


def _part_visibility(pose: PersonPose, part: str) -> float | None:
    """Mean landmark visibility of an extremity (None for other parts)."""
    ids = _PART_LANDMARKS.get(part)
    return None if ids is None else float(np.mean(pose.visibility[list(ids)]))
