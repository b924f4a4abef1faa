"""People and pose stage: 2D + metric 3D body landmarks per person, from mediapipe's shipped pose model.

mediapipe Pose finds one person per call, so several people are handled by cropping each given person
box and running the pose model on the crop. Without person boxes the whole image is searched and at
most one person (the most prominent) is returned: a documented limit of this stage.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from ivlm_core.geometry import box_iou

# mediapipe's C++ side logs through glog/absl; keep that out of user output.
os.environ.setdefault("GLOG_minloglevel", "2")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# mediapipe pose landmark indices (the person's own left/right), see mp.solutions.pose.PoseLandmark.
NOSE, LEFT_EAR, RIGHT_EAR, MOUTH_LEFT, MOUTH_RIGHT = 0, 7, 8, 9, 10
LEFT_SHOULDER, RIGHT_SHOULDER, LEFT_ELBOW, RIGHT_ELBOW, LEFT_WRIST, RIGHT_WRIST = 11, 12, 13, 14, 15, 16
LEFT_PINKY, RIGHT_PINKY, LEFT_INDEX, RIGHT_INDEX, LEFT_THUMB, RIGHT_THUMB = 17, 18, 19, 20, 21, 22
LEFT_HIP, RIGHT_HIP, LEFT_KNEE, RIGHT_KNEE, LEFT_ANKLE, RIGHT_ANKLE = 23, 24, 25, 26, 27, 28
LEFT_HEEL, RIGHT_HEEL, LEFT_FOOT_INDEX, RIGHT_FOOT_INDEX = 29, 30, 31, 32
NUM_LANDMARKS = 33

# mediapipe's pose landmark model works on 256x256 inputs and resizes what it gets without
# anti-aliasing, so a large crop loses the person to aliasing (a photo upscaled x4 gave no pose).
# Crops are brought into this range first: small ones upscaled (cubic), large ones area-averaged.
_MIN_CROP_SIDE = 256  # pixels, longer side
_MAX_CROP_SIDE = 768
_CROP_MARGINS = (0.15, 0.0, 0.4)  # box growth tried in turn, as a fraction of the box size per side
_PAD = 0.25  # plain border added around a crop that gave no pose, fraction of its size per side
SAME_PERSON_IOU = 0.5  # a whole-image pose belongs to a person box when their boxes overlap this much
HAND_CROP = 1.5  # hands are searched in a square around an object box, this many box sizes from its centre


@dataclass
class PersonPose:
    """One person's landmarks in the full image.

    keypoints: (33, 2) float32 pixels; visibility: (33,) float32 in [0, 1];
    world: (33, 3) float32 metres, mediapipe's hip-centred metric frame (x right, y down, z away
    from the camera, approximately aligned with the camera); box_xyxy: (4,) the person box, pixels.
    """

    keypoints: np.ndarray
    visibility: np.ndarray
    world: np.ndarray
    box_xyxy: np.ndarray
    box_given: bool  # the box came from a detector rather than from the landmarks

    @property
    def scale_px(self) -> float:
        """A robust body length in pixels: shoulder-centre to hip-centre (torso) times 3, at least."""
        kp = self.keypoints
        torso = np.linalg.norm(
            0.5 * (kp[LEFT_SHOULDER] + kp[RIGHT_SHOULDER]) - 0.5 * (kp[LEFT_HIP] + kp[RIGHT_HIP])
        )
        box_h = self.box_xyxy[3] - self.box_xyxy[1]
        return float(max(3.0 * torso, 0.5 * box_h, 1.0))


@dataclass
class HandLandmarks:
    """One hand found by mediapipe Hands. side: the person's own "left" or "right"; points: (21, 2)
    float32 pixels in the full image (wrist first, mediapipe's hand landmark order)."""

    side: str
    points: np.ndarray


def to_rgb8(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB from grey, grey+alpha, RGB, RGBA, uint8 or uint16 input; ValueError otherwise."""
    img = np.asarray(image)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    elif img.ndim == 3 and img.shape[2] == 2:
        img = np.stack([img[:, :, 0]] * 3, axis=-1)
    elif img.ndim == 3 and img.shape[2] == 4:
        img = img[:, :, :3]
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"image must be (H, W), (H, W, 3) or (H, W, 4), got shape {np.shape(image)}")
    if img.shape[0] < 16 or img.shape[1] < 16:
        raise ValueError(f"image is too small for pose estimation: {img.shape[1]}x{img.shape[0]} pixels")
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    elif img.dtype != np.uint8:
        raise ValueError(
            f"image must be uint8 or uint16, got {img.dtype}; scale float images to 0..255 uint8"
        )
    return np.ascontiguousarray(img)


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence the C++ (TFLite/absl) log lines mediapipe writes straight to file descriptor 2."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


class PoseDetector:
    """mediapipe Pose (model_complexity 1, the only model in the wheel), loaded once.

    Two graphs: a static one for person crops and a tracking one for video of a single person
    without boxes (faster on consecutive frames).
    """

    def __init__(self, min_detection_confidence: float = 0.5) -> None:
        with _quiet_stderr():
            import mediapipe as mp

            pose = mp.solutions.pose
            self._static = pose.Pose(
                static_image_mode=True, model_complexity=1, min_detection_confidence=min_detection_confidence
            )
            self._tracking = pose.Pose(
                static_image_mode=False, model_complexity=1, min_detection_confidence=min_detection_confidence
            )
            # the first inference initialises the TFLite delegates and logs; do it here, not per frame
            self._static.process(np.zeros((64, 64, 3), np.uint8))
        self._warmed: set[int] = set()
        self._last_window: tuple[int, int, int, int] | None = None

    def close(self) -> None:
        self._static.close()
        self._tracking.close()

    def detect(
        self, image: np.ndarray, person_boxes: Sequence[np.ndarray] | None = None, video: bool = False
    ) -> list[PersonPose | None]:
        """Landmarks for each person box (None where no pose was found), or for the one person found.

        image: (H, W, 3) uint8 RGB. person_boxes: (4,) pixel boxes; None or empty searches the whole
        image and returns [] or [pose]. video: consecutive frames of one stream (tracking graph).
        """
        if person_boxes:
            whole: list[PersonPose | None] = []  # the whole-image search, run once when a box fails
            return [self._detect_in_box(image, np.asarray(b, np.float64), whole) for b in person_boxes]
        return self._search(image, video)

    def _search(self, image: np.ndarray, video: bool) -> list[PersonPose]:
        """The one most prominent person of the image ([] when none)."""
        h, w = image.shape[:2]
        # the full frame first (the tracking graph on video), then square windows: mediapipe's
        # person detector letterboxes to a square and misses people who fill a wide frame.
        # On video the window that found the person last time is tried first (warm start).
        windows: list[tuple[int, int, int, int] | None] = [None, *_square_windows(w, h)]
        if video and self._last_window in windows:
            windows.remove(self._last_window)
            windows.insert(0, self._last_window)
        pose = None
        for win in windows:
            if win is None:
                graph = self._tracking if video else self._static
                pose = self._run(graph, image, np.array([0.0, 0.0, w, h]), offset=(0.0, 0.0))
            else:
                x0, y0, x1, y1 = win
                crop = image[y0:y1, x0:x1]
                pose = self._run(self._static, crop, np.array(win, np.float64), offset=(x0, y0))
            if pose is not None:
                self._last_window = win
                break
        if pose is None:
            return []
        pose.box_xyxy = _landmark_box(pose.keypoints, pose.visibility, w, h)
        pose.box_given = False
        return [pose]

    def _detect_in_box(
        self, image: np.ndarray, box: np.ndarray, whole: list[PersonPose | None]
    ) -> PersonPose | None:
        """The person in `box`: crops with growing margins, the last one padded with a plain border, then
        the whole-image search when its person is this box's (mediapipe's person detector sometimes
        finds a small or cut-off person only with the scene around it). `whole` caches that search
        for the other boxes of the image."""
        h, w = image.shape[:2]
        bw, bh = box[2] - box[0], box[3] - box[1]
        for margin in _CROP_MARGINS:
            x0 = int(max(0, np.floor(box[0] - margin * bw)))
            y0 = int(max(0, np.floor(box[1] - margin * bh)))
            x1 = int(min(w, np.ceil(box[2] + margin * bw)))
            y1 = int(min(h, np.ceil(box[3] + margin * bh)))
            if x1 - x0 < 8 or y1 - y0 < 8:
                return None
            pose = self._run(self._static, image[y0:y1, x0:x1], box, offset=(x0, y0))
            if pose is not None:
                return pose
        # a person who fills the frame or is cut by its border has no background around them, which
        # mediapipe's person detector needs: pad the crop with a plain border
        ph, pw = int(_PAD * (y1 - y0)), int(_PAD * (x1 - x0))
        padded = cv2.copyMakeBorder(image[y0:y1, x0:x1], ph, ph, pw, pw, cv2.BORDER_CONSTANT, value=(0, 0, 0))
        pose = self._run(self._static, padded, box, offset=(x0 - pw, y0 - ph))
        if pose is not None:
            return pose
        if not whole:
            whole += self._search(image, video=False) or [None]
        found = whole[0]
        if found is None or box_iou(found.box_xyxy, box)[0, 0] < SAME_PERSON_IOU:
            return None
        return PersonPose(found.keypoints, found.visibility, found.world, box.copy(), box_given=True)

    def _run(
        self, graph, crop: np.ndarray, box: np.ndarray, offset: tuple[float, float]
    ) -> PersonPose | None:
        """Landmarks of the person in `crop` (its top-left at `offset` in the image), resized to the
        model's working range first (_MIN_CROP_SIDE .. _MAX_CROP_SIDE)."""
        crop, scale = _to_working_size(crop)
        if id(graph) in self._warmed:
            res = graph.process(np.ascontiguousarray(crop))
        else:  # a graph's first landmark pass logs calculator warnings: keep them out of user output
            with _quiet_stderr():
                res = graph.process(np.ascontiguousarray(crop))
            self._warmed.add(id(graph))
        if res.pose_landmarks is None:
            return None
        ch, cw = crop.shape[:2]
        lm = res.pose_landmarks.landmark
        kp = np.array([[p.x * cw, p.y * ch] for p in lm], np.float32) / scale + np.array(offset, np.float32)
        vis = np.array([p.visibility for p in lm], np.float32)
        world = np.array([[p.x, p.y, p.z] for p in res.pose_world_landmarks.landmark], np.float32)
        return PersonPose(
            keypoints=kp, visibility=vis, world=world, box_xyxy=box.astype(np.float64), box_given=True
        )


def _to_working_size(crop: np.ndarray) -> tuple[np.ndarray, float]:
    """`crop` scaled so its longer side lies in the models' working range (_MIN_CROP_SIDE ..
    _MAX_CROP_SIDE): cubic up, area down (area keeps a large crop's detail instead of aliasing it);
    returns it and the scale (model pixels per image pixel)."""
    side = max(crop.shape[:2])
    scale = float(np.clip(side, _MIN_CROP_SIDE, _MAX_CROP_SIDE)) / side
    if scale != 1.0:
        method = cv2.INTER_CUBIC if scale > 1.0 else cv2.INTER_AREA
        crop = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=method)
    return crop, scale


