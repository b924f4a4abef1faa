"""The embedded CPU default backend: landmarks -> body fit -> support and contact reasoning -> vertices.

No gated weights, no GPU: mediapipe's shipped pose model, the shipped anny body, the category table
(ivlm_core/objects/categories.yaml: every label resolves to an affordance class), the classes'
part priors (`contact_priors.yaml`), the body's support under gravity and image evidence. Every
result lists the evidence that fired. With `binary`, each person also gets one object-agnostic
result (label BINARY_LABEL): every part touching anything, as InteractVLM's `hcontact` mode.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import scipy.sparse
import trimesh

from ivlm_core.backends.base import PERSON_LABEL, ContactBackend
from ivlm_core.backends.keypoint import evidence as ev
from ivlm_core.backends.keypoint import landmarks as lm
from ivlm_core.backends.keypoint.body_fit import BodyFit, BodyFitter
from ivlm_core.backends.keypoint.landmarks import (
    HandDetector,
    HandLandmarks,
    PersonPose,
    PoseDetector,
    to_rgb8,
)
from ivlm_core.backends.keypoint.plausibility import FitCheck, check_fit
from ivlm_core.backends.keypoint.priors import PRIORS_PATH, CategoryPrior, ContactPriors, normalize_label
from ivlm_core.backends.keypoint.reasoning import score_parts
from ivlm_core.backends.keypoint.support import IMAGE_DOWN, BodySupport, body_support
from ivlm_core.body import PART_NAMES, load_body_model
from ivlm_core.objects.mesh import ObjectMesh
from ivlm_core.objects.registry import MAX_USER_FACES, ObjectRegistry
from ivlm_core.reconstruct import ReconstructConfig, reconstruct
from ivlm_core.types import CameraIntrinsics, ContactResult, Detection, Reconstruction

# Within a contacted part, vertices where the evidence points get the part's full confidence, the
# rest FLOOR of it: near -> vertices projecting onto the object; seated/support -> the underside.
FLOOR = 0.6
SMOOTHING_STEPS = 3  # neighbour-averaging passes that let contact fade across part borders
# Camera frame <- object canonical frame (+y up, +z front): optical frame has y down, z forward.
_OBJECT_TO_CAMERA = np.diag([1.0, -1.0, -1.0])
BOARD_MAX_M = 3.0  # stand-on objects up to this size are boards (between feet and ground), larger ones ground
BINARY_LABEL = "any"  # the object label of the object-agnostic (binary) result of each person
GROUND_PRIOR = 0.9  # a weight-bearing part touches whatever holds the body up
SEAT_PRIORS = {"buttocks": 0.9, "left_thigh": 0.6, "right_thigh": 0.6}  # a sitting body held up off the floor
LEG_LANDMARKS = [lm.LEFT_KNEE, lm.RIGHT_KNEE, lm.LEFT_ANKLE, lm.RIGHT_ANKLE]
LEGS_SEEN = 0.5  # knees' and ankles' mean visibility (0 outside the image) below which posture is a guess
# Objects held in one hand, where the pose model's hand landmarks are least reliable: when they put no
# hand on such an object, mediapipe Hands looks for the hand holding it (issue 12 item 5).
HELD_IN_HAND = ("hand_held_small", "food_drink", "worn_hands")
HANDS = ("left_hand", "right_hand")


class _Person(NamedTuple):
    """One person's stage outputs, shared by all their pairs: landmarks, fit, support, fit check, box."""

    index: int
    pose: PersonPose
    fit: BodyFit
    support: BodySupport
    check: FitCheck
    box: np.ndarray  # (4,) pixels


