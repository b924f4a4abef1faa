"""The network against the original's parameter layout, at full 13B size on the `meta` device (no weights).

`official_layout` writes out, from the original module definitions (LISA's LLaVA-Llama-2 + CLIP
ViT-L/14, segment_anything's ViT-H image encoder / prompt encoder / mask decoder, InteractVLM's heads
in `model/InteractVLM.py` and `model/components.py`), every parameter name a released checkpoint holds
and its shape. Every one must map onto a parameter of ours with that shape, and every parameter of ours
must come from one, so the key map cannot silently regress.
"""

from __future__ import annotations

import re

import pytest
import torch
from torch import nn

from ivlm_core.backends.interactvlm.checkpoint import expected_keys, map_key
from ivlm_core.backends.interactvlm.configs import full_architecture, tiny_architecture
from ivlm_core.backends.interactvlm.model import InteractVLMNet, MVLocArchitecture


def _linear(prefix: str, out: int, inp: int, bias: bool = True) -> dict[str, tuple[int, ...]]:
    return {f"{prefix}.weight": (out, inp), **({f"{prefix}.bias": (out,)} if bias else {})}


def _norm(prefix: str, n: int, bias: bool = True) -> dict[str, tuple[int, ...]]:
    return {f"{prefix}.weight": (n,), **({f"{prefix}.bias": (n,)} if bias else {})}