def _square_windows(w: int, h: int) -> list[tuple[int, int, int, int]]:
    """Square windows (x0, y0, x1, y1) covering a wide or tall frame: start, centre, end."""
    if w > 1.1 * h:
        return [(x, 0, x + h, h) for x in (0, (w - h) // 2, w - h)]
    if h > 1.1 * w:
        return [(0, y, w, y + w) for y in (0, (h - w) // 2, h - w)]
    return []


def _landmark_box(kp: np.ndarray, vis: np.ndarray, w: int, h: int) -> np.ndarray:
    """Person box from the (visible) landmarks, grown 10 %, clipped to the image."""
    pts = kp[vis > 0.3] if np.count_nonzero(vis > 0.3) >= 4 else kp
    x0, y0 = pts.min(0)
    x1, y1 = pts.max(0)
    mx, my = 0.1 * (x1 - x0) + 2, 0.1 * (y1 - y0) + 2
    return np.array(
        [max(0.0, x0 - mx), max(0.0, y0 - my), min(float(w), x1 + mx), min(float(h), y1 + my)], np.float64
    )


class HandDetector:
    """mediapipe Hands (the full model in the wheel, static images), loaded once.

    The pose model places the hands from the whole body and misses them on small held objects (a spoon
    held in front of the chest); the hand model, run on a crop around the object, finds the hand
    holding it and says which hand it is.
    """

    def __init__(self, min_detection_confidence: float = 0.5) -> None:
        with _quiet_stderr():
            import mediapipe as mp

            self._hands = mp.solutions.hands.Hands(
                static_image_mode=True,
                max_num_hands=2,
                model_complexity=1,
                min_detection_confidence=min_detection_confidence,
            )
            self._hands.process(np.zeros((64, 64, 3), np.uint8))  # delegates initialise and log here

    def close(self) -> None:
        self._hands.close()

    def around(self, image: np.ndarray, box: np.ndarray) -> list[HandLandmarks]:
        """The hands in a square crop around `box` (HAND_CROP box sizes from its centre), image pixels.

        mediapipe labels handedness as seen in a mirrored (selfie) image, so its "Left" is the person's
        right hand in a camera's image; `side` is the person's own.
        """
        h, w = image.shape[:2]
        cx, cy = 0.5 * (box[0] + box[2]), 0.5 * (box[1] + box[3])
        half = HAND_CROP * max(box[2] - box[0], box[3] - box[1])
        x0, y0 = int(max(0, cx - half)), int(max(0, cy - half))
        x1, y1 = int(min(w, cx + half)), int(min(h, cy + half))
        if x1 - x0 < 8 or y1 - y0 < 8:
            return []
        crop, scale = _to_working_size(image[y0:y1, x0:x1])
        res = self._hands.process(np.ascontiguousarray(crop))
        if not res.multi_hand_landmarks:
            return []
        ch, cw = crop.shape[:2]
        found = []
        for marks, handedness in zip(res.multi_hand_landmarks, res.multi_handedness, strict=True):
            label = handedness.classification[0]
            pts = np.array([[p.x * cw, p.y * ch] for p in marks.landmark], np.float32) / scale
            side = "right" if label.label == "Left" else "left"
            found.append(HandLandmarks(side, pts + np.array([x0, y0], np.float32)))
        return found
