"""Is a body fit trustworthy? Checks of the landmarks and the fit against what a human body can be.

Occlusion by the object is the normal case in contact scenes, and a pose model that follows the
object instead of the person (a skeleton running down a hugged dog's legs) gives confident nonsense.
Each check below is a property every real person has; a fit that breaks one is doubted (its contact
lowered), one that breaks several is not trusted (its contact withheld), and the evidence says why.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ivlm_core.backends.keypoint import landmarks as lm
from ivlm_core.backends.keypoint.body_fit import BodyFit
from ivlm_core.backends.keypoint.evidence import angle_deg
from ivlm_core.backends.keypoint.landmarks import PersonPose

SEEN = 0.5  # landmark visibility from which a landmark counts as seen
IN_BOX_SHARE = 0.7  # seen landmarks that must lie in the person box (grown by BOX_SLACK)
BOX_SLACK = 0.15  # person boxes are loose: grown by this fraction of their size per side
REPROJECTION_SHARE = 0.1  # largest RMS keypoint error of the fit, as a fraction of the body's length
# metric limb length / torso length (shoulder centre to hip centre) no adult or child falls outside
# (anny's average adult: thigh 0.8, shin 0.8, upper arm 0.55), with room for the pose model's noise
LIMB_RATIOS = {"thigh": (0.2, 2.0), "shin": (0.2, 2.0), "upper arm": (0.1, 1.5)}
MAX_TWIST_DEG = 100.0  # angle between the shoulder and the hip lines: a spine twists far less
DOUBT = 0.6  # contact confidence factor when one check fails; several failures withhold the contact

_LIMBS = {
    "thigh": ((lm.LEFT_HIP, lm.LEFT_KNEE), (lm.RIGHT_HIP, lm.RIGHT_KNEE)),
    "shin": ((lm.LEFT_KNEE, lm.LEFT_ANKLE), (lm.RIGHT_KNEE, lm.RIGHT_ANKLE)),
    "upper arm": ((lm.LEFT_SHOULDER, lm.LEFT_ELBOW), (lm.RIGHT_SHOULDER, lm.RIGHT_ELBOW)),
}


@dataclass
class FitCheck:
    """trust: factor in [0, 1] for the contact confidences; problems: what failed, for the evidence."""

    trust: float = 1.0
    problems: list[str] = field(default_factory=list)

    @property
    def evidence(self) -> str:
        if not self.problems:
            return "fit:plausible"
        verdict = "doubted" if self.trust > 0 else "not trusted, contact withheld"
        return f"fit:{verdict} ({'; '.join(self.problems)})"


def check_fit(pose: PersonPose, fit: BodyFit, image_size: tuple[int, int]) -> FitCheck:
    """Run every check on one person's landmarks (pose) and body fit; image_size: (H, W) pixels."""
    problems = []
    h, w = image_size
    kp, vis, world = pose.keypoints, pose.visibility, pose.world.astype(np.float64)
    in_image = (kp[:, 0] >= 0) & (kp[:, 0] < w) & (kp[:, 1] >= 0) & (kp[:, 1] < h)
    seen = (vis >= SEEN) & in_image
    if pose.box_given and np.count_nonzero(seen) >= 4:
        box = pose.box_xyxy
        slack = BOX_SLACK * (box[2:] - box[:2])
        inside = np.all((kp[seen] >= box[:2] - slack) & (kp[seen] <= box[2:] + slack), axis=1)
        if inside.mean() < IN_BOX_SHARE:
            problems.append(f"{inside.mean():.0%} of the seen landmarks in the person box")
    if fit.reprojection_px > REPROJECTION_SHARE * pose.scale_px:
        problems.append(f"keypoint error {fit.reprojection_px:.0f} px for a {pose.scale_px:.0f} px body")
    torso = np.linalg.norm(
        0.5 * (world[lm.LEFT_SHOULDER] + world[lm.RIGHT_SHOULDER])
        - 0.5 * (world[lm.LEFT_HIP] + world[lm.RIGHT_HIP])
    )
    for name, pairs in _LIMBS.items():
        lengths = [np.linalg.norm(world[a] - world[b]) for a, b in pairs if min(vis[a], vis[b]) >= SEEN]
        if lengths and torso > 1e-6:
            ratio = float(np.mean(lengths) / torso)
            lo, hi = LIMB_RATIOS[name]
            if not lo <= ratio <= hi:
                problems.append(f"{name} {ratio:.2f} x the torso")
    shoulders = world[lm.LEFT_SHOULDER] - world[lm.RIGHT_SHOULDER]
    hips = world[lm.LEFT_HIP] - world[lm.RIGHT_HIP]
    twist = angle_deg(shoulders, hips)
    if twist > MAX_TWIST_DEG:
        problems.append(f"shoulders turned {twist:.0f} deg against the hips")
    trust = 1.0 if not problems else (DOUBT if len(problems) == 1 else 0.0)
    return FitCheck(trust, problems)
