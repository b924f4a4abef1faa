"""Reading released InteractVLM checkpoints (HF `save_pretrained` layout of `InteractVLMForCausalLM`).

Three sources, all local folders/files named in the config (nothing is ever downloaded):
- the InteractVLM checkpoint folder: config.json, tokenizer files, weights as `model.safetensors`,
  `pytorch_model.bin` or sharded with an `*.index.json`;
- optionally SAM ViT-H (`sam_vit_h_4b8939.pth`, segment_anything key layout) for SAM weights the
  checkpoint lacks;
- optionally a CLIP ViT-L/14 folder (HF layout) for vision-tower weights the checkpoint lacks (LLaVA
  code loads CLIP separately, so some checkpoints do not contain it).

Every check that can fail (files, config fields, key sets, tokenizer, device size) runs before any
tensor is read, so a wrong folder fails in seconds with a message that says what to fix.
"""

from __future__ import annotations

import json
import pickle
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import CLIPVisionConfig, LlamaConfig, SamConfig

from ivlm_core.backends.interactvlm.configs import clip_vit_l14_config, sam_vit_h_config
from ivlm_core.backends.interactvlm.model import InteractVLMNet, MVLocArchitecture

# (original regex, our replacement, our regex, original replacement); the first match wins in each
# direction. Original names: LISA/InteractVLM modules, segment_anything for SAM. Ours: `InteractVLMNet`.
_N = r"(\d+)"
_MLP = r"(output_hypernetworks_mlps\.\d+|iou_prediction_head)"
_SAM_RULES = [
    (r"image_encoder\.patch_embed\.proj\.", "vision_encoder.patch_embed.projection."),
    (r"image_encoder\.pos_embed$", "vision_encoder.pos_embed"),
    (rf"image_encoder\.blocks\.{_N}\.norm{_N}\.", r"vision_encoder.layers.\1.layer_norm\2."),
    (rf"image_encoder\.blocks\.{_N}\.", r"vision_encoder.layers.\1."),
    (r"image_encoder\.neck\.0\.", "vision_encoder.neck.conv1."),
    (r"image_encoder\.neck\.1\.", "vision_encoder.neck.layer_norm1."),
    (r"image_encoder\.neck\.2\.", "vision_encoder.neck.conv2."),
    (r"image_encoder\.neck\.3\.", "vision_encoder.neck.layer_norm2."),
    (
        r"prompt_encoder\.pe_layer\.positional_encoding_gaussian_matrix$",
        "shared_image_embedding.positional_embedding",
    ),
    (rf"prompt_encoder\.point_embeddings\.{_N}\.", r"prompt_encoder.point_embed.\1."),
    (r"prompt_encoder\.mask_downscaling\.0\.", "prompt_encoder.mask_embed.conv1."),
    (r"prompt_encoder\.mask_downscaling\.1\.", "prompt_encoder.mask_embed.layer_norm1."),
    (r"prompt_encoder\.mask_downscaling\.3\.", "prompt_encoder.mask_embed.conv2."),
    (r"prompt_encoder\.mask_downscaling\.4\.", "prompt_encoder.mask_embed.layer_norm2."),
    (r"prompt_encoder\.mask_downscaling\.6\.", "prompt_encoder.mask_embed.conv3."),
    (r"prompt_encoder\.", "prompt_encoder."),
    (
        rf"mask_decoder\.transformer\.layers\.{_N}\.norm{_N}\.",
        r"mask_decoder.transformer.layers.\1.layer_norm\2.",
    ),
    (r"mask_decoder\.transformer\.norm_final_attn\.", "mask_decoder.transformer.layer_norm_final_attn."),
    (r"mask_decoder\.output_upscaling\.0\.", "mask_decoder.upscale_conv1."),
    (r"mask_decoder\.output_upscaling\.1\.", "mask_decoder.upscale_layer_norm."),
    (r"mask_decoder\.output_upscaling\.3\.", "mask_decoder.upscale_conv2."),
    (rf"mask_decoder\.{_MLP}\.layers\.0\.", r"mask_decoder.\1.proj_in."),
    (rf"mask_decoder\.{_MLP}\.layers\.1\.", r"mask_decoder.\1.layers.0."),
    (rf"mask_decoder\.{_MLP}\.layers\.2\.", r"mask_decoder.\1.proj_out."),
    (r"mask_decoder\.", "mask_decoder."),
]
KEY_MAP: list[tuple[str, str]] = [
    (r"model\.embed_tokens\.", "llava.model.language_model.embed_tokens."),
    (r"model\.layers\.", "llava.model.language_model.layers."),
    (r"model\.norm\.", "llava.model.language_model.norm."),
    (r"lm_head\.", "llava.lm_head."),
    (r"model\.mm_projector\.", "llava.model.multi_modal_projector."),
    (r"model\.vision_tower\.vision_tower\.vision_model\.", "llava.model.vision_tower."),
    (r"model\.text_hidden_fcs\.", "text_hidden_fcs."),
    (r"cam_pose_encoder\.", "cam_pose_encoder."),
    (r"attention_splitter\.", "attention_splitter."),
    *[(r"model\.visual_model\." + a, "sam." + b) for a, b in _SAM_RULES],
]


