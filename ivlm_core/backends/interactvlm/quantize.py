"""8-bit / 4-bit loading of the language model (bitsandbytes), so the 13B model fits a 16 GB GPU.

What the official code's `--load_in_8bit` / `--load_in_4bit` do through transformers' BitsAndBytesConfig
(LISA's chat.py: NF4, double quantisation, bf16 compute for 4-bit; int8 with threshold 6 for 8-bit),
applied to the Llama decoder layers (~12.7 of the 13.3 B parameters); CLIP, SAM, the embeddings,
lm_head and the InteractVLM heads stay bf16. bitsandbytes is optional: it is imported only here, and
only when asked for. Quantisation happens as each layer moves to the GPU, one layer at a time.
"""

from __future__ import annotations

from types import ModuleType

import torch
from torch import nn

QUANTIZATIONS = ("", "8bit", "4bit")


def require_bitsandbytes(quantization: str, device: torch.device) -> ModuleType | None:
    """The bitsandbytes module for `quantization` ("" -> None); ValueError saying what is missing."""
    if quantization not in QUANTIZATIONS:
        raise ValueError(f"quantization must be one of {QUANTIZATIONS} ('' = bf16), got {quantization!r}")
    if not quantization:
        return None
    try:
        import bitsandbytes
    except ImportError as error:
        raise ValueError(
            f"quantization {quantization!r} needs the bitsandbytes package, which is not installed "
            f"({error}); install it on the GPU machine (pip install bitsandbytes), or use quantization ''"
        ) from error
    if device.type != "cuda" or not torch.cuda.is_available():
        raise ValueError(
            f"quantization {quantization!r} runs on a CUDA GPU only (bitsandbytes kernels); device is "
            f"{device} and CUDA is {'available' if torch.cuda.is_available() else 'not available'}"
        )
    return bitsandbytes


def quantize_language_model(net: nn.Module, quantization: str, device: torch.device) -> int:
    """Replace every nn.Linear of the Llama decoder layers of an `InteractVLMNet` by its bitsandbytes
    8-bit / 4-bit counterpart on `device` (weights copied, then quantised by the move); returns how
    many layers were replaced. The rest of the network is left where it is."""
    bnb = require_bitsandbytes(quantization, device)
    if bnb is None:
        return 0
    replaced = 0
    for layer in net.llava.model.language_model.layers:
        for parent in list(layer.modules()):
            for name, child in list(parent.named_children()):
                if type(child) is not nn.Linear:
                    continue
                weight = child.weight.data.to("cpu")
                bias = child.bias is not None
                if quantization == "8bit":
                    new = bnb.nn.Linear8bitLt(
                        child.in_features, child.out_features, bias=bias, has_fp16_weights=False,
                        threshold=6.0,
                    )  # fmt: skip
                    new.weight = bnb.nn.Int8Params(weight, requires_grad=False, has_fp16_weights=False)
                else:
                    new = bnb.nn.Linear4bit(
                        child.in_features, child.out_features, bias=bias, compute_dtype=torch.bfloat16,
                        quant_type="nf4", compress_statistics=True,
                    )  # fmt: skip
                    new.weight = bnb.nn.Params4bit(
                        weight, requires_grad=False, quant_type="nf4", compress_statistics=True
                    )
                if bias:
                    new.bias = nn.Parameter(child.bias.data.to("cpu"), requires_grad=False)
                setattr(parent, name, new.to(device))  # the move quantises
                replaced += 1
    return replaced
