"""LoRA fine-tuning of MV-Loc on DAMON-style data (image, object label, per-vertex body contact).

Targets are made the original's way (facts §3a, §6): the contact vertices are rendered into the 4
canonical body views through our rasterizer (`labels_to_masks`, a face is positive when
`min_vertices` of its corners are), pixels off the body are ignored (-1). The question/answer pair is
drawn from the original lists (parts answers when body-part names are given, the simple lists with
probability `part_dropout`). Losses and weights are the original's: LM cross-entropy x1, per-view
focal BCE (alpha 0.5, gamma 2) x2, dice x1, and the lifted 3D focal loss (alpha 0.25) + 0.01 mean x3.
LoRA r=8, alpha=16, dropout 0.05 on the LLM's q_proj/v_proj; lm_head, embed_tokens, text_hidden_fcs,
the SAM mask decoder and the camera encoder train fully.

Runs are resumable: `out_dir/last/` holds the trainable weights (safetensors), the optimizer state and
the step; `train(..., resume=True)` continues from it.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from peft import LoraConfig, get_peft_model_state_dict, inject_adapter_in_model, set_peft_model_state_dict
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from ivlm_core.backends.interactvlm import prompts
from ivlm_core.backends.interactvlm.mvloc import MVLoc
from ivlm_core.backends.interactvlm.tokenizer import IGNORE_INDEX, IMAGE_TOKEN_INDEX, tokenize_prompt
from ivlm_core.render import RigRender, labels_to_masks, lift

log = logging.getLogger(__name__)
TRAINABLE = (
    "lm_head",
    "embed_tokens",
    "text_hidden_fcs",
    "mask_decoder",
    "cam_pose_encoder",
    "attention_splitter",
)
IGNORE_LABEL = -1.0


@dataclass
class ContactSample:
    """One training example: a photo, the object, and which body vertices touch it."""

    image: np.ndarray  # (H, W, 3) uint8 RGB
    label: str  # object name, e.g. "bench"
    contact: np.ndarray  # (V,) bool on the body model the rig was rendered from
    body_parts: list[str] = field(default_factory=list)  # names for the parts answer; [] = simple answer


@dataclass
class TrainConfig:
    out_dir: str
    steps: int = 1000
    lr: float = 3e-4  # train.py default
    weight_decay: float = 0.0
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    lora_targets: tuple[str, ...] = ("q_proj", "v_proj")
    ce_weight: float = 1.0
    bce_weight: float = 2.0
    bce_alpha: float = 0.5
    dice_weight: float = 1.0
    contact3d_weight: float = 3.0
    part_dropout: float = 0.5  # hC_body_part_dropout_prob of the hcontact-damon-fix config
    min_vertices: int = 2  # face inclusion in target masks: mv2 rule of hcontact-damon-fix (3 = older data)
    fixed_question: bool = False  # always the first question/answer of each list (the demo prompt)
    save_every: int = 100
    seed: int = 0


def target_masks(
    contact: np.ndarray, rig: RigRender, faces: np.ndarray, min_vertices: int = 2
) -> torch.Tensor:
    """Per-view training masks: (V, S, S) float32, 1 contact, 0 body, -1 off the body (ignored)."""
    masks = labels_to_masks(contact, rig.tables, faces, min_vertices).astype(np.float32)
    masks[~rig.masks] = IGNORE_LABEL
    return torch.from_numpy(masks)


def conversation_ids(loc: MVLoc, sample: ContactSample, rng: random.Random, cfg: TrainConfig):
    """(input ids with the image placeholder, labels with IGNORE_INDEX on the prompt) for one sample."""
    name = prompts.object_name(sample.label)
    use_parts = bool(sample.body_parts) and rng.random() >= cfg.part_dropout
    questions = prompts.HCONTACT_PARTS_QUESTIONS if use_parts else prompts.HCONTACT_QUESTIONS
    answers = prompts.HCONTACT_PARTS_ANSWERS if use_parts else prompts.HCONTACT_ANSWERS
    pick = (lambda items: items[0]) if cfg.fixed_question else rng.choice
    question = pick(questions).format(class_name=name)
    answer = (
        pick(answers).format(body_parts=", ".join(sample.body_parts)).replace("[HTOKEN]", prompts.SEG_TOKEN)
    )
    prompt = tokenize_prompt(prompts.conversation(question), loc.tokenizer)
    full = tokenize_prompt(prompts.conversation(question, answer), loc.tokenizer)
    labels = [IGNORE_INDEX] * len(prompt) + full[len(prompt) :]
    return full, labels


def focal_bce(logits: torch.Tensor, target: torch.Tensor, alpha: float, gamma: float = 2.0) -> torch.Tensor:
    """Mean over views of the focal BCE on valid pixels; logits/target: (V, S, S)."""
    losses = []
    for lg, tg in zip(logits, target, strict=True):
        valid = tg != IGNORE_LABEL
        if not valid.any():
            losses.append(lg.sum() * 0)
            continue
        bce = F.binary_cross_entropy_with_logits(lg[valid], tg[valid], reduction="none")
        losses.append((alpha * (1 - torch.exp(-bce)) ** gamma * bce).mean())
    return torch.stack(losses).mean()


def dice(logits: torch.Tensor, target: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Mean over views of 1 - dice on sigmoid masks, valid pixels only; views without contact count 0."""
    losses = []
    for lg, tg in zip(logits.sigmoid(), target, strict=True):
        valid = tg != IGNORE_LABEL
        p, t = lg[valid], tg[valid]
        if t.numel() == 0 or t.sum() == 0:
            losses.append(lg.sum() * 0)
            continue
        losses.append(1 - (2 * (p * t).sum() + eps) / (p.sum() + t.sum() + eps))
    return torch.stack(losses).mean()