def _invert(pattern: str, repl: str) -> tuple[re.Pattern, str]:
    """The reverse rule of (original regex, our replacement): groups become \\1, \\2 the other way."""
    groups = re.findall(r"\((?:[^()]|\([^()]*\))*\)", pattern)
    rx = re.escape(repl)
    for i, g in enumerate(groups):
        rx = rx.replace(re.escape(f"\\{i + 1}"), g)
    out = pattern
    for i, g in enumerate(groups):
        out = out.replace(g, f"\\{i + 1}", 1)
    return re.compile("^" + rx), out.replace("\\.", ".").rstrip("$")


_FORWARD = [(re.compile("^" + a), b) for a, b in KEY_MAP]
_INVERSE = [_invert(a, b) for a, b in KEY_MAP]
# Buffers older transformers saved that ours recompute (rotary frequencies, CLIP position ids).
IGNORED_KEYS = (re.compile(r"\.rotary_emb\.inv_freq$"), re.compile(r"\.embeddings\.position_ids$"))
SAM_FILE_PREFIX = "model.visual_model."  # segment_anything .pth keys carry no prefix
CLIP_FOLDER_PREFIX = "model.vision_tower.vision_tower."  # an HF CLIP folder's keys start at vision_model.
_SAM_PE = "sam.shared_image_embedding.positional_embedding"
_TIED = {"sam.prompt_encoder.shared_embedding.positional_embedding": _SAM_PE}  # one tensor, two names
REQUIRED_CONFIG = (
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "vocab_size",
    "mm_hidden_size",
    "mm_vision_select_layer",
    "out_dim",
    "seg_token_idx",
    "token_type",
)
WEIGHT_FILES = (
    "model.safetensors.index.json",
    "model.safetensors",
    "pytorch_model.bin.index.json",
    "pytorch_model.bin",
)
CPU_PARAMETER_LIMIT = 3_000_000_000


class CheckpointError(ValueError):
    """A checkpoint folder, file or tokenizer that cannot be used as is; the message says why."""


def map_key(original: str) -> str | None:
    """Our parameter name for an original checkpoint key; None for keys we deliberately recompute."""
    if any(p.search(original) for p in IGNORED_KEYS):
        return None
    for pattern, repl in _FORWARD:
        if pattern.match(original):
            return pattern.sub(repl, original, count=1)
    return original  # unknown: reported as unexpected by the caller


def original_key(ours: str) -> str:
    """The inverse of `map_key`: the original checkpoint name of one of our parameters."""
    for pattern, repl in _INVERSE:
        if pattern.match(ours):
            return pattern.sub(repl, ours, count=1)
    raise KeyError(f"no original name for parameter {ours!r}")


def expected_keys(net: InteractVLMNet) -> set[str]:
    """Our persistent parameter/buffer names that a checkpoint must provide (tied copies excluded)."""
    return {k for k in net.state_dict() if k not in _TIED}