class KeypointBackend(ContactBackend):
    """Default contact backend for CPUs and for setups without the InteractVLM weights.

    body_model: "anny" (shipped) or an SMPL-family name the body stage can load from
    body_model_path; device: torch device of the body model (mediapipe always runs on the CPU).
    video: frames are consecutive (tracking pose graph, previous fit blended in). priors_path: a
    contact_priors.yaml. reconstruct: also place the object against the body (ivlm_core.reconstruct,
    ~7 ms per contact pair on video, ~30 ms cold) and fill `ContactResult.reconstruction`.
    object_mesh_folder: user meshes for the object side (see ObjectRegistry); max_user_faces: user meshes
    with more faces are decimated to this budget once, at load. binary: add one object-agnostic result per
    person (object label "any", no object mesh): the parts touching anything, the ground and seats
    included. gravity: (3,) direction of gravity in the camera's optical frame (default image-down,
    (0, 1, 0)), for cameras whose tilt is known. reconstruct_config: the placement's settings (the
    node passes its contact_threshold and grasp_clearance here); None: ReconstructConfig's defaults.
    """

    name = "keypoint"

    def __init__(
        self,
        body_model: str = "anny",
        body_model_path: str | None = None,
        device: str = "cpu",
        video: bool = False,
        reconstruct: bool = False,
        priors_path: Path | str = PRIORS_PATH,
        object_mesh_folder: str | None = None,
        max_user_faces: int = MAX_USER_FACES,
        default_fov_deg: float = 60.0,
        binary: bool = False,
        gravity: Sequence[float] | None = None,
        reconstruct_config: ReconstructConfig | None = None,
    ) -> None:
        self.gravity = _gravity(gravity)
        self.binary = bool(binary)
        self.video = video
        self.default_fov_deg = default_fov_deg
        self.objects = ObjectRegistry(user_folder=object_mesh_folder, max_user_faces=max_user_faces)
        self.priors = ContactPriors(priors_path, labels=self.objects.labels)  # one category table for both
        self.detector = PoseDetector()
        self.hands = HandDetector()
        self.body = load_body_model(body_model, body_model_path or None, device)
        self.fitter = BodyFitter(self.body)
        self._part_ids = {p: self.body.part_vertex_ids(p) for p in PART_NAMES}
        self._smooth = _vertex_averaging(self.body.faces, self.body.num_vertices)
        self._palm = self._palm_weights()
        self.place_objects = reconstruct  # the option keeps the node's parameter name
        self.reconstruct_config = reconstruct_config or ReconstructConfig()
        self._previous_reconstruction: dict[tuple[int, str], Reconstruction] = {}
        self._previous: dict[int, BodyFit] = {}
        self._hands_near: dict[int, list[HandLandmarks]] = {}  # this frame's hands around each object
        self.last_timings_ms: dict[str, float] = {}
        self.last_poses: list[PersonPose | None] = []  # per person index, for overlays and debugging

    def close(self) -> None:
        self.detector.close()
        self.hands.close()

    def estimate(
        self,
        image: np.ndarray,
        detections: Sequence[Detection],
        camera: CameraIntrinsics | None = None,
    ) -> list[ContactResult]:
        t0 = time.perf_counter()
        self.last_poses = []
        self._hands_near = {}
        image = to_rgb8(image)
        h, w = image.shape[:2]
        if camera is None:
            camera = CameraIntrinsics.from_fov(w, h, self.default_fov_deg)
        else:
            camera.check_image_size(w, h)
        people = [d for d in detections if normalize_label(d.label) == PERSON_LABEL]
        objects = [d for d in detections if normalize_label(d.label) != PERSON_LABEL]
        timings = {"pose": 0.0, "fit": 0.0, "reason": 0.0, "vertices": 0.0}
        if not objects and not self.binary:
            self.last_timings_ms = {k: 0.0 for k in timings} | {"total": 1e3 * (time.perf_counter() - t0)}
            return []

        t = time.perf_counter()
        person_boxes = [_clip_box(p.box_xyxy, w, h) for p in people]
        if people:
            poses = self.detector.detect(image, [b for b in person_boxes if b is not None], video=self.video)
            it = iter(poses)
            poses = [None if b is None else next(it) for b in person_boxes]
        else:
            poses = self.detector.detect(image, None, video=self.video)
        timings["pose"] = 1e3 * (time.perf_counter() - t)
        self.last_poses = list(poses)

        results: list[ContactResult] = []
        if not poses:
            reason = "no person found in the image (mediapipe pose found nobody; pass person boxes to help)"
            return self._finish([self._empty(0, o, reason, None) for o in objects], timings, t0)
        queries = objects + ([Detection(BINARY_LABEL, np.array([0.0, 0.0, w, h]))] if self.binary else [])

        for i, pose in enumerate(poses):
            box = people[i].box_xyxy if people else (pose.box_xyxy if pose is not None else None)
            if pose is None:
                why = (
                    "person box lies outside the image"
                    if people and person_boxes[i] is None
                    else ("no body pose found in the person box (too small, cut off or heavily occluded)")
                )
                results += [self._empty(i, o, why, box) for o in queries]
                continue
            t = time.perf_counter()
            fit = self.fitter.fit(pose, camera, self._previous.get(i) if self.video else None)
            if self.video:
                self._previous[i] = fit
            support = body_support(fit, self._part_ids, self.gravity)
            check = check_fit(pose, fit, image.shape[:2])
            timings["fit"] += 1e3 * (time.perf_counter() - t)
            person = _Person(i, pose, fit, support, check, np.asarray(box, np.float64))
            pairs = self._pairs(person, objects, image, camera, timings)
            results += pairs
            if self.binary:
                results.append(self._binary(person, pairs, camera, queries[-1]))
        return self._finish(results, timings, t0)

    def _pairs(
        self,
        person: _Person,
        objects: list[Detection],
        image: np.ndarray,
        camera: CameraIntrinsics,
        timings: dict[str, float],
    ) -> list[ContactResult]:
        """The person's result with every object, in order. Boards (skateboards, skis, steps: small
        things stood on) go first: feet standing on a board touch it, not the ground, floor or ramp
        beneath it, which the board is between."""
        boards = [k for k, obj in enumerate(objects) if _is_board(self.priors.get(obj.label))]
        results = {k: self._pair(person, objects[k], image, camera, timings) for k in boards}
        standing_on = [k for k in boards if any(p.endswith("_foot") for p in results[k].body_parts)]
        holder = objects[standing_on[0]].label if standing_on else None
        for k, obj in enumerate(objects):
            if k not in results:
                results[k] = self._pair(person, obj, image, camera, timings, feet_on=holder)
        return [results[k] for k in range(len(objects))]

    def _pair(
        self,
        person: _Person,
        obj: Detection,
        image: np.ndarray,
        camera: CameraIntrinsics,
        timings: dict[str, float],
        feet_on: str | None = None,
    ) -> ContactResult:
        """Person and one object; feet_on: the board the feet stand on (they touch no ground under it)."""
        i, pose, fit, support, check, person_box = person
        shape = image.shape[:2]
        h, w = shape
        if _clip_box(obj.box_xyxy, w, h) is None:
            return self._empty(
                i, obj, f"object box {obj.box_xyxy.tolist()} lies outside the {w}x{h} image", person_box
            )
        t = time.perf_counter()
        category = self.priors.get(obj.label)
        z_person = float(fit.translation[2])
        if not category.known:  # unresolved label: its size at the person's depth decides its class
            extent_px = float(np.max(obj.box_xyxy[2:] - obj.box_xyxy[:2]))
            category = self.priors.from_geometry(category.label, extent_px * z_person / camera.fx)
        region = ev.ObjectRegion.from_detection(obj.box_xyxy, obj.mask, shape)
        pc = score_parts(pose, region, category, camera, z_person=z_person, support=support)
        held = max(pc.scores.get(part, 0.0) for part in HANDS) >= self.priors.threshold
        if category.affordance in HELD_IN_HAND and not held:  # the hand model looks for the hand holding it
            found = self._hands_near.get(id(obj))
            if found is None:  # the hand model runs once per object and frame, whoever may hold it
                found = self._hands_near[id(obj)] = self.hands.around(image, obj.box_xyxy)
            hands = [hand for hand in found if _inside(hand.points.mean(0), person_box)]
            if hands:
                pc = score_parts(pose, region, category, camera, z_person, support, hands)
        if feet_on is not None and _is_ground(category):
            pc.scores = {part: 0.0 if part.endswith("_foot") else s for part, s in pc.scores.items()}
            pc.evidence.append(f"feet on the {feet_on}, not on the {obj.label} beneath it")
        if check.problems:  # a doubted fit lowers every part's confidence, an untrusted one withholds them
            pc.scores = {part: score * check.trust for part, score in pc.scores.items()}
            pc.evidence.append(check.evidence)
        parts = pc.contacted(self.priors.threshold)
        timings["reason"] += 1e3 * (time.perf_counter() - t)

        t = time.perf_counter()
        mesh = self.objects.get(obj.label, obj.box_xyxy, camera)
        tests = {p.part: p.test for p in category.parts}
        body_p = self._body_probabilities(parts, tests, fit, region, camera, pose.scale_px, support.gravity)
        obj_p = self._object_probabilities(parts, fit, obj, mesh, camera)
        timings["vertices"] += 1e3 * (time.perf_counter() - t)
        rec = None
        if self.place_objects and parts:
            t = time.perf_counter()
            key = (i, obj.label)
            rec = reconstruct(
                fit.vertices,
                self.body.faces,
                body_p,
                mesh,
                obj_p,
                obj.box_xyxy,
                camera,
                object_mask=obj.mask,
                body_normals=fit.normals,
                init=self._previous_reconstruction.get(key) if self.video else None,
                config=self.reconstruct_config,
            )
            if self.video:
                self._previous_reconstruction[key] = rec
            timings["reconstruct"] = timings.get("reconstruct", 0.0) + 1e3 * (time.perf_counter() - t)
        reason = ""
        if not parts:
            reason = "no body part passed the contact threshold"
            if check.trust == 0.0:
                reason = f"the body fit is not trustworthy: {'; '.join(check.problems)}"
            elif not category.known:
                reason += f" (label '{obj.label}' is not in the category table; reasoned from its size)"
            elif not category.parts:
                reason += f" ('{obj.label}' is {category.affordance}: never in contact)"
        return self._result(person, obj, parts, body_p, mesh, obj_p, pc.evidence, reason, rec)

    def _result(
        self,
        person: _Person,
        obj: Detection,
        parts: dict[str, float],
        body_p: np.ndarray,
        mesh: ObjectMesh | None,
        obj_p: np.ndarray,
        evidence: list[str],
        reason: str,
        rec: Reconstruction | None = None,
    ) -> ContactResult:
        """The ContactResult of a person and `obj` with the fitted body, and its one-sentence answer."""
        names = ", ".join(p.replace("_", " ") for p in parts)
        return ContactResult(
            person_index=person.index,
            obj=obj,
            body_model=self.body.name,
            body_probabilities=body_p,
            body_parts=parts,
            object_mesh_id=mesh.mesh_id if mesh is not None else "",
            object_probabilities=obj_p,
            backend=self.name,
            evidence=evidence,
            reason=reason,
            person_box=person.box,
            body_vertices=person.fit.vertices,
            body_normals=person.fit.normals,
            reconstruction=rec,
            text=f"The contacting body parts are {names}." if parts else "No body part is in contact.",
            object_mesh=mesh,
        )

    def _body_probabilities(
        self,
        parts: dict[str, float],
        tests: dict[str, str],
        fit: BodyFit,
        region: ev.ObjectRegion,
        camera: CameraIntrinsics,
        body_px: float,
        gravity: np.ndarray,
    ) -> np.ndarray:
        """(V,) float32: each contacted part's confidence on its vertices, highest where the evidence is.

        near: the posed part's vertices whose projection lies on (or closest to) the object;
        seated / support / rests: the part's underside (normals along gravity, onto the seat or floor).
        """
        probs = np.zeros(self.body.num_vertices, np.float32)
        for part, conf in parts.items():
            ids = self._part_ids[part]
            if ids.size == 0:
                continue
            if tests[part] == "near":
                uv = camera.project(fit.vertices[ids].astype(np.float64), min_depth=1e-3)
                d = region.distance(uv)
                weight = np.exp(-0.5 * ((d - d.min()) / (ev.NEAR_SIGMA * body_px)) ** 2)
                if part.endswith("_hand"):  # hands hold with the palm and the inside of the fingers
                    weight = 0.5 * weight + 0.5 * self._palm[ids]
            else:
                down = fit.normals[ids].astype(np.float64) @ gravity
                weight = 1.0 / (1.0 + np.exp(-down / 0.2))
            probs[ids] = np.maximum(probs[ids], conf * (FLOOR + (1 - FLOOR) * weight))
        if not probs.any():
            return probs
        spread = probs
        for _ in range(SMOOTHING_STEPS):  # soften part borders: contact fades over a few vertex rings
            spread = self._smooth @ spread
        return np.maximum(probs, spread).astype(np.float32)

    def _palm_weights(self) -> np.ndarray:
        """(V,) in [0, 1]: how much each hand vertex faces the palm side (rest pose, so pose-independent).

        The palm normal is the cross product of the wrist-to-index and wrist-to-pinky directions of
        the rest keypoints, flipped for the left hand (the person's own left, +x in the body frame).
        """
        rest = self.fitter.rest_keypoints_all
        normals = self.fitter.rest_normals
        weight = np.zeros(self.body.num_vertices, np.float32)
        for side, sign in (("left", -1.0), ("right", 1.0)):
            wrist = rest[f"{side}_wrist"]
            palm = sign * np.cross(rest[f"{side}_index"] - wrist, rest[f"{side}_pinky"] - wrist)
            palm /= np.linalg.norm(palm) + 1e-12
            ids = self._part_ids[f"{side}_hand"]
            weight[ids] = 1.0 / (1.0 + np.exp(-(normals[ids] @ palm) / 0.3))
        return weight

    def _object_probabilities(
        self,
        parts: dict[str, float],
        fit: BodyFit,
        obj: Detection,
        mesh: ObjectMesh,
        camera: CameraIntrinsics,
    ) -> np.ndarray:
        """(Vo,) float32: the object's vertices facing each contacted part, with the object placed on its box.

        The object sits on the ray through its box centre at the contacting parts' depth, upright and
        facing the camera; each part's posed vertices mark the object vertices nearest to them.
        """
        if not parts:
            return np.zeros(len(mesh.vertices), np.float32)
        anchors = {p: fit.vertices[self._part_ids[p]].mean(0).astype(np.float64) for p in parts}
        depth = float(np.mean([a[2] for a in anchors.values()]))
        centre = camera.backproject(0.5 * (obj.box_xyxy[:2] + obj.box_xyxy[2:]), depth)
        ov = mesh.vertices.astype(np.float64) @ _OBJECT_TO_CAMERA.T + centre
        sigma = 0.15 * float(np.max(mesh.size_m))
        probs = np.zeros(len(ov), np.float32)
        for part, conf in parts.items():
            d = np.linalg.norm(ov - anchors[part], axis=1)
            probs = np.maximum(probs, (conf * np.exp(-0.5 * ((d - d.min()) / sigma) ** 2)).astype(np.float32))
        return probs

    def _binary(
        self, person: _Person, pairs: list[ContactResult], camera: CameraIntrinsics, query: Detection
    ) -> ContactResult:
        """Every part of person i touching anything: what holds the body up and every detected object.

        The weight-bearing parts touch the ground, floor or whatever the person stands, sits or lies
        on. A sitting posture whose hips are held up away from the feet needs a seat under the
        buttocks and thighs, detected or not (BodySupport.needs_seat). Contacts with the detected
        objects (`pairs`) are merged in.
        """
        pose, fit, support, check = person.pose, person.fit, person.support, person.check
        threshold = self.priors.threshold
        parts: dict[str, float] = {}
        tests: dict[str, str] = {}
        seen = _legs_seen(pose, camera)
        if seen < LEGS_SEEN:  # the legs' pose is the pose model's guess: what holds the body up is unknown
            evidence = [f"support:not judged, the legs are not seen (visibility {seen:.2f})"]
        else:
            evidence = [support.evidence] + ([check.evidence] if check.problems else [])
            for part, score in support.parts.items():
                conf = GROUND_PRIOR * score * check.trust
                if conf >= threshold:
                    parts[part], tests[part] = round(conf, 3), "rests"
            flexion = ev.seated_score(ev.hip_flexion_deg(pose.world))
            seated = max(flexion, ev.foreshortened_thighs_score(pose)[0])
            if support.needs_seat and seated >= 0.5 and "buttocks" not in parts:
                for part, prior in SEAT_PRIORS.items():
                    conf = prior * seated * check.trust
                    if conf >= threshold:
                        parts[part], tests[part] = round(conf, 3), "seated"
                evidence.append(f"seated:{seated:.2f}, hips held up away from the feet: on a seat")
        region = ev.ObjectRegion.from_detection(query.box_xyxy, None, (camera.height, camera.width))
        probs = self._body_probabilities(parts, tests, fit, region, camera, pose.scale_px, support.gravity)
        for res in pairs:
            if not res.body_parts:
                continue
            for part, conf in res.body_parts.items():
                parts[part] = max(parts.get(part, 0.0), conf)
            probs = np.maximum(probs, res.body_probabilities)
            evidence.append(f"{res.obj.label}:" + ",".join(res.body_parts))
        parts = dict(sorted(parts.items(), key=lambda kv: -kv[1]))
        reason = "" if parts else "no body part bears weight or touches a detected object"
        no_mesh = np.zeros(0, np.float32)
        return self._result(person, query, parts, probs, None, no_mesh, evidence, reason)

    def _empty(self, i: int, obj: Detection, reason: str, person_box: np.ndarray | None) -> ContactResult:
        has_mesh = obj.label.strip() not in ("", BINARY_LABEL)
        h_mesh = self.objects.get(obj.label, obj.box_xyxy) if has_mesh else None
        return ContactResult(
            person_index=i,
            obj=obj,
            body_model=self.body.name,
            body_probabilities=np.zeros(self.body.num_vertices, np.float32),
            body_parts={},
            object_mesh_id=h_mesh.mesh_id if h_mesh is not None else "",
            object_probabilities=np.zeros(0 if h_mesh is None else len(h_mesh.vertices), np.float32),
            backend=self.name,
            evidence=[],
            reason=reason,
            person_box=None if person_box is None else np.asarray(person_box, np.float64),
            object_mesh=h_mesh,
        )

    def _finish(
        self, results: list[ContactResult], timings: dict[str, float], t0: float
    ) -> list[ContactResult]:
        self.last_timings_ms = timings | {"total": 1e3 * (time.perf_counter() - t0)}
        return results