def contact3d_loss(
    logits: torch.Tensor, gt: torch.Tensor, rig: RigRender, alpha: float = 0.25
) -> torch.Tensor:
    """HumanContact3DLoss: lift sigmoid(clamp(logits, ±20)) to vertices, focal BCE + 0.01 * mean."""
    pred = lift(torch.sigmoid(logits.clamp(-20, 20)), rig.tables).clamp(1e-6, 1 - 1e-6)
    bce = F.binary_cross_entropy(pred, gt.to(pred.dtype), reduction="none")
    return (alpha * (1 - torch.exp(-bce)) ** 2 * bce).mean() + 0.01 * pred.mean()


def sample_loss(
    loc: MVLoc,
    sample: ContactSample,
    rig: RigRender,
    faces: np.ndarray,
    cfg: TrainConfig,
    rng: random.Random,
    views: str = "body",
) -> dict[str, torch.Tensor]:
    """Teacher-forced forward of one sample and its weighted losses ("loss" is the total)."""
    net = loc.net
    ids, labels = conversation_ids(loc, sample, rng, cfg)
    i = ids.index(IMAGE_TOKEN_INDEX)
    feats = net.encode_image(loc.image_tensor(sample.image))  # (1, 256, hidden)
    dev = net.device
    before = net.embed_tokens(torch.tensor([ids[:i]], device=dev))
    after = net.embed_tokens(torch.tensor([ids[i + 1 :]], device=dev))
    embeds = torch.cat([before, feats.to(before.dtype), after], dim=1)
    full_labels = torch.tensor([labels[:i] + [IGNORE_INDEX] * feats.shape[1] + labels[i + 1 :]], device=dev)
    hidden = net.llava.model(inputs_embeds=embeds, use_cache=False).last_hidden_state
    logits = net.llava.lm_head(hidden)
    ce = F.cross_entropy(logits[0, :-1].float(), full_labels[0, 1:], ignore_index=IGNORE_INDEX)
    if cfg.bce_weight == cfg.dice_weight == cfg.contact3d_weight == 0:  # text-only warm-up
        return {"ce": cfg.ce_weight * ce, "loss": cfg.ce_weight * ce}
    seg_pos = [p for p, t in enumerate(full_labels[0].tolist()) if t in loc.seg_ids]
    viewset = loc.views[views]
    seg = net.seg_embedding(hidden[0, seg_pos[0] - 1][None])  # the state that predicts [SEG]
    tokens = net.view_tokens(seg, viewset.cam_params, full_labels[0, seg_pos[0]].item())
    mask_logits = net.decode_masks(tokens, viewset.embeddings)[0]
    target = target_masks(sample.contact, rig, faces, cfg.min_vertices).to(dev)
    out = {
        "ce": cfg.ce_weight * ce,
        "bce": cfg.bce_weight * focal_bce(mask_logits, target, cfg.bce_alpha),
        "dice": cfg.dice_weight * dice(mask_logits, target),
        "contact3d": cfg.contact3d_weight
        * contact3d_loss(mask_logits, torch.as_tensor(sample.contact, dtype=torch.float32, device=dev), rig),
    }
    out["loss"] = sum(out.values())
    return out


