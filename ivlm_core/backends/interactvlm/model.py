"""The InteractVLM network (MV-Loc) on `transformers` classes.

LLaVA (`LlavaForConditionalGeneration`: CLIP ViT-L/14 + Llama-2) reads the photo and the question and
writes an answer ending in a segmentation token. The final-layer hidden state that predicts that
token goes through `text_hidden_fcs` (5120 -> 256), is repeated per view and modulated by the camera
encoder, and the four view tokens prompt SAM's mask decoder (`SamModel`) over the SAM embeddings of
the four canonical renders: one contact mask per view.

Differences from transformers' defaults that the original needs (facts §6): LISA's `mm_projector` is
one `Linear(1024, hidden)`, not Llava's two-layer MLP; the SAM sparse prompt is the view tokens, not
points or boxes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from transformers import (
    CLIPVisionConfig,
    LlamaConfig,
    LlavaConfig,
    LlavaForConditionalGeneration,
    SamConfig,
    SamModel,
)

SUPPORTED_TOKEN_TYPES = ("Gen", "Gen-Hu-Obj")
SUPPORTED_CAM_ENCODERS = ("vi_v1",)
SAM_PIXEL_MEAN = (123.675, 116.28, 103.53)
SAM_PIXEL_STD = (58.395, 57.12, 57.375)


@dataclass
class MVLocArchitecture:
    """Everything that fixes the network's shapes; built from a checkpoint's config.json or by hand."""

    text: LlamaConfig
    vision: CLIPVisionConfig
    sam: SamConfig
    vision_select_layer: int = -2
    out_dim: int = 256
    num_views: int = 4
    token_type: str = "Gen"
    multiview_cam_cond: bool = True
    cam_encoder_type: str = "vi_v1"
    seg_token_ids: dict[str, int] = field(default_factory=dict)  # "[SEG]" (+ "[HSEG]", "[OSEG]") -> id
    extra: dict = field(default_factory=dict)  # the rest of config.json (view types, question types)

    def __post_init__(self) -> None:
        if self.token_type not in SUPPORTED_TOKEN_TYPES:
            raise ValueError(
                f"token_type {self.token_type!r} is not supported (supported: {SUPPORTED_TOKEN_TYPES}); "
                "the released InteractVLM checkpoints use 'Gen' or 'Gen-Hu-Obj'"
            )
        if self.multiview_cam_cond and self.cam_encoder_type not in SUPPORTED_CAM_ENCODERS:
            raise ValueError(
                f"cam_encoder_type {self.cam_encoder_type!r} is not supported (supported: "
                f"{SUPPORTED_CAM_ENCODERS}, as in all released checkpoints)"
            )

    @property
    def mask_size(self) -> int:
        """Side of the SAM input and of the output masks, pixels (1024 for the real model)."""
        return int(self.sam.vision_config.image_size)

    def parameter_count(self) -> int:
        """Approximate parameter count, to refuse a 13B build on a machine that cannot hold it."""
        t = self.text
        per_layer = 4 * t.hidden_size * t.hidden_size + 3 * t.hidden_size * t.intermediate_size
        llm = t.num_hidden_layers * per_layer + 2 * t.vocab_size * t.hidden_size
        v = self.vision
        clip = v.num_hidden_layers * (4 * v.hidden_size**2 + 2 * v.hidden_size * v.intermediate_size)
        s = self.sam.vision_config
        sam = s.num_hidden_layers * (4 * s.hidden_size**2 + 2 * s.hidden_size * s.mlp_dim) + 4_000_000
        return int(llm + clip + sam + t.hidden_size * (t.hidden_size + self.out_dim))


def use_eager_attention(net: nn.Module) -> None:
    """Switch every attention of an `InteractVLMNet` to transformers' eager implementation (explicit
    softmax, fp32 in Llama/CLIP), the closest to the original's transformers 4.31 / segment_anything
    code; the default SDPA kernels round differently in bf16."""
    from transformers.models.sam.modeling_sam import SamVisionAttention, SamVisionSdpaAttention

    net.llava.set_attn_implementation("eager")
    sam = net.sam.config
    for config in (sam, sam.vision_config, sam.mask_decoder_config, sam.prompt_encoder_config):
        config._attn_implementation = "eager"
    for layer in net.sam.vision_encoder.layers:  # the class is picked at construction; same parameters
        if type(layer.attn) is SamVisionSdpaAttention:
            layer.attn.__class__ = SamVisionAttention


class VIv1CamPoseEncoder(nn.Module):
    """InteractVLM's `VIv1CamPoseEncoder`: a shared MLP on the 5 camera numbers, one head per view, sigmoid.

    cam: (V, 5) normalised camera parameters -> (V, out_dim) gains in (0, 1), one row per view.
    """

    def __init__(self, input_dim: int = 5, hidden_dim: int = 128, output_dim: int = 256, num_views: int = 4):
        super().__init__()
        self.spatial_encoder = nn.Sequential(
            nn.Linear(input_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, hidden_dim), nn.ReLU()
        )
        self.view_transforms = nn.ModuleList([nn.Linear(hidden_dim, output_dim) for _ in range(num_views)])
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, cam: torch.Tensor) -> torch.Tensor:
        base = self.spatial_encoder(cam)
        return torch.cat([torch.sigmoid(t(base[i : i + 1])) for i, t in enumerate(self.view_transforms)])


class AttentionSplitter(nn.Module):
    """InteractVLM's `AttentionSplitter` (token_type Gen-Hu-Obj): splits a view-token set into human/object.

    x: (..., V, 256) -> two tensors of the same shape.
    """

    def __init__(self, input_dim: int = 256, hidden_dim: int = 128):
        super().__init__()
        self.input_proj = nn.Linear(input_dim, hidden_dim)
        self.query_human = nn.Linear(hidden_dim, hidden_dim)
        self.query_object = nn.Linear(hidden_dim, hidden_dim)
        self.key = nn.Linear(hidden_dim, hidden_dim)
        self.value = nn.Linear(hidden_dim, hidden_dim)
        self.output_proj = nn.Linear(hidden_dim, input_dim)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight, gain=0.1)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.input_proj(x)
        k, v = self.key(x), self.value(x)
        scale = k.size(-1) ** 0.5
        human = F.softmax(self.query_human(x) @ k.transpose(-2, -1) / scale, dim=-1) @ v
        obj = F.softmax(self.query_object(x) @ k.transpose(-2, -1) / scale, dim=-1) @ v
        return self.output_proj(human), self.output_proj(obj)


def _text_hidden_fcs(hidden: int, out_dim: int) -> nn.ModuleList:
    """LISA's projection of the segmentation hidden state: Linear, ReLU, Linear, Dropout(0)."""
    return nn.ModuleList(
        [
            nn.Sequential(
                nn.Linear(hidden, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, out_dim), nn.Dropout(0.0)
            )
        ]
    )