# ---- config ---------------------------------------------------------------------------------------
def architecture_from_config(cfg: dict, clip: CLIPVisionConfig | None = None) -> MVLocArchitecture:
    """MVLocArchitecture from an InteractVLM config.json dict (LISA/LLaVA field names)."""
    missing = [k for k in REQUIRED_CONFIG if k not in cfg]
    if missing:
        raise CheckpointError(
            f"config.json lacks {missing}: this is not an InteractVLM/LISA checkpoint config "
            "(expected the config saved by merge_lora_weights_and_save_hf_model.py)"
        )
    if cfg.get("use_fusion") or cfg.get("use_uncertainty") or "DifDe" in str(cfg.get("token_type")):
        raise CheckpointError(
            "config.json enables use_fusion / use_uncertainty / separate decoders (-DifDe); no released "
            "checkpoint uses them and this implementation does not either"
        )
    text_keys = (
        "hidden_size",
        "intermediate_size",
        "num_hidden_layers",
        "num_attention_heads",
        "num_key_value_heads",
        "vocab_size",
        "rms_norm_eps",
        "max_position_embeddings",
        "hidden_act",
        "bos_token_id",
        "eos_token_id",
        "pad_token_id",
        "rope_theta",
    )
    text = LlamaConfig(**{k: cfg[k] for k in text_keys if cfg.get(k) is not None})
    # Released configs name only `mm_vision_tower` (CLIP ViT-L/14) and use SAM ViT-H; configs we write
    # for other sizes (development builds) carry both explicitly.
    if "ivlm_vision_config" in cfg:
        vision = CLIPVisionConfig(**cfg["ivlm_vision_config"])
    else:
        vision = clip or clip_vit_l14_config()
    sam = SamConfig(**cfg["ivlm_sam_config"]) if "ivlm_sam_config" in cfg else sam_vit_h_config()
    if cfg["mm_hidden_size"] != vision.hidden_size:
        raise CheckpointError(
            f"mm_hidden_size {cfg['mm_hidden_size']} != CLIP hidden size {vision.hidden_size}"
        )
    seg = {"[SEG]": int(cfg["seg_token_idx"])}
    if cfg.get("hseg_token_idx") is not None:
        seg["[HSEG]"] = int(cfg["hseg_token_idx"])
    if cfg.get("oseg_token_idx") is not None:
        seg["[OSEG]"] = int(cfg["oseg_token_idx"])
    return MVLocArchitecture(
        text=text,
        vision=vision,
        sam=sam,
        vision_select_layer=int(cfg["mm_vision_select_layer"]),
        out_dim=int(cfg["out_dim"]),
        num_views=int(cfg.get("multiview_channels", 4)),
        token_type=str(cfg["token_type"]),
        multiview_cam_cond=bool(cfg.get("multiview_cam_cond", False)),
        cam_encoder_type=str(cfg.get("cam_encoder_type", "vi_v1")),
        seg_token_ids=seg,
        extra={k: v for k, v in cfg.items() if k not in text_keys},
    )


# ---- files ----------------------------------------------------------------------------------------
@dataclass
class CheckpointFiles:
    """What `inspect_checkpoint` found: the config and, per weight file, the keys it holds."""

    folder: Path
    config: dict
    shards: dict[Path, list[str] | None]  # None: a .bin without index (keys known only once loaded)


def inspect_checkpoint(folder: str | Path) -> CheckpointFiles:
    """Validate a checkpoint folder without reading any tensor."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise CheckpointError(
            f"InteractVLM checkpoint folder {str(folder)!r} does not exist; set "
            "checkpoint_dir to the unpacked folder (e.g. interactvlm-3d-hcontact-damon)"
        )
    cfg_path = folder / "config.json"
    if not cfg_path.is_file():
        raise CheckpointError(
            f"{folder} has no config.json; point checkpoint_dir at the folder that holds "
            "config.json and the *.safetensors / *.bin weights"
        )
    config = _read_json(cfg_path, "an InteractVLM config.json")
    if not isinstance(config, dict):
        raise CheckpointError(f"{cfg_path} holds a JSON {type(config).__name__}, not the config object")
    found = next((folder / f for f in WEIGHT_FILES if (folder / f).is_file()), None)
    if found is None:
        raise CheckpointError(f"{folder} holds no weights: expected one of {list(WEIGHT_FILES)}")
    shards: dict[Path, list[str] | None] = {}
    if found.name.endswith(".index.json"):
        index = _read_json(found, "a weight index")
        weight_map = index.get("weight_map") if isinstance(index, dict) else None
        if not isinstance(weight_map, dict) or not all(isinstance(n, str) for n in weight_map.values()):
            raise CheckpointError(
                f"{found} has no \"weight_map\" object (parameter name -> shard file name); it is not a "
                "Hugging Face weight index, or it was cut short: copy it again from the checkpoint"
            )
        for key, name in weight_map.items():
            shards.setdefault(folder / name, []).append(key)
        absent = [p.name for p in shards if not p.is_file()]
        if absent:
            raise CheckpointError(
                f"{folder}: shards listed in {found.name} are missing: {absent} (incomplete download or copy)"
            )
    elif found.suffix == ".safetensors":
        with _open_safetensors(found) as f:
            shards[found] = list(f.keys())
    else:
        shards[found] = None
    return CheckpointFiles(folder=folder, config=config, shards=shards)


def _read_json(path: Path, what: str) -> object:
    """A JSON file's content, or CheckpointError naming the file when it is not valid JSON."""
    try:
        return json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{path} is not valid JSON ({error}); expected {what}") from error