def official_layout(arch: MVLocArchitecture) -> dict[str, tuple[int, ...]]:
    """Original checkpoint key -> shape for `arch` (Gen layout; + attention_splitter for Gen-Hu-Obj)."""
    t, v, s = arch.text, arch.vision, arch.sam
    h, vocab = t.hidden_size, t.vocab_size
    out: dict[str, tuple[int, ...]] = {"model.embed_tokens.weight": (vocab, h), "lm_head.weight": (vocab, h)}
    out |= _norm("model.norm", h, bias=False)
    for i in range(t.num_hidden_layers):
        p = f"model.layers.{i}"
        for name in ("q_proj", "k_proj", "v_proj", "o_proj"):
            out |= _linear(f"{p}.self_attn.{name}", h, h, bias=False)
        out |= _linear(f"{p}.mlp.gate_proj", t.intermediate_size, h, bias=False)
        out |= _linear(f"{p}.mlp.up_proj", t.intermediate_size, h, bias=False)
        out |= _linear(f"{p}.mlp.down_proj", h, t.intermediate_size, bias=False)
        for name in ("input_layernorm", "post_attention_layernorm"):
            out |= _norm(f"{p}.{name}", h, bias=False)
    out |= _linear("model.mm_projector", h, v.hidden_size)
    # CLIP vision tower (transformers' CLIPVisionModel names, as LLaVA saves it)
    c, d = "model.vision_tower.vision_tower.vision_model", v.hidden_size
    out[f"{c}.embeddings.class_embedding"] = (d,)
    out[f"{c}.embeddings.patch_embedding.weight"] = (d, 3, v.patch_size, v.patch_size)
    out[f"{c}.embeddings.position_embedding.weight"] = ((v.image_size // v.patch_size) ** 2 + 1, d)
    out |= _norm(f"{c}.pre_layrnorm", d) | _norm(f"{c}.post_layernorm", d)
    for i in range(v.num_hidden_layers):
        p = f"{c}.encoder.layers.{i}"
        for name in ("q_proj", "k_proj", "v_proj", "out_proj"):
            out |= _linear(f"{p}.self_attn.{name}", d, d)
        out |= _norm(f"{p}.layer_norm1", d) | _norm(f"{p}.layer_norm2", d)
        out |= _linear(f"{p}.mlp.fc1", v.intermediate_size, d)
        out |= _linear(f"{p}.mlp.fc2", d, v.intermediate_size)
    # InteractVLM heads
    out |= _linear("model.text_hidden_fcs.0.0", h, h) | _linear("model.text_hidden_fcs.0.2", arch.out_dim, h)
    out |= _linear("cam_pose_encoder.spatial_encoder.0", 128, 5)
    out |= _linear("cam_pose_encoder.spatial_encoder.2", 128, 128)
    for k in range(arch.num_views):
        out |= _linear(f"cam_pose_encoder.view_transforms.{k}", arch.out_dim, 128)
    if arch.token_type == "Gen-Hu-Obj":
        a = "attention_splitter"
        out |= _linear(f"{a}.input_proj", 128, arch.out_dim) | _linear(f"{a}.output_proj", arch.out_dim, 128)
        for name in ("query_human", "query_object", "key", "value"):
            out |= _linear(f"{a}.{name}", 128, 128)
    # segment_anything ViT image encoder
    e, sv = "model.visual_model.image_encoder", s.vision_config
    w, grid, head = sv.hidden_size, sv.image_size // sv.patch_size, sv.hidden_size // sv.num_attention_heads
    out[f"{e}.patch_embed.proj.weight"] = (w, 3, sv.patch_size, sv.patch_size)
    out[f"{e}.patch_embed.proj.bias"] = (w,)
    out[f"{e}.pos_embed"] = (1, grid, grid, w)
    for i in range(sv.num_hidden_layers):
        p = f"{e}.blocks.{i}"
        size = grid if i in sv.global_attn_indexes else sv.window_size
        out |= _norm(f"{p}.norm1", w) | _norm(f"{p}.norm2", w)
        out |= _linear(f"{p}.attn.qkv", 3 * w, w) | _linear(f"{p}.attn.proj", w, w)
        out[f"{p}.attn.rel_pos_h"] = out[f"{p}.attn.rel_pos_w"] = (2 * size - 1, head)
        out |= _linear(f"{p}.mlp.lin1", sv.mlp_dim, w) | _linear(f"{p}.mlp.lin2", w, sv.mlp_dim)
    oc = sv.output_channels
    out[f"{e}.neck.0.weight"] = (oc, w, 1, 1)
    out[f"{e}.neck.2.weight"] = (oc, oc, 3, 3)
    out |= _norm(f"{e}.neck.1", oc) | _norm(f"{e}.neck.3", oc)
    # prompt encoder
    pe, m = "model.visual_model.prompt_encoder", s.prompt_encoder_config.mask_input_channels
    out[f"{pe}.pe_layer.positional_encoding_gaussian_matrix"] = (2, oc // 2)
    for k in range(4):
        out[f"{pe}.point_embeddings.{k}.weight"] = (1, oc)
    out[f"{pe}.not_a_point_embed.weight"] = out[f"{pe}.no_mask_embed.weight"] = (1, oc)
    out[f"{pe}.mask_downscaling.0.weight"] = (m // 4, 1, 2, 2)
    out[f"{pe}.mask_downscaling.0.bias"] = (m // 4,)
    out[f"{pe}.mask_downscaling.3.weight"] = (m, m // 4, 2, 2)
    out[f"{pe}.mask_downscaling.3.bias"] = (m,)
    out[f"{pe}.mask_downscaling.6.weight"] = (oc, m, 1, 1)
    out[f"{pe}.mask_downscaling.6.bias"] = (oc,)
    out |= _norm(f"{pe}.mask_downscaling.1", m // 4) | _norm(f"{pe}.mask_downscaling.4", m)
    # mask decoder (TwoWayTransformer, attention_downsample_rate 2 in the cross attentions)
    md, dc = "model.visual_model.mask_decoder", s.mask_decoder_config
    dh = dc.hidden_size

    def attention(prefix: str, inner: int) -> dict[str, tuple[int, ...]]:
        qkv = {f"{prefix}.{n}_proj": None for n in "qkv"}
        return {k: v for q in qkv for k, v in _linear(q, inner, dh).items()} | _linear(
            f"{prefix}.out_proj", dh, inner
        )

    for j in range(dc.num_hidden_layers):
        p = f"{md}.transformer.layers.{j}"
        out |= attention(f"{p}.self_attn", dh)
        out |= attention(f"{p}.cross_attn_token_to_image", dh // 2)
        out |= attention(f"{p}.cross_attn_image_to_token", dh // 2)
        out |= _linear(f"{p}.mlp.lin1", dc.mlp_dim, dh) | _linear(f"{p}.mlp.lin2", dh, dc.mlp_dim)
        for n in range(1, 5):
            out |= _norm(f"{p}.norm{n}", dh)
    out |= attention(f"{md}.transformer.final_attn_token_to_image", dh // 2)
    out |= _norm(f"{md}.transformer.norm_final_attn", dh)
    num_masks = dc.num_multimask_outputs + 1
    out[f"{md}.iou_token.weight"] = (1, dh)
    out[f"{md}.mask_tokens.weight"] = (num_masks, dh)
    out[f"{md}.output_upscaling.0.weight"] = (dh, dh // 4, 2, 2)
    out[f"{md}.output_upscaling.0.bias"] = (dh // 4,)
    out |= _norm(f"{md}.output_upscaling.1", dh // 4)
    out[f"{md}.output_upscaling.3.weight"] = (dh // 4, dh // 8, 2, 2)
    out[f"{md}.output_upscaling.3.bias"] = (dh // 8,)
    for k in range(num_masks):
        p = f"{md}.output_hypernetworks_mlps.{k}.layers"
        out |= _linear(f"{p}.0", dh, dh) | _linear(f"{p}.1", dh, dh) | _linear(f"{p}.2", dh // 8, dh)
    ih = dc.iou_head_hidden_dim
    iou = f"{md}.iou_prediction_head.layers"
    out |= _linear(f"{iou}.0", ih, dh) | _linear(f"{iou}.1", ih, ih) | _linear(f"{iou}.2", num_masks, ih)
    return out


# LayerNorm epsilons of the original modules: segment_anything's image encoder blocks / neck, the
# prompt encoder's and the upscaling LayerNorm2d use 1e-6; the TwoWayTransformer's nn.LayerNorm 1e-5.
ORIGINAL_EPS = {
    r"image_encoder\.blocks\.\d+\.norm\d": 1e-6,
    r"image_encoder\.neck\.[13]": 1e-6,
    r"prompt_encoder\.mask_downscaling\.[14]": 1e-6,
    r"mask_decoder\.transformer\.layers\.\d+\.norm\d": 1e-5,
    r"mask_decoder\.transformer\.norm_final_attn": 1e-5,
    r"mask_decoder\.output_upscaling\.1": 1e-6,
}


def _check_layout(arch: MVLocArchitecture, expected_count: int | None = None) -> None:
    with torch.device("meta"):
        net = InteractVLMNet(arch)
    ours = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    official = official_layout(arch)
    if expected_count is not None:
        assert len(official) == expected_count
    unmapped = {k: map_key(k) for k in official if map_key(k) not in ours}
    assert not unmapped, f"official names that map to no parameter of ours: {list(unmapped)[:10]}"
    wrong = {k: (shape, ours[map_key(k)]) for k, shape in official.items() if ours[map_key(k)] != shape}
    assert not wrong, f"shape mismatches (official, ours): {dict(list(wrong.items())[:10])}"
    assert {map_key(k) for k in official} == expected_keys(net)  # nothing of ours without an original

    modules = dict(net.named_modules())
    for pattern, eps in ORIGINAL_EPS.items():
        names = [k[: -len(".weight")] for k in official if re.search(pattern + r"\.weight$", k)]
        assert names, pattern
        for name in names:
            module = modules[map_key(name + ".weight")[: -len(".weight")]]
            assert isinstance(module, nn.LayerNorm) and module.eps == eps, (name, module)


@pytest.mark.parametrize("token_type, count", [("Gen", 1366), ("Gen-Hu-Obj", 1378)])
def test_full_size_architecture_maps_every_official_name_and_shape(token_type, count):
    arch = full_architecture()
    arch.token_type = token_type
    if token_type == "Gen-Hu-Obj":
        arch.seg_token_ids = {"[SEG]": 32000, "[HSEG]": 32001, "[OSEG]": 32002}
    _check_layout(arch, count)


def test_tiny_architecture_has_the_same_layout_in_small():
    _check_layout(tiny_architecture(300, {"[SEG]": 299}))
    joint = {"[SEG]": 297, "[HSEG]": 298, "[OSEG]": 299}
    _check_layout(tiny_architecture(300, joint, token_type="Gen-Hu-Obj"))
