"""Helpers that make a tiny random InteractVLM network behave enough like a trained one for tests."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ivlm_core.backends.interactvlm.configs import checkpoint_config, full_architecture


def always_answer(net, token_id: int) -> None:
    """A hook on lm_head that makes greedy decoding always pick `token_id` (e.g. [SEG])."""

    def hook(module, args, logits):
        logits = logits.clone()
        logits[..., token_id] = logits.abs().max() + 10
        return logits

    net.llava.lm_head.register_forward_hook(hook)


def contrast_masks(net, gain: float = 30000.0) -> None:
    """Random init gives SAM mask logits of ~1e-5; scale the hypernetwork outputs to logits of ~1."""
    with torch.no_grad():
        for mlp in net.sam.mask_decoder.output_hypernetworks_mlps:
            mlp.proj_out.weight *= gain


def stub_13b_checkpoint(folder: Path) -> Path:
    """A released-size (13B) checkpoint folder whose one shard is empty: for checks that must fail
    before any weight is read."""
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(checkpoint_config(full_architecture())))
    (folder / "model-00001-of-00001.safetensors").write_bytes(b"")
    index = {"weight_map": {"lm_head.weight": "model-00001-of-00001.safetensors"}}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    return folder
