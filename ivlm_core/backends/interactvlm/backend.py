"""`InteractVLMBackend`: Render -> Localize (MV-Loc) -> Lift, behind the ContactBackend interface.

The body the checkpoint was trained on (SMPL-H for the released ones) is rendered once, at start-up, in
its native frame from the four canonical views of the InteractVLM human rig (normal-coloured, Vitruvian
pose), or the official renders are read from the user's InteractVLM data folder (`body_rig`); SAM
encodes those renders once. Per image, MV-Loc answers one
question per object name and its masks are lifted onto the body model's vertices with the original's
soft barycentric vote (sigmoid of the clamped logits, facts §5).

With an object localizer (a second checkpoint, e.g. interactvlm-3d-oafford-lemon-piad, asked the demo's
object prompt), each object's mesh from the object registry is rendered from the object rig and
SAM-encoded once per mesh; its masks are lifted onto the mesh vertices, pixels with sigmoid > 0.3 only
(the original's object-mesh predictor).

InteractVLM reads the whole photo and knows nothing of person boxes. With one person (or none given)
the whole image is used; with several, each person's question is asked on a crop around the person
and the object, so the answer is about that person.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ivlm_core.backends.base import PERSON_LABEL, ContactBackend
from ivlm_core.backends.interactvlm import prompts
from ivlm_core.backends.interactvlm.body_rig import body_rig, trained_body_name, vertex_transfer
from ivlm_core.backends.interactvlm.checkpoint import architecture_from_config, inspect_checkpoint
from ivlm_core.backends.interactvlm.model import MVLocArchitecture
from ivlm_core.backends.interactvlm.mvloc import MODES, Localization, MVLoc, MVLocConfig
from ivlm_core.body import load_body_model
from ivlm_core.body.model import BodyModel
from ivlm_core.body.parts import PART_NAMES
from ivlm_core.objects.mesh import ObjectMesh
from ivlm_core.objects.registry import MAX_USER_FACES, ObjectRegistry
from ivlm_core.reconstruct import ReconstructConfig
from ivlm_core.render import OBJECT_VIEWS, LiftTables, Rasterizer, lift, render_object_views
from ivlm_core.render.lift import lift_like_original
from ivlm_core.types import CameraIntrinsics, ContactResult, Detection

PART_COVERAGE = 0.1  # a part is named when >= 10% of its vertices are in contact (facts §2)
CROP_MARGIN = 0.1  # fraction of the box size added on each side of a multi-person crop
MAX_OBJECT_RIGS = 64  # object meshes whose renders, SAM embeddings and lift tables are kept (LRU)
OBJECT_PIXEL_GATE = 0.3  # ObjectMeshContact3DPredictor lifts only pixels with sigmoid > 0.3
DEMO_2D_MASK_LOGIT = 0.5  # run_demo.py's h2dcontact overlay: `pred_masks > 0.5` on the logits


@dataclass
class HumanContact2D:
    """2D human contact with one object, at the photo's size (interactvlm-2d-hcontact)."""

    obj: Detection
    text: str  # the model's answer
    logits: np.ndarray  # (H, W) float32 mask logits (sigmoid for a probability)
    mask: np.ndarray  # (H, W) bool, logits > DEMO_2D_MASK_LOGIT as the official demo's overlay