class InteractVLMNet(nn.Module):
    """LLaVA + SAM + the InteractVLM heads. Pure computation: no tokenizer, no files, no renders.

    Submodules (names used by `checkpoint.KEY_MAP`): `llava` (LlavaForConditionalGeneration whose
    `model.multi_modal_projector` is LISA's single Linear), `sam` (SamModel), `text_hidden_fcs`,
    `cam_pose_encoder` (when multiview_cam_cond), `attention_splitter` (token_type Gen-Hu-Obj).
    """

    def __init__(self, arch: MVLocArchitecture):
        super().__init__()
        self.arch = arch
        llava_config = LlavaConfig(
            vision_config=arch.vision,
            text_config=arch.text,
            vision_feature_layer=arch.vision_select_layer,
            vision_feature_select_strategy="default",
            image_seq_length=(arch.vision.image_size // arch.vision.patch_size) ** 2,
            image_token_index=arch.text.vocab_size
            - 1,  # unused: image features are spliced by `embed_prompt`
        )
        self.llava = LlavaForConditionalGeneration(llava_config)
        self.llava.model.multi_modal_projector = nn.Linear(arch.vision.hidden_size, arch.text.hidden_size)
        self.sam = SamModel(arch.sam)
        self.text_hidden_fcs = _text_hidden_fcs(arch.text.hidden_size, arch.out_dim)
        if arch.multiview_cam_cond:
            self.cam_pose_encoder = VIv1CamPoseEncoder(output_dim=arch.out_dim, num_views=arch.num_views)
        if arch.token_type == "Gen-Hu-Obj":
            self.attention_splitter = AttentionSplitter(arch.out_dim)
        self.register_buffer("sam_mean", torch.tensor(SAM_PIXEL_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("sam_std", torch.tensor(SAM_PIXEL_STD).view(1, 3, 1, 1), persistent=False)

    @property
    def dtype(self) -> torch.dtype:
        return self.text_hidden_fcs[0][0].weight.dtype

    @property
    def device(self) -> torch.device:
        return self.text_hidden_fcs[0][0].weight.device

    # ---- LLaVA side -------------------------------------------------------------------------------
    def encode_image(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """CLIP patch features of layer `vision_select_layer` (no CLS), projected to the LLM width.

        pixel_values: (B, 3, 224, 224) CLIP-normalised -> (B, 256, hidden).
        """
        out = self.llava.model.get_image_features(
            pixel_values=pixel_values.to(self.dtype),
            vision_feature_layer=self.arch.vision_select_layer,
            vision_feature_select_strategy="default",
        )
        return torch.stack(list(out.pooler_output))

    def embed_tokens(self, ids: torch.Tensor) -> torch.Tensor:
        """ids: (B, L) int64 -> (B, L, hidden)."""
        return self.llava.get_input_embeddings()(ids)

    def seg_embedding(self, hidden: torch.Tensor) -> torch.Tensor:
        """Final-layer hidden states that predicted a segmentation token, (N, hidden) -> (N, out_dim)."""
        return self.text_hidden_fcs[0](hidden.to(self.dtype))

    # ---- SAM side ---------------------------------------------------------------------------------
    def encode_renders(self, renders: torch.Tensor) -> torch.Tensor:
        """SAM image embeddings of view renders.

        renders: (V, 3, S, S) float RGB in [0, 255], S = arch.mask_size -> (V, 256, S/16, S/16).
        The original pads to S after a longest-side resize; the renders are already S x S.
        """
        s = self.arch.mask_size
        if renders.ndim != 4 or renders.shape[1] != 3 or renders.shape[-2:] != (s, s):
            raise ValueError(f"renders must be (V, 3, {s}, {s}) RGB, got {tuple(renders.shape)}")
        x = (renders.to(self.sam_mean.device, torch.float32) - self.sam_mean) / self.sam_std
        return self.sam.vision_encoder(x.to(self.dtype)).last_hidden_state

    def view_tokens(self, seg: torch.Tensor, cam: torch.Tensor, token_id: int | None = None) -> torch.Tensor:
        """The per-view sparse prompt: seg (N, out_dim), cam (V, 5) -> (N, V, out_dim).

        As `InteractVLMForCausalLM.process_embeddings`: repeat over views, multiply by the camera
        gains; for Gen-Hu-Obj route [HSEG]/[OSEG] through the attention splitter.
        """
        tokens = seg[:, None, :].repeat(1, self.arch.num_views, 1)
        if self.arch.multiview_cam_cond:
            tokens = tokens * self.cam_pose_encoder(cam.to(self.dtype))[None]
        if self.arch.token_type == "Gen-Hu-Obj" and token_id is not None:
            human, obj = self.attention_splitter(tokens)
            if token_id == self.arch.seg_token_ids.get("[HSEG]"):
                return human
            if token_id == self.arch.seg_token_ids.get("[OSEG]"):
                return obj
        return tokens

    def decode_masks(self, tokens: torch.Tensor, view_embeddings: torch.Tensor) -> torch.Tensor:
        """SAM mask logits for N prompts over V views.

        tokens: (N, V, 256) view tokens; view_embeddings: (V, 256, h, w) SAM embeddings of the renders
        -> (N, V, S, S) float32 logits at the render resolution (the low-resolution logits come in the
        model dtype and are upsampled in float32, as segment_anything's `postprocess_masks` in the
        original, whose cast back to the model dtype is commented out). Every view sees all V tokens
        (the original passes them together as one sparse prompt and broadcasts over the view batch).
        """
        n, v = tokens.shape[:2]
        emb = view_embeddings.to(self.dtype)
        sparse = (
            tokens.to(self.dtype)[:, None, None].expand(n, v, 1, v, tokens.shape[-1]).reshape(n * v, 1, v, -1)
        )
        pe = self.sam.get_image_wide_positional_embeddings().to(self.dtype)
        dense = self.sam.prompt_encoder.no_mask_embed.weight.to(self.dtype).reshape(1, -1, 1, 1)
        low_res, _ = self.sam.mask_decoder(
            image_embeddings=emb.repeat(n, 1, 1, 1),
            image_positional_embeddings=pe.expand(n * v, -1, -1, -1),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense.expand(n * v, -1, emb.shape[-2], emb.shape[-1]),
            multimask_output=False,
        )
        s = self.arch.mask_size
        masks = F.interpolate(low_res[:, 0].float(), (s, s), mode="bilinear", align_corners=False)
        return masks.reshape(n, v, s, s)
