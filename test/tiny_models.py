"""Helpers that make a tiny random InteractVLM network behave enough like a trained one for tests."""

from __future__ import annotations

import torch


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