def _open_safetensors(path: Path):
    """safetensors' `safe_open` on `path`, or CheckpointError naming it when the header is unreadable
    (a truncated download, or not a safetensors file)."""
    from safetensors import safe_open

    try:
        return safe_open(path, framework="pt")
    except Exception as error:  # safetensors raises its own SafetensorError (not an OSError subclass)
        raise CheckpointError(
            f"{path} is not a readable safetensors file ({error}); it is truncated or damaged "
            "(an interrupted download or copy?): copy it again"
        ) from error


def _read(path: Path) -> Iterator[tuple[str, torch.Tensor]]:
    """(key, tensor) pairs of one weight file, one tensor at a time where the format allows it."""
    if path.suffix == ".safetensors":
        with _open_safetensors(path) as f:
            for key in f.keys():  # noqa: SIM118 - safe_open has no __iter__
                try:
                    tensor = f.get_tensor(key)
                except Exception as error:  # safetensors raises its own SafetensorError / OSError
                    raise CheckpointError(f"{path}: tensor {key} cannot be read ({error}); the file is "
                                          "damaged or incomplete, copy it again") from error
                yield key, tensor
        return
    try:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError:  # legacy (non-zip) torch.save files cannot be memory-mapped
            state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, OSError) as error:
        raise CheckpointError(
            f"{path} cannot be read as PyTorch weights ({str(error).splitlines()[0]}); it is truncated, "
            "damaged, or holds more than tensors (refused: only plain state dicts load)"
        ) from error
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} holds a {type(state).__name__}, not a state dict of tensors")
    yield from state.items()


def _sources(
    files: CheckpointFiles, sam_checkpoint: Path | None, clip_dir: Path | None
) -> Iterator[tuple[str, Path, list[str] | None]]:
    for path, keys in files.shards.items():
        yield "", path, keys
    if sam_checkpoint is not None:
        yield SAM_FILE_PREFIX, sam_checkpoint, None
    if clip_dir is not None:
        clip = next((clip_dir / f for f in WEIGHT_FILES[1::2] if (clip_dir / f).is_file()), None)
        if clip is None:
            raise CheckpointError(f"CLIP folder {clip_dir} holds no model.safetensors / pytorch_model.bin")
        yield CLIP_FOLDER_PREFIX, clip, None


def check_keys(mapped: Iterable[str], unknown: Iterable[str], expected: set[str], where: str) -> None:
    """Raise CheckpointError listing missing and unexpected keys (both in original naming)."""
    mapped, unknown = set(mapped), sorted(set(unknown))
    missing = sorted(original_key(k) for k in expected - mapped)
    if missing or unknown:

        def show(keys: list[str]) -> str:
            return ", ".join(keys[:12]) + (f", ... ({len(keys)} in all)" if len(keys) > 12 else "")

        raise CheckpointError(
            f"{where} does not match the InteractVLM architecture of its config.json.\n"
            f"  missing ({len(missing)}): {show(missing)}\n  unexpected ({len(unknown)}): {show(unknown)}\n"
            "Missing SAM (model.visual_model.*) keys: set sam_checkpoint to sam_vit_h_4b8939.pth; missing "
            "vision-tower keys: set clip_dir to a local openai/clip-vit-large-patch14 folder."
        )