def add_lora(loc: MVLoc, cfg: TrainConfig) -> list[torch.nn.Parameter]:
    """Inject LoRA into the LLM's attention projections and mark the original's trainable modules.

    Returns the trainable parameters. The vision tower, projector and SAM encoder stay frozen.
    """
    net = loc.net
    targets = [
        name
        for name, m in net.named_modules()
        if isinstance(m, torch.nn.Linear)
        and name.startswith("llava.model.language_model.")
        and name.rsplit(".", 1)[-1] in cfg.lora_targets
    ]
    lora = LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=targets,
        bias="none",
    )
    inject_adapter_in_model(lora, net)
    params = []
    for name, p in net.named_parameters():
        p.requires_grad = "lora_" in name or any(t in name for t in TRAINABLE)
        if p.requires_grad:
            params.append(p)
    return params


def trainable_state(loc: MVLoc) -> dict[str, torch.Tensor]:
    """LoRA adapters + fully trained modules, in our naming, as contiguous CPU tensors."""
    net = loc.net
    state = {f"lora::{k}": v for k, v in get_peft_model_state_dict(net).items()}
    for k, v in net.state_dict().items():
        if "lora_" not in k and any(t in k for t in TRAINABLE):
            state[k] = v
    return {k: v.detach().cpu().contiguous() for k, v in state.items()}


def load_trainable_state(loc: MVLoc, path: str | Path) -> None:
    """Load `trainable_state` from a safetensors file into a model that already has LoRA injected."""
    state = load_file(str(path))
    lora = {k.removeprefix("lora::"): v for k, v in state.items() if k.startswith("lora::")}
    result = set_peft_model_state_dict(loc.net, lora)
    if getattr(result, "unexpected_keys", None):
        raise ValueError(f"{path}: LoRA keys do not match this model: {result.unexpected_keys[:5]}")
    rest = {k: v for k, v in state.items() if not k.startswith("lora::")}
    unexpected = loc.net.load_state_dict(rest, strict=False).unexpected_keys
    if unexpected:
        raise ValueError(f"{path}: unexpected keys {unexpected[:5]} (checkpoint from another architecture?)")