class InteractVLMBackend(ContactBackend):
    """Per-vertex body contact from the InteractVLM model (GPU; the 13B model does not run on CPU)."""

    name = "interactvlm"

    def __init__(
        self,
        checkpoint: str = "",
        device: str = "",
        body_model: str = "",
        body_model_path: str | None = None,
        object_mesh_folder: str | None = None,
        max_user_faces: int = MAX_USER_FACES,
        mode: str = "fast",
        sam_checkpoint: str = "",
        clip_dir: str = "",
        object_checkpoint: str = "",
        answer_draft: str = "",
        max_new_tokens: int = 512,
        rasterizer_backend: str = "auto",
        localizer: MVLoc | None = None,
        object_localizer: MVLoc | None = None,
        parity: bool = False,
        interactvlm_data: str = "",
        body_correspondence: str = "",
        contact_2d_checkpoint: str = "",
        contact_2d_localizer: MVLoc | None = None,
        quantization: str = "",
    ) -> None:
        """checkpoint: human-contact InteractVLM folder (e.g. interactvlm-3d-hcontact-damon); sam_checkpoint /
        clip_dir only when it lacks those weights. object_checkpoint: optional object-contact folder (e.g.
        interactvlm-3d-oafford-lemon-piad), asked the demo's object prompt; without it object_probabilities
        stay empty. mode: "fast", "generate" or "original" (see MVLoc.localize). answer_draft: the fixed
        answer of checkpoints without free text (e.g. "Sure, the contact mask is [SEG]."), tried as a
        single pass. localizer / object_localizer: ready MVLoc objects instead of checkpoint folders.
        parity: reproduce the official outputs as closely as possible, for comparisons (slow): decoding
        as the original (mode "original", whatever `mode` says), eager attention, and the human lift
        computed step by step as the original (`render.lift.lift_like_original`, in the masks' dtype).

        The body (see `body_rig`): the checkpoint's trained body (SMPL-H for released checkpoints, from
        <body_model_path>/smplh/SMPLH_NEUTRAL.pkl or .npz) is what SAM sees, in its native frame, or the
        official renders and lift tables when interactvlm_data (InteractVLM's data folder) is set.
        body_model: the body the results' vertex ids refer to ("" = the trained body); another body
        only through a vertex correspondence: smpl from smplh is the identity, others need
        body_correspondence (a .npz 'matrix' (V_out, V_trained)); anything else is refused.
        contact_2d_checkpoint (or contact_2d_localizer): the 2D human-contact model
        (interactvlm-2d-hcontact) for `human_contact_2d`, asked the h2dcontact demo prompt.
        max_user_faces: user object meshes with more faces are decimated to this budget once, at load.
        quantization: "8bit" or "4bit" loads the language models through bitsandbytes (CUDA only; the
        13B model then fits a 16 GB GPU), "" keeps bf16.
        """
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if localizer is None and not checkpoint:
            raise ValueError(
                "the interactvlm backend needs its checkpoint folder: set backend_options "
                "'{checkpoint: /path/to/interactvlm-3d-hcontact-damon}' (weights are never downloaded)"
            )
        for given in (localizer, object_localizer):
            if given is not None and given.config.parity != parity:
                raise ValueError(f"parity={parity} but a given localizer was built with parity="
                                 f"{given.config.parity}; build it with MVLocConfig(parity={parity})")
        common = dict(
            device=device, sam_checkpoint=sam_checkpoint, clip_dir=clip_dir, max_new_tokens=max_new_tokens,
            parity=parity, quantization=quantization,
        )
        # Bodies first (seconds), so a missing model file fails before the checkpoint loads (minutes).
        arch = localizer.arch if localizer else _checkpoint_arch(checkpoint)
        self.render_body = _trained_body(trained_body_name(arch), body_model_path)
        out = body_model or self.render_body.name
        same = out == self.render_body.name
        self.body = self.render_body if same else load_body_model(out, body_model_path)
        self.transfer = vertex_transfer(self.render_body, self.body, body_correspondence)
        self.loc = localizer or MVLoc.from_checkpoint(
            MVLocConfig(checkpoint_dir=checkpoint, answer_draft=answer_draft, **common)
        )
        self.parity = parity
        self.mode = "original" if parity else mode
        device = str(self.loc.net.device)
        rasterizer = Rasterizer(self.loc.arch.mask_size, backend=rasterizer_backend, device=device)
        self.rig, rig_source = body_rig(self.render_body, rasterizer, interactvlm_data)
        self._evidence = [f"body rig: {rig_source}"]
        if self.transfer.target != self.transfer.source:
            self._evidence.append(f"contact mapped {self.transfer.source} -> {self.transfer.target}")
        self.loc.set_views("body", self.rig.images, self.rig.cam_params)
        self.object_loc = object_localizer
        if self.object_loc is None and object_checkpoint:
            object_config = MVLocConfig(
                checkpoint_dir=object_checkpoint, question=prompts.DEMO_OAFFORD_PROMPT, **common
            )
            self.object_loc = MVLoc.from_checkpoint(object_config)
        # A joint checkpoint (hcontact-ocontact: [HSEG] and [OSEG] in one answer) is its own object
        # localizer, unless a separate one is given.
        self.joint = self.object_loc is None and "[OSEG]" in self.loc.arch.seg_token_ids
        if self.joint:
            self.object_loc = self.loc
        self.loc_2d = contact_2d_localizer
        if self.loc_2d is None and contact_2d_checkpoint:
            config_2d = MVLocConfig(
                checkpoint_dir=contact_2d_checkpoint, question=prompts.DEMO_H2DCONTACT_PROMPT, **common
            )
            self.loc_2d = MVLoc.from_checkpoint(config_2d)
        self.objects = ObjectRegistry(user_folder=object_mesh_folder, max_user_faces=max_user_faces)
        # mesh id -> lift tables of its rig, least recently used first; at most MAX_OBJECT_RIGS are kept (with
        # their SAM embeddings): generic meshes change id with their size, so an unbounded cache would grow
        self._object_tables: OrderedDict[str, LiftTables] = OrderedDict()
        if self.object_loc is not None:
            size = self.object_loc.arch.mask_size
            self._object_rasterizer = Rasterizer(
                size, backend=rasterizer_backend, device=str(self.object_loc.net.device)
            )
        self._parts = [(name, self.body.part_vertex_ids(name)) for name in PART_NAMES]

    def estimate(
        self, image: np.ndarray, detections: Sequence[Detection], camera: CameraIntrinsics | None = None
    ) -> list[ContactResult]:
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8 or 0 in image.shape:
            raise ValueError(
                f"image must be a non-empty (H, W, 3) uint8 RGB array, got {image.shape} {image.dtype}"
            )
        people = [d for d in detections if d.label == PERSON_LABEL]
        objects = [d for d in detections if d.label != PERSON_LABEL]
        if not objects:
            return []
        whole = len(people) <= 1
        pairs = [(p, o) for p in (range(max(len(people), 1))) for o in objects]
        crops: dict[tuple[int, ...], list[tuple[int, Detection]]] = {}
        for p, o in pairs:
            box = (0, 0, image.shape[1], image.shape[0]) if whole else _crop_box(people[p], o, image.shape)
            crops.setdefault(box, []).append((p, o))
        results: list[ContactResult] = []
        for (x0, y0, x1, y1), members in crops.items():
            crop = np.ascontiguousarray(image[y0:y1, x0:x1])
            labels, objs = [o.label for _, o in members], [o for _, o in members]
            if self.joint:  # one answer per pair: [HSEG] on the body, [OSEG] on the object's mesh
                meshes, keys = self._object_views(objs, camera)
                found = self.loc.localize(crop, labels, "body", self.mode, object_views=keys)
                pairs_found = zip(meshes, found, strict=True)
                on_objects = [(m, self._lift_object(m, f.object_masks), f.text) for m, f in pairs_found]
            else:
                found = self.loc.localize(crop, labels, "body", self.mode)
                on_objects = self._localize_objects(crop, objs, camera)
            for (p, o), loc, obj_side in zip(members, found, on_objects, strict=True):
                result = self._result(p, o, loc, people[p] if people else None, whole)
                if obj_side is not None:
                    mesh, probs, text = obj_side
                    result.object_mesh, result.object_mesh_id = mesh, mesh.mesh_id
                    result.object_probabilities = probs
                    result.evidence.append(f"object answer: {text}")
                results.append(result)
        order = {(p, id(o)): i for i, (p, o) in enumerate(pairs)}
        return sorted(results, key=lambda r: order[(r.person_index, id(r.obj))])

    def _result(
        self, person: int, obj: Detection, loc: Localization, person_det: Detection | None, whole: bool
    ) -> ContactResult:
        evidence = [f"mvloc:{loc.path}", "whole image" if whole else "person crop", *self._evidence]
        if loc.masks.shape[0] == 0:
            probs = np.zeros(self.body.num_vertices, np.float32)
            reason = "the model's answer has no segmentation token"
        else:
            probs = self.transfer(self.lift_body(loc.masks))
            reason = ""
        return ContactResult(
            person_index=person,
            obj=obj,
            body_model=self.body.name,
            body_probabilities=probs.astype(np.float32),
            body_parts=self.named_parts(probs),
            object_mesh_id="",
            object_probabilities=np.zeros(0, np.float32),
            backend=self.name,
            evidence=evidence,
            reason=reason,
            person_box=None if person_det is None else person_det.box_xyxy.copy(),
            text=loc.text,
        )

    def _localize_objects(
        self, image: np.ndarray, objects: list[Detection], camera: CameraIntrinsics | None
    ) -> list[tuple[ObjectMesh, np.ndarray, str] | None]:
        """Per object: (its mesh, per-vertex contact probabilities, the answer), or None without an
        object localizer."""
        if self.object_loc is None:
            return [None] * len(objects)
        meshes, keys = self._object_views(objects, camera)
        found = self.object_loc.localize(image, [o.label for o in objects], keys, self.mode)
        pairs = zip(meshes, found, strict=True)
        return [(mesh, self._lift_object(mesh, loc.masks), loc.text) for mesh, loc in pairs]

    def _object_views(
        self, objects: list[Detection], camera: CameraIntrinsics | None
    ) -> tuple[list[ObjectMesh], list[str]]:
        """Each object's mesh and the object localizer's view key of its renders; each mesh is rendered
        and SAM-encoded on first use only. Cameras are encoded at distance 2 as the object demo does,
        at the render distance 1.5 for a joint model (as its ocontact training data)."""
        meshes = [self.objects.get(o.label, o.box_xyxy, camera) for o in objects]
        for mesh in meshes:
            if mesh.mesh_id in self._object_tables:
                self._object_tables.move_to_end(mesh.mesh_id)
                continue
            encoding = {"encoding_views": OBJECT_VIEWS} if self.joint else {}
            rig = render_object_views(self._object_rasterizer, mesh.vertices, mesh.faces, **encoding)
            self.object_loc.set_views(f"object:{mesh.mesh_id}", rig.images, rig.cam_params)
            self._object_tables[mesh.mesh_id] = rig.tables
        in_use = {m.mesh_id for m in meshes}
        stale = [k for k in self._object_tables if k not in in_use]  # least recently used first
        for old in stale[: max(0, len(self._object_tables) - MAX_OBJECT_RIGS)]:
            del self._object_tables[old]
            self.object_loc.views.pop(f"object:{old}", None)
        return meshes, [f"object:{m.mesh_id}" for m in meshes]

    def _lift_object(self, mesh: ObjectMesh, masks: torch.Tensor) -> np.ndarray:
        """(V, S, S) logits on the mesh's rig -> per-vertex probabilities, pixels with sigmoid > 0.3 only
        (the original's ObjectMeshContact3DPredictor); zeros when there are no masks."""
        if masks.shape[0] == 0:
            return np.zeros(mesh.vertices.shape[0], np.float32)
        p = torch.sigmoid(masks.float().clamp(-20, 20))
        probs = lift(p, self._object_tables[mesh.mesh_id], min_probability=OBJECT_PIXEL_GATE)
        return probs.float().cpu().numpy().astype(np.float32)

    def lift_body(self, masks: torch.Tensor) -> np.ndarray:
        """(V, S, S) mask logits on the body rig -> (render_body vertices,) float32 probabilities: the
        original's soft lift of sigmoid(clamp(logits, +-20)) with no threshold, computed on the masks'
        device (InteractVLM model/components.py, HumanContact3DPredictor)."""
        if self.parity:
            probs = lift_like_original(torch.sigmoid(masks.clamp(-20, 20)), self.rig.tables)
        else:
            probs = lift(torch.sigmoid(masks.float().clamp(-20, 20)), self.rig.tables)
        return probs.float().cpu().numpy()

    def human_contact_2d(self, image: np.ndarray, detections: Sequence[Detection]) -> list[HumanContact2D]:
        """Per object detection, the 2D model's human-contact mask at the photo's size (whole image: the
        mask covers every person; person detections are ignored). Needs contact_2d_checkpoint."""
        if self.loc_2d is None:
            raise ValueError(
                "2D human contact needs the 2D model: set contact_2d_checkpoint (interactvlm-2d-hcontact)"
            )
        objects = [d for d in detections if d.label != PERSON_LABEL]
        if not objects:
            return []
        found = self.loc_2d.localize_on_photo(np.asarray(image), [o.label for o in objects], self.mode)
        out = []
        no_mask = np.full(image.shape[:2], -20.0, np.float32)  # an answer without [SEG]: no contact
        for obj, loc in zip(objects, found, strict=True):
            logits = loc.masks[0].float().cpu().numpy() if loc.masks.shape[0] else no_mask
            out.append(HumanContact2D(obj, loc.text, logits, logits > DEMO_2D_MASK_LOGIT))
        return out

    def named_parts(self, probabilities: np.ndarray) -> dict[str, float]:
        """Parts with >= 10% of their vertices at probability >= 0.5 -> the part's mean probability."""
        contact = probabilities >= ReconstructConfig.contact_threshold  # 0.5, as the original's metrics
        return {
            name: float(probabilities[ids].mean())
            for name, ids in self._parts
            if ids.size and contact[ids].mean() >= PART_COVERAGE
        }

    def close(self) -> None:
        self.loc.views.clear()
        self.loc = None
        if self.object_loc is not None:
            self.object_loc.views.clear()
            self.object_loc = None
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def _checkpoint_arch(checkpoint: str) -> MVLocArchitecture:
    """The architecture a checkpoint folder's config.json describes (no tensor is read)."""
    return architecture_from_config(inspect_checkpoint(checkpoint).config)


def _trained_body(name: str, model_path: str | None) -> BodyModel:
    """The checkpoint's trained body, or ValueError saying which licensed files the backend needs."""
    try:
        return load_body_model(name, model_path)
    except ValueError as error:
        raise ValueError(
            f"the interactvlm checkpoint was trained on {name} renders and needs that body: {error}. "
            "Set body_model_path to the folder with your licensed model files"
        ) from error


def _crop_box(person: Detection, obj: Detection, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """Integer crop around the union of two boxes with CROP_MARGIN, clipped to the image."""
    b = np.concatenate(
        [np.minimum(person.box_xyxy[:2], obj.box_xyxy[:2]), np.maximum(person.box_xyxy[2:], obj.box_xyxy[2:])]
    )
    m = CROP_MARGIN * np.array([b[2] - b[0], b[3] - b[1]])
    x0, y0 = np.floor(np.maximum(b[:2] - m, 0)).astype(int)
    x1 = int(np.ceil(min(b[2] + m[0], shape[1])))
    y1 = int(np.ceil(min(b[3] + m[1], shape[0])))
    return int(x0), int(y0), max(x1, int(x0) + 1), max(y1, int(y0) + 1)