def _vertex_averaging(faces: np.ndarray, num_vertices: int) -> scipy.sparse.csr_matrix:
    """(V, V) sparse row-stochastic matrix: a vertex's value becomes the mean of itself and its neighbours."""
    edges = trimesh.geometry.faces_to_edges(faces)
    rows = np.concatenate([edges[:, 0], edges[:, 1], np.arange(num_vertices)])
    cols = np.concatenate([edges[:, 1], edges[:, 0], np.arange(num_vertices)])
    adj = scipy.sparse.coo_matrix(
        (np.ones(len(rows)), (rows, cols)), shape=(num_vertices, num_vertices)
    ).tocsr()
    adj.data[:] = 1.0  # duplicate edges counted once
    return scipy.sparse.diags(1.0 / np.asarray(adj.sum(axis=1)).ravel()) @ adj


def _is_board(category: CategoryPrior) -> bool:
    """Something small stood on (a skateboard, skis, a step): it lies between the feet and the ground."""
    return category.affordance == "stand_on" and not category.extended and category.size_m < BOARD_MAX_M


def _is_ground(category: CategoryPrior) -> bool:
    """A surface or a large structure stood on (floor, road, ramp, stairs): what boards lie on."""
    return category.extended or (category.affordance == "stand_on" and category.size_m >= BOARD_MAX_M)