def train(
    loc: MVLoc,
    samples: Sequence[ContactSample],
    rig: RigRender,
    faces: np.ndarray,
    cfg: TrainConfig,
    resume: bool = True,
    views: str = "body",
) -> list[float]:
    """Fine-tune `loc` in place; returns the per-step total losses of this run.

    `loc.views[views]` must hold the SAM embeddings of `rig` (set_views with rig.images, rig.cam_params).
    """
    if not samples:
        raise ValueError("no training samples")
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if not any("lora_" in n for n, _ in loc.net.named_parameters()):
        params = add_lora(loc, cfg)
    else:
        params = [p for p in loc.net.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    start = 0
    last = out / "last"
    if resume and (last / "state.json").is_file():
        load_trainable_state(loc, last / "trainable.safetensors")
        opt.load_state_dict(torch.load(last / "optimizer.pt", weights_only=True))
        start = json.loads((last / "state.json").read_text())["step"]
        log.info("resumed from %s at step %d", last, start)
    rng = random.Random(cfg.seed + start)
    loc.net.train()
    losses = []
    bar = tqdm(range(start, cfg.steps), desc="mvloc train", initial=start, total=cfg.steps)
    for step in bar:
        sample = samples[step % len(samples)]
        parts = sample_loss(loc, sample, rig, faces, cfg, rng, views)
        opt.zero_grad(set_to_none=True)
        parts["loss"].backward()
        opt.step()
        losses.append(float(parts["loss"].detach()))
        bar.set_postfix({k: f"{float(v.detach()):.3f}" for k, v in parts.items()})
        if (step + 1) % cfg.save_every == 0 or step + 1 == cfg.steps:
            save_training_state(loc, opt, step + 1, cfg, last)
    loc.net.eval()
    return losses


def save_training_state(
    loc: MVLoc, opt: torch.optim.Optimizer, step: int, cfg: TrainConfig, folder: Path
) -> None:
    """Write trainable weights, optimizer and step atomically enough for resuming (tmp dir + rename)."""
    tmp = folder.with_name(folder.name + ".tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    save_file(trainable_state(loc), tmp / "trainable.safetensors")
    torch.save(opt.state_dict(), tmp / "optimizer.pt")
    (tmp / "state.json").write_text(json.dumps({"step": step, "config": asdict(cfg)}, default=str))
    if folder.exists():
        for f in folder.iterdir():
            f.unlink()
        folder.rmdir()
    tmp.rename(folder)
    log.info("saved step %d to %s", step, folder)


def load_manifest(path: str | Path, num_vertices: int) -> list[ContactSample]:
    """DAMON-style samples from a JSON-lines file, one object of one image per line:

        {"image": "img/0001.jpg", "label": "bench", "contact_vertices": [12, 13, ...],
         "body_parts": ["left hand"]}

    `contact_vertices` index the body model used for training (its topology: anny's for the default);
    `"contact": "x.npy"` (a (V,) 0/1 array) may replace them. Relative paths are relative to the file.
    """
    from PIL import Image

    path = Path(path)
    samples = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        missing = [k for k in ("image", "label") if k not in row]
        if missing or not ({"contact_vertices", "contact"} & row.keys()):
            raise ValueError(
                f"{path}:{n}: needs image, label and contact_vertices (or contact); missing {missing}"
            )
        contact = np.zeros(num_vertices, bool)
        if "contact" in row:
            contact = np.load(path.parent / row["contact"]).astype(bool).reshape(-1)
        else:
            ids = np.asarray(row["contact_vertices"], dtype=np.int64)
            if ids.size and (ids.min() < 0 or ids.max() >= num_vertices):
                raise ValueError(f"{path}:{n}: vertex ids outside [0, {num_vertices}); wrong body model?")
            contact[ids] = True
        if contact.shape != (num_vertices,):
            raise ValueError(f"{path}:{n}: contact has {contact.size} entries, the body model {num_vertices}")
        image = np.asarray(Image.open(path.parent / row["image"]).convert("RGB"))
        samples.append(ContactSample(image, row["label"], contact, list(row.get("body_parts", []))))
    if not samples:
        raise ValueError(f"{path} holds no samples")
    return samples


def export_checkpoint(loc: MVLoc, folder: str | Path, config: dict, max_shard_bytes: int = 5 * 2**30) -> None:
    """Write the fine-tuned model as a plain InteractVLM checkpoint (LoRA merged into q/v_proj, original
    key names, safetensors shards, tokenizer), loadable by `MVLoc.from_checkpoint` and the original code
    (what `merge_lora_weights_and_save_hf_model.py` does). `config`: the config.json to write.

    The adapters are merged for the export and unmerged again, so training can go on.
    """
    from peft.tuners.lora import LoraLayer

    from ivlm_core.backends.interactvlm.checkpoint import save_original_layout

    layers = [m for m in loc.net.modules() if isinstance(m, LoraLayer)]
    for layer in layers:
        layer.merge()
    try:
        state = {}
        for key, value in loc.net.state_dict().items():
            if "lora_" in key:
                continue
            state[key.replace(".base_layer.", ".")] = value
        save_original_layout(loc.net, folder, config, max_shard_bytes, state=state)
    finally:
        for layer in layers:
            layer.unmerge()
    loc.tokenizer.save_pretrained(folder)
