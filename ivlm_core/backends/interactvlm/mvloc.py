"""MV-Loc, the Localize stage: photo + object name + view renders -> one contact mask per view.

    loc = MVLoc.from_checkpoint(MVLocConfig(checkpoint_dir="~/models/interactvlm-3d-hcontact-damon"))
    loc.set_views("body", rig.images, rig.cam_params)       # SAM encodes the renders once
    [res] = loc.localize(image, ["bench"], views="body")     # res.masks: (4, S, S) logits, res.text

Heavy work happens once: weights in the constructor, SAM embeddings of a rig in `set_views` (body
renders once per body model, object renders once per mesh), the system-prompt KV cache at start-up.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from transformers import CLIPImageProcessorPil, PreTrainedTokenizerBase

from ivlm_core.backends.interactvlm import prompts
from ivlm_core.backends.interactvlm.checkpoint import (
    CPU_PARAMETER_LIMIT,
    architecture_from_config,
    inspect_checkpoint,
    load_weights,
    precheck,
)
from ivlm_core.backends.interactvlm.generation import (
    Answer,
    Prefix,
    encode_prefix,
    generate,
    generate_original,
    split_prompt,
)
from ivlm_core.backends.interactvlm.model import (
    SAM_PIXEL_MEAN,
    InteractVLMNet,
    MVLocArchitecture,
    use_eager_attention,
)
from ivlm_core.backends.interactvlm.quantize import quantize_language_model, require_bitsandbytes
from ivlm_core.backends.interactvlm.tokenizer import load_tokenizer, tokenize_prompt

MODES = ("fast", "generate", "original")
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass
class MVLocConfig:
    """Where the weights are and how to run them. Paths are local; nothing is downloaded."""

    checkpoint_dir: str = ""  # InteractVLM HF folder (config.json, tokenizer, weights)
    sam_checkpoint: str = ""  # sam_vit_h_4b8939.pth, only if the checkpoint lacks SAM weights
    clip_dir: str = ""  # local openai/clip-vit-large-patch14, only if the checkpoint lacks CLIP weights
    device: str = ""  # "" = cuda when available, else cpu
    question: str = prompts.DEMO_HCONTACT_PROMPT  # `{class_name}` is replaced by the object name
    answer_draft: str = (
        ""  # expected answer for single-pass checkpoints, e.g. "Sure, the contact mask is [SEG]."
    )
    max_new_tokens: int = 512
    batch_size: int = 8  # questions decoded together
    # For comparing with the official outputs: eager attention everywhere; only the "original"
    # decoding mode is allowed (the backend also lifts as the original, `lift_like_original`).
    parity: bool = False
    # "8bit" / "4bit": the language model through bitsandbytes (CUDA only; `quantize`); "" = bf16.
    quantization: str = ""

    def resolved_device(self) -> torch.device:
        return torch.device(self.device or ("cuda" if torch.cuda.is_available() else "cpu"))


@dataclass
class Localization:
    """MV-Loc's output for one object name."""

    label: str
    text: str  # the generated answer, special tokens kept (e.g. "... the contact region is [SEG].</s>")
    masks: torch.Tensor  # (V, S, S) float32 logits, one per view; (0, S, S) when no seg token was produced
    path: str  # how the answer was obtained: "single_pass", "generate" or "original"
    # Joint models (localize with object_views): the [OSEG] masks on the object's renders, (0, S, S)
    # when the answer has none; None when no object views were asked for.
    object_masks: torch.Tensor | None = None


@dataclass
class ViewSet:
    """A rig's renders, their SAM embeddings and camera inputs."""

    renders: torch.Tensor  # (V, 3, S, S) float32 RGB 0..255 (kept for the original-style path)
    embeddings: torch.Tensor | None  # (V, 256, S/16, S/16); None: encoded where used (once per call)
    cam_params: torch.Tensor  # (V, 5) normalised camera parameters


def default_dtype(device: torch.device) -> torch.dtype:
    """bf16 on GPU (as the released demo), fp32 on CPU."""
    return torch.bfloat16 if device.type == "cuda" else torch.float32


