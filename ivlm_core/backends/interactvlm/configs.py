"""Architectures without downloads: the full 13B InteractVLM, a tiny one of the same design, and the
config.json that describes them (the fields LISA/InteractVLM save)."""

from __future__ import annotations

from transformers import CLIPVisionConfig, LlamaConfig, SamConfig

from ivlm_core.backends.interactvlm.model import MVLocArchitecture

# segment_anything's TwoWayTransformer blocks use plain nn.LayerNorm(256) (eps 1e-5,
# modeling/transformer.py); transformers' SamMaskDecoderConfig defaults to 1e-6 for them.
TWO_WAY_LAYER_NORM_EPS = 1e-5


def clip_vit_l14_config() -> CLIPVisionConfig:
    """openai/clip-vit-large-patch14's vision tower, written out so nothing is fetched."""
    return CLIPVisionConfig(
        hidden_size=1024,
        intermediate_size=4096,
        num_hidden_layers=24,
        num_attention_heads=16,
        image_size=224,
        patch_size=14,
        projection_dim=768,
        hidden_act="quick_gelu",
        layer_norm_eps=1e-5,
    )


def sam_vit_h_config(image_size: int = 1024) -> SamConfig:
    """segment_anything's `build_sam_vit_h` as transformers' SamConfig."""
    return SamConfig(
        vision_config=dict(
            hidden_size=1280,
            num_hidden_layers=32,
            num_attention_heads=16,
            mlp_dim=5120,
            output_channels=256,
            global_attn_indexes=[7, 15, 23, 31],
            window_size=14,
            image_size=image_size,
            patch_size=16,
        ),
        prompt_encoder_config=dict(image_size=image_size, patch_size=16),
        mask_decoder_config=dict(layer_norm_eps=TWO_WAY_LAYER_NORM_EPS),
    )


def llama2_13b_config(vocab_size: int = 32003) -> LlamaConfig:
    """LLaVA-Llama-2-13B (LISA-13B-llama2-v1) text model; 32000 + [SEG], <im_start>, <im_end>."""
    return LlamaConfig(
        hidden_size=5120,
        intermediate_size=13824,
        num_hidden_layers=40,
        num_attention_heads=40,
        num_key_value_heads=40,
        vocab_size=vocab_size,
        rms_norm_eps=1e-5,
        max_position_embeddings=4096,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )


def full_architecture(
    seg_token_ids: dict[str, int] | None = None, vocab_size: int = 32003
) -> MVLocArchitecture:
    """The released models' architecture (hcontact, token_type Gen, 4 views, vi_v1 camera encoder)."""
    return MVLocArchitecture(
        text=llama2_13b_config(vocab_size),
        vision=clip_vit_l14_config(),
        sam=sam_vit_h_config(),
        seg_token_ids=seg_token_ids or {"[SEG]": 32000},
    )


def tiny_architecture(
    vocab_size: int, seg_token_ids: dict[str, int], mask_size: int = 128, token_type: str = "Gen"
) -> MVLocArchitecture:
    """Same design, a few MB: for tests and development on CPU (random weights)."""
    text = LlamaConfig(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        vocab_size=vocab_size,
        rms_norm_eps=1e-5,
        max_position_embeddings=1024,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )
    vision = CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=3,
        num_attention_heads=2,
        image_size=56,
        patch_size=14,
        hidden_act="quick_gelu",
    )
    width = 64  # SAM prompt/decoder width (256 in SAM ViT-H); the seg embedding has the same size
    sam = SamConfig(
        vision_config=dict(
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            mlp_dim=64,
            output_channels=width,
            global_attn_indexes=[1],
            window_size=4,
            image_size=mask_size,
            patch_size=16,
            num_pos_feats=width // 2,
        ),
        prompt_encoder_config=dict(hidden_size=width, image_size=mask_size, patch_size=16),
        mask_decoder_config=dict(
            hidden_size=width, mlp_dim=128, iou_head_hidden_dim=width, layer_norm_eps=TWO_WAY_LAYER_NORM_EPS
        ),
    )
    return MVLocArchitecture(
        text=text, vision=vision, sam=sam, out_dim=width, seg_token_ids=seg_token_ids, token_type=token_type
    )


def checkpoint_config(arch: MVLocArchitecture, **extra) -> dict:
    """The config.json InteractVLM saves for `arch` (LISA/LLaVA field names)."""
    t = arch.text
    ids = arch.seg_token_ids
    cfg = dict(arch.extra)  # fields read from a checkpoint's config.json carry over (view types, body)
    cfg |= {
        "architectures": ["InteractVLMForCausalLM"],
        "model_type": "llava",
        "hidden_size": t.hidden_size,
        "intermediate_size": t.intermediate_size,
        "num_hidden_layers": t.num_hidden_layers,
        "num_attention_heads": t.num_attention_heads,
        "num_key_value_heads": t.num_key_value_heads,
        "vocab_size": t.vocab_size,
        "rms_norm_eps": t.rms_norm_eps,
        "max_position_embeddings": t.max_position_embeddings,
        "hidden_act": "silu",
        "bos_token_id": t.bos_token_id,
        "eos_token_id": t.eos_token_id,
        "pad_token_id": t.pad_token_id,
        "mm_vision_tower": "openai/clip-vit-large-patch14",
        "mm_hidden_size": arch.vision.hidden_size,
        "mm_vision_select_layer": arch.vision_select_layer,
        "mm_use_im_start_end": True,
        "out_dim": arch.out_dim,
        "token_type": arch.token_type,
        "multiview_channels": arch.num_views,
        "multiview_cam_cond": arch.multiview_cam_cond,
        "cam_encoder_type": arch.cam_encoder_type,
        "seg_token_idx": ids.get("[SEG]"),
        "hseg_token_idx": ids.get("[HSEG]"),
        "oseg_token_idx": ids.get("[OSEG]"),
        "hC_sam_view_type": "4MV-Z_Vitru",
        "use_fusion": False,
        "use_uncertainty": False,
        "torch_dtype": "bfloat16",
    }
    cfg["ivlm_vision_config"] = arch.vision.to_dict()
    cfg["ivlm_sam_config"] = arch.sam.to_dict()
    cfg.update(extra)
    return cfg