def _legs_seen(pose: PersonPose, camera: CameraIntrinsics) -> float:
    """Mean visibility of the knees and ankles, counting landmarks outside the image as unseen."""
    x, y = pose.keypoints[LEG_LANDMARKS].T
    inside = (x >= 0) & (x < camera.width) & (y >= 0) & (y < camera.height)
    return float(np.mean(np.where(inside, pose.visibility[LEG_LANDMARKS], 0.0)))


def _gravity(gravity: Sequence[float] | None) -> np.ndarray:
    """(3,) unit gravity in the camera's optical frame; image-down when None. ValueError when invalid."""
    if gravity is None:
        return IMAGE_DOWN.copy()
    g = np.asarray(gravity, np.float64).reshape(-1)
    if g.shape != (3,) or not np.all(np.isfinite(g)) or np.linalg.norm(g) < 1e-6:
        raise ValueError(
            f"gravity must be 3 finite numbers, not all zero (a direction in the camera's optical frame, "
            f"x right, y down, z forward; (0, 1, 0) for an upright camera), got {gravity!r}"
        )
    return g / np.linalg.norm(g)


def _inside(point: np.ndarray, box: np.ndarray) -> bool:
    """True when pixel `point` (2,) lies in `box` [x0, y0, x1, y1]."""
    return bool(box[0] <= point[0] <= box[2] and box[1] <= point[1] <= box[3])


def _clip_box(box: np.ndarray, w: int, h: int) -> np.ndarray | None:
    """The part of a pixel box inside the image, or None if it has no area there."""
    x0, y0, x1, y1 = (
        np.clip(box[0], 0, w),
        np.clip(box[1], 0, h),
        np.clip(box[2], 0, w),
        np.clip(box[3], 0, h),
    )
    if x1 - x0 < 1 or y1 - y0 < 1:
        return None
    return np.array([x0, y0, x1, y1], np.float64)