class MVLoc:
    """The InteractVLM localizer around an `InteractVLMNet` and its tokenizer."""

    def __init__(
        self, net: InteractVLMNet, tokenizer: PreTrainedTokenizerBase, config: MVLocConfig | None = None
    ):
        self.net = net.eval()
        self.tokenizer = tokenizer
        self.config = config or MVLocConfig()
        self.arch: MVLocArchitecture = net.arch
        self.seg_ids = set(self.arch.seg_token_ids.values())
        if not self.seg_ids:
            raise ValueError("architecture has no segmentation token ids (seg_token_ids is empty)")
        self.clip_processor = CLIPImageProcessorPil(
            size={"shortest_edge": self.arch.vision.image_size},
            crop_size={"height": self.arch.vision.image_size, "width": self.arch.vision.image_size},
            image_mean=list(CLIP_MEAN),
            image_std=list(CLIP_STD),
        )
        if self.config.parity:
            use_eager_attention(self.net)
        self.views: dict[str, ViewSet] = {}
        self.last_answers: dict[str, list[int]] = {}  # label -> last answer ids, the "fast" mode's drafts
        before, _ = split_prompt(self.prompt_ids("object"))
        self._before = before
        self._system: Prefix | None = None

    # ---- construction -----------------------------------------------------------------------------
    @classmethod
    def from_checkpoint(cls, config: MVLocConfig) -> MVLoc:
        """Check the folder, config, tokenizer and device, then build and load (the long part)."""
        device = config.resolved_device()
        require_bitsandbytes(config.quantization, device)
        files = inspect_checkpoint(config.checkpoint_dir)
        arch = architecture_from_config(files.config)
        if device.type == "cpu" and arch.parameter_count() > CPU_PARAMETER_LIMIT:
            raise ValueError(
                f"{files.folder.name} has ~{arch.parameter_count() / 1e9:.0f}B parameters; on this CPU-only "
                "machine it needs >50 GB of RAM and minutes per answer. Run it on a CUDA device "
                "(device: cuda) or use the CPU keypoint backend."
            )
        tokenizer = load_tokenizer(files.folder, arch)
        precheck(files, arch, config.sam_checkpoint or None, config.clip_dir or None)
        if not config.quantization:
            net = build_net(arch, device)
            load_weights(net, files, config.sam_checkpoint or None, config.clip_dir or None)
            return cls(net, tokenizer, config)
        # Quantised: bf16 in host memory, each decoder layer quantised onto the GPU, then the rest.
        net = build_net(arch, "cpu", torch.bfloat16)
        load_weights(net, files, config.sam_checkpoint or None, config.clip_dir or None)
        quantize_language_model(net, config.quantization, device)
        return cls(net.to(device), tokenizer, config)

    # ---- inputs -----------------------------------------------------------------------------------
    def prompt_ids(self, label: str) -> list[int]:
        """Token ids (with the -200 image placeholder) of the inference prompt for one object name."""
        question = self.config.question.format(class_name=prompts.object_name(label))
        return tokenize_prompt(prompts.conversation(question), self.tokenizer)

    def answer_ids(self, label: str, answer: str) -> list[int]:
        """The ids `answer` has after the prompt in the full conversation (ends with EOS)."""
        question = self.config.question.format(class_name=prompts.object_name(label))
        prompt = self.prompt_ids(label)
        full = tokenize_prompt(prompts.conversation(question, answer), self.tokenizer)
        if full[: len(prompt)] != prompt:
            raise ValueError(f"answer {answer!r} does not tokenize as a continuation of the prompt")
        return full[len(prompt) :]

    def image_tensor(self, image: np.ndarray) -> torch.Tensor:
        """(H, W, 3) uint8 RGB -> (1, 3, 224, 224) CLIP input (run_demo.py's CLIPImageProcessor)."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"image must be (H, W, 3) uint8 RGB, got {image.shape} {image.dtype}")
        pixels = self.clip_processor(images=image, return_tensors="pt")["pixel_values"]
        return pixels.to(self.net.device)

    @torch.no_grad()
    def set_views(self, key: str, renders: np.ndarray, cam_params: np.ndarray) -> None:
        """SAM-encode a rig's renders once and keep them under `key`.

        renders: (V, S, S, 3) uint8 RGB; cam_params: (V, 5) normalised (`ivlm_core.render.rig_cam_params`).
        """
        v, s = self.arch.num_views, self.arch.mask_size
        if renders.shape != (v, s, s, 3):
            raise ValueError(f"renders must be ({v}, {s}, {s}, 3) uint8 for this model, got {renders.shape}")
        if cam_params.shape != (v, 5):
            raise ValueError(f"cam_params must be ({v}, 5), got {cam_params.shape}")
        dev = self.net.device
        r = torch.from_numpy(np.ascontiguousarray(renders)).permute(0, 3, 1, 2).float().to(dev)
        self.views[key] = ViewSet(
            r, self.net.encode_renders(r), torch.as_tensor(cam_params, device=dev).float()
        )

    # ---- the stage --------------------------------------------------------------------------------
    @torch.no_grad()
    def localize(
        self,
        image: np.ndarray,
        labels: list[str],
        views: str | Sequence[str],
        mode: str = "fast",
        object_views: Sequence[str] | None = None,
    ) -> list[Localization]:
        """Contact masks for each object name in `labels`, on the renders set under `views` (one key for
        all labels, or one key per label, e.g. each object's own mesh renders).

        mode: "fast" (prefix reuse + batching + verified single pass), "generate" (prefix reuse +
        batching, plain KV-cached greedy) or "original" (as the original code: no KV cache, the renders
        re-encoded by SAM on every call). All three give the same answers.
        object_views: for a joint human + object model (token_type Gen-Hu-Obj), one key per label of
        that object's renders: the answer's [OSEG] is decoded there (`Localization.object_masks`) and
        its [HSEG] (or [SEG]) on `views`, each through its own half of the attention splitter. Without
        it, the first segmentation token is decoded on `views` (the original code's routing).
        """
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if self.config.parity and mode != "original":
            raise ValueError(f"parity mode decodes as the original only (mode 'original'), got {mode!r}")
        keys = [views] * len(labels) if isinstance(views, str) else list(views)
        object_keys = None if object_views is None else list(object_views)
        for what, given in (("view keys", keys), ("object view keys", object_keys)):
            if given is not None and len(given) != len(labels):
                raise ValueError(f"got {len(labels)} labels but {len(given)} {what}")
        if object_keys is not None and "[OSEG]" not in self.arch.seg_token_ids:
            raise ValueError(
                "object_views needs a joint human + object checkpoint (token_type Gen-Hu-Obj with an "
                f"[OSEG] token); this one has {sorted(self.arch.seg_token_ids)}"
            )
        unknown = sorted(set(keys + (object_keys or [])) - set(self.views))
        if unknown:
            raise ValueError(
                f"no renders set under {unknown}; call set_views first (have {list(self.views)})"
            )
        features = self.net.encode_image(self.image_tensor(image))[0]
        eos = self.tokenizer.eos_token_id
        if mode == "original":
            answers = [
                generate_original(
                    self.net, features, self.prompt_ids(lb), self.seg_ids, eos, self.config.max_new_tokens
                )
                for lb in labels
            ]
        else:
            answers = self._generate(features, labels, drafts=mode == "fast")
        return self._masks(labels, answers, keys, object_keys, reencode=mode == "original")

    @torch.no_grad()
    def localize_on_photo(
        self, image: np.ndarray, labels: list[str], mode: str = "fast"
    ) -> list[Localization]:
        """2D human contact (`interactvlm-2d-hcontact`): SAM segments the photo itself; per object name,
        (1, H, W) float32 mask logits at the photo's size.

        As run_demo.py's h2dcontact branch: the photo resized so its longest side is the SAM input size
        (ResizeLongestSide, PIL bilinear), normalised, zero-padded (in normalised units) to a square;
        the logits upsampled to that square in float32, cropped to the resized photo and resized to the
        photo (segment_anything `postprocess_masks`). Needs a single-view model without camera input.
        """
        if self.arch.num_views != 1 or self.arch.multiview_cam_cond:
            raise ValueError(
                "localize_on_photo needs a 2D contact checkpoint (one view, no camera conditioning, e.g. "
                f"interactvlm-2d-hcontact); this one has {self.arch.num_views} camera-conditioned views"
            )
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8 or 0 in image.shape:
            raise ValueError(f"image must be a non-empty (H, W, 3) uint8 RGB array, got {image.shape}")
        from PIL import Image

        s, (h, w) = self.arch.mask_size, image.shape[:2]
        scale = s / max(h, w)
        new_h, new_w = int(h * scale + 0.5), int(w * scale + 0.5)
        resized = np.array(Image.fromarray(image).resize((new_w, new_h), Image.BILINEAR))
        padded = torch.tensor(SAM_PIXEL_MEAN).view(1, 3, 1, 1).repeat(1, 1, s, s)  # 0 once normalised
        padded[0, :, :new_h, :new_w] = torch.from_numpy(resized).permute(2, 0, 1).float()
        key = "__photo__"
        padded = padded.to(self.net.device)
        no_camera = torch.zeros(1, 5, device=padded.device)  # unused: the 2D model has no camera encoder
        # the original-style path encodes the views itself on every call: the photo is encoded once either way
        embeddings = None if mode == "original" else self.net.encode_renders(padded)
        self.views[key] = ViewSet(padded, embeddings, no_camera)
        try:
            found = self.localize(image, labels, key, mode)
        finally:
            del self.views[key]
        for loc in found:
            if loc.masks.shape[0]:
                cropped = loc.masks[:, :new_h, :new_w]
                loc.masks = F.interpolate(cropped[None], (h, w), mode="bilinear", align_corners=False)[0]
            else:
                loc.masks = torch.zeros((0, h, w))
        return found

    def _generate(self, features: torch.Tensor, labels: list[str], drafts: bool) -> list[Answer]:
        if self._system is None:
            self._system = encode_prefix(self.net, self._before, features[:0])
        prefix = _extend(self.net, self._system, features)
        answers: list[Answer] = []
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        for start in range(0, len(labels), self.config.batch_size):
            chunk = labels[start : start + self.config.batch_size]
            suffixes = [split_prompt(self.prompt_ids(lb))[1] for lb in chunk]
            chunk_drafts = [self._draft(lb) for lb in chunk] if drafts else None
            got = generate(
                self.net,
                prefix,
                suffixes,
                self.seg_ids,
                self.tokenizer.eos_token_id,
                pad,
                self.config.max_new_tokens,
                chunk_drafts,
            )
            for lb, a in zip(chunk, got, strict=True):
                self.last_answers[lb] = a.token_ids
            answers.extend(got)
        return answers

    def _draft(self, label: str) -> list[int] | None:
        if label in self.last_answers:
            return self.last_answers[label]
        if self.config.answer_draft:
            return self.answer_ids(label, self.config.answer_draft)
        return None

    def _masks(
        self,
        labels: list[str],
        answers: list[Answer],
        keys: list[str],
        object_keys: list[str] | None,
        reencode: bool,
    ) -> list[Localization]:
        """SAM masks for every routed segmentation token; one decode per set of renders (re-encoded by
        SAM first when `reencode`, as the original does on every call)."""
        oseg = self.arch.seg_token_ids.get("[OSEG]")
        jobs: dict[str, list[tuple[int, str, int, torch.Tensor]]] = {}  # key -> (row, side, token, state)
        for i, answer in enumerate(answers):
            if object_keys is None:  # the original's routing: the first token, on `views`
                routed = [("human", keys[i], answer.segs[0] if answer.segs else None)]
            else:
                human = next((sg for sg in answer.segs if sg[0] != oseg), None)
                obj = next((sg for sg in answer.segs if sg[0] == oseg), None)
                routed = [("human", keys[i], human), ("object", object_keys[i], obj)]
            for side, key, sg in routed:
                if sg is not None:
                    jobs.setdefault(key, []).append((i, side, *sg))
        masks: dict[tuple[int, str], torch.Tensor] = {}
        for key, rows in jobs.items():
            view = self.views[key]
            reencoded = reencode or view.embeddings is None
            embeddings = self.net.encode_renders(view.renders) if reencoded else view.embeddings
            seg = self.net.seg_embedding(torch.stack([state for *_, state in rows]))
            tokens = [self.net.view_tokens(seg[j : j + 1], view.cam_params, r[2]) for j, r in enumerate(rows)]
            logits = self.net.decode_masks(torch.cat(tokens), embeddings)
            masks.update({(i, side): logits[j] for j, (i, side, _, _) in enumerate(rows)})
        empty = torch.zeros((0, self.arch.mask_size, self.arch.mask_size))
        return [
            Localization(
                label,
                self.tokenizer.decode(a.token_ids, skip_special_tokens=False),
                masks.get((i, "human"), empty),
                a.path,
                masks.get((i, "object"), empty) if object_keys is not None else None,
            )
            for i, (label, a) in enumerate(zip(labels, answers, strict=True))
        ]


def _extend(net: InteractVLMNet, system: Prefix, features: torch.Tensor) -> Prefix:
    """The system-prompt cache extended by this image's features (the system part is never recomputed)."""
    cache = copy.deepcopy(system.cache)
    net.llava.model(
        inputs_embeds=features[None].to(net.dtype),
        position_ids=torch.arange(system.length, system.length + features.shape[0], device=net.device)[None],
        past_key_values=cache,
        use_cache=True,
    )
    return Prefix(cache, system.length + features.shape[0])


def build_net(
    arch: MVLocArchitecture, device: torch.device | str, dtype: torch.dtype | None = None
) -> InteractVLMNet:
    """Random-init network directly on `device` in `dtype` (default: bf16 on GPU, fp32 on CPU)."""
    device = torch.device(device)
    dtype = dtype or default_dtype(device)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            net = InteractVLMNet(arch)
    finally:
        torch.set_default_dtype(previous)
    net.sam_mean, net.sam_std = net.sam_mean.float(), net.sam_std.float()
    return net.eval()