def precheck(
    files: CheckpointFiles,
    arch: MVLocArchitecture,
    sam_checkpoint: str | Path | None,
    clip_dir: str | Path | None,
) -> None:
    """Every check that needs no tensor: extra SAM/CLIP paths exist, and (for safetensors or indexed
    weights) the key sets match the architecture, compared on a weightless `meta` build of it."""
    sam_path = Path(sam_checkpoint).expanduser() if sam_checkpoint else None
    clip_path = Path(clip_dir).expanduser() if clip_dir else None
    if sam_path is not None and not sam_path.is_file():
        raise CheckpointError(
            f"sam_checkpoint {str(sam_path)!r} does not exist (expected sam_vit_h_4b8939.pth)"
        )
    if clip_path is not None and not clip_path.is_dir():
        raise CheckpointError(f"clip_dir {str(clip_path)!r} is not a folder (a local clip-vit-large-patch14)")
    if any(keys is None for keys in files.shards.values()):
        return
    with torch.device("meta"):
        expected = expected_keys(InteractVLMNet(arch))
    keys = [k for ks in files.shards.values() for k in ks]
    mapped = {map_key(k) for k in keys} - {None}
    unknown = [k for k in keys if map_key(k) is not None and map_key(k) not in expected]
    if sam_path is not None:
        mapped |= {k for k in expected if k.startswith("sam.")}
    if clip_path is not None:
        mapped |= {k for k in expected if k.startswith("llava.model.vision_tower.")}
    check_keys(mapped, unknown, expected, str(files.folder))


def load_weights(
    net: InteractVLMNet,
    files: CheckpointFiles,
    sam_checkpoint: str | Path | None = None,
    clip_dir: str | Path | None = None,
) -> None:
    """Copy the checkpoint's tensors into `net`, shard by shard (the checkpoint wins over SAM/CLIP files),
    then raise if any parameter was not provided or any checkpoint key is not ours."""
    precheck(files, net.arch, sam_checkpoint, clip_dir)
    sam_path = Path(sam_checkpoint).expanduser() if sam_checkpoint else None
    clip_path = Path(clip_dir).expanduser() if clip_dir else None
    own = expected_keys(net)
    loaded: set[str] = set()
    unknown: list[str] = []
    params = net.state_dict()
    for prefix, path, _ in _sources(files, sam_path, clip_path):
        for key, tensor in _read(path):
            ours = map_key(prefix + key)
            if ours is None or ours in loaded:
                continue
            if ours not in own:
                if not prefix:
                    unknown.append(key)
                continue
            target = params[ours]
            if target.shape != tensor.shape:
                raise CheckpointError(
                    f"{path}: {key} has shape {tuple(tensor.shape)}, the architecture "
                    f"expects {tuple(target.shape)}; config.json and weights disagree"
                )
            with torch.no_grad():
                target.copy_(tensor)
            loaded.add(ours)
    check_keys(loaded, unknown, own, str(files.folder))
    for tied, source in _TIED.items():
        with torch.no_grad():
            params[tied].copy_(params[source])


def save_original_layout(
    net: InteractVLMNet,
    folder: str | Path,
    config: dict,
    max_shard_bytes: int = 0,
    state: dict[str, torch.Tensor] | None = None,
) -> None:
    """Write `net` (or `state`, in our naming) as an InteractVLM checkpoint: original key names,
    safetensors, an index when sharded (`max_shard_bytes` > 0).

    Used to export fine-tuned weights for the original code and to build synthetic test checkpoints.
    """
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    source = net.state_dict() if state is None else state
    state = {original_key(k): v.detach().contiguous().cpu() for k, v in source.items() if k not in _TIED}
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    if max_shard_bytes <= 0:
        save_file(state, folder / "model.safetensors", metadata={"format": "pt"})
        return
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for key, tensor in state.items():
        nbytes = tensor.numel() * tensor.element_size()
        if shards[-1] and size + nbytes > max_shard_bytes:
            shards.append({})
            size = 0
        shards[-1][key] = tensor
        size += nbytes
    weight_map = {}
    for i, shard in enumerate(shards):
        name = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        save_file(shard, folder / name, metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(shard, name))
    (folder / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {}, "weight_map": weight_map})
    )
