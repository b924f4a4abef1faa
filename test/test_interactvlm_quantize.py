"""8-bit / 4-bit loading (bitsandbytes is optional and absent here; CUDA too): the errors, and which
layers get replaced, checked with a stand-in bitsandbytes module."""

from __future__ import annotations

import importlib.util
import json
import sys
import types

import pytest
import torch
from torch import nn

from ivlm_core.backends.interactvlm.configs import checkpoint_config, tiny_architecture
from ivlm_core.backends.interactvlm.mvloc import MVLoc, MVLocConfig, build_net
from ivlm_core.backends.interactvlm.quantize import quantize_language_model, require_bitsandbytes
from ivlm_core.backends.interactvlm.tokenizer import add_interactvlm_tokens, build_dev_tokenizer


class _FakeLinear(nn.Module):
    def __init__(self, in_features, out_features, bias=True, **options):
        super().__init__()
        self.in_features, self.out_features, self.options = in_features, out_features, options

    def to(self, device):  # a real bitsandbytes layer quantises here
        self.device = device
        return self


def _fake_bitsandbytes() -> types.ModuleType:
    bnb = types.ModuleType("bitsandbytes")
    bnb.nn = types.SimpleNamespace(
        Linear8bitLt=type("Linear8bitLt", (_FakeLinear,), {}),
        Linear4bit=type("Linear4bit", (_FakeLinear,), {}),
        Int8Params=lambda data, **kw: nn.Parameter(data, requires_grad=False),
        Params4bit=lambda data, **kw: nn.Parameter(data, requires_grad=False),
    )
    return bnb


@pytest.fixture(scope="module")
def tiny():
    tokenizer = build_dev_tokenizer(["bench"])
    ids = add_interactvlm_tokens(tokenizer)
    torch.manual_seed(0)
    arch = tiny_architecture(len(tokenizer), ids)
    return arch, tokenizer


@pytest.mark.skipif(importlib.util.find_spec("bitsandbytes") is not None, reason="bitsandbytes is installed")
def test_without_bitsandbytes_the_checkpoint_is_refused_before_loading(tiny, tmp_path):
    arch, _ = tiny
    (tmp_path / "config.json").write_text(json.dumps(checkpoint_config(arch)))
    (tmp_path / "model.safetensors").write_bytes(b"")  # never read: the check comes first
    for quantization in ("8bit", "4bit", "3bit"):
        config = MVLocConfig(checkpoint_dir=str(tmp_path), device="cpu", quantization=quantization)
        expected = "must be one of" if quantization == "3bit" else f"'{quantization}' needs the bitsandbytes"
        with pytest.raises(ValueError, match=f"quantization {expected}"):
            MVLoc.from_checkpoint(config)


def test_without_cuda_quantization_is_refused(monkeypatch):
    monkeypatch.setitem(sys.modules, "bitsandbytes", _fake_bitsandbytes())
    with pytest.raises(ValueError, match=r"runs on a CUDA GPU only.*device is cpu"):
        require_bitsandbytes("4bit", torch.device("cpu"))
    assert require_bitsandbytes("", torch.device("cpu")) is None


@pytest.mark.parametrize("quantization, layer", [("8bit", "Linear8bitLt"), ("4bit", "Linear4bit")])
def test_only_the_llama_decoder_linears_are_quantized(tiny, monkeypatch, quantization, layer):
    arch, _ = tiny
    monkeypatch.setitem(sys.modules, "bitsandbytes", _fake_bitsandbytes())
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    net = build_net(arch, "cpu")
    before = {n: m.weight.detach().clone() for n, m in net.named_modules() if type(m) is nn.Linear}
    replaced = quantize_language_model(net, quantization, torch.device("cuda"))
    assert replaced == 7 * arch.text.num_hidden_layers  # q, k, v, o, gate, up, down per layer
    swapped = {n: m for n, m in net.named_modules() if type(m).__name__ == layer}
    assert set(swapped) == {n for n in before if ".language_model.layers." in n}
    for name, module in swapped.items():
        torch.testing.assert_close(module.weight.data, before[name], rtol=0, atol=0)
        assert module.device == torch.device("cuda")
    options = next(iter(swapped.values())).options
    if quantization == "4bit":
        assert options["quant_type"] == "nf4" and options["compute_dtype"] == torch.bfloat16
    else:
        assert options["threshold"] == 6.0 and options["has_fp16_weights"] is False
    assert type(net.llava.lm_head) is nn.Linear and type(net.text_hidden_fcs[0][0]) is nn.Linear
