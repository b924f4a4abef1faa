"""MV-Loc speed at full 13B size on one GPU: the original-style pipeline against ours, same run.

    .venv/bin/python bench/mvloc_gpu.py            # needs CUDA; without it prints why and exits 0
    .venv/bin/python bench/mvloc_gpu.py --tiny     # the same code on a tiny model (CPU smoke run)

Random-init weights of the released architecture (Llama-2-13B + CLIP ViT-L/14 + SAM ViT-H, bf16) -
no checkpoint is needed. Random weights cannot write an answer, so a hook on lm_head makes the greedy
argmax follow a typical InteractVLM answer (all model compute is real: every layer runs as it would).

- original: per pair, SAM re-encodes the 4 body renders and the answer is decoded without KV cache
  (the original `evaluate`: `use_cache=False`, one object per call), parts answer (~20 tokens).
- ours/generate: body embeddings cached, image prefix reused, the pairs of one image batched, KV cache.
- ours/single_pass: as generate, plus the verified single forward pass (checkpoints whose answer has
  no free text, e.g. `-noParts`: "Sure, the contact mask is [SEG].").
- quantized: the language model in 8-bit / 4-bit through bitsandbytes (`quantization` option): weights
  and peak GPU memory, generate-mode latency (skipped, with the reason, without bitsandbytes or CUDA).
The lift to vertices is not included (it is the same in every pipeline). Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import torch

from ivlm_core.backends.interactvlm.configs import full_architecture, tiny_architecture
from ivlm_core.backends.interactvlm.mvloc import MVLoc, MVLocConfig, build_net
from ivlm_core.backends.interactvlm.quantize import quantize_language_model, require_bitsandbytes
from ivlm_core.backends.interactvlm.tokenizer import add_interactvlm_tokens, build_dev_tokenizer
from ivlm_core.render import HUMAN_VIEWS, rig_cam_params

PARTS_ANSWER = "The contacting body parts are left hand, right hand, and the contact region is [SEG]."
SIMPLE_ANSWER = "Sure, the contact mask is [SEG]."
LABEL = "chair"


class ScriptedAnswer:
    """Hooks that make greedy decoding write `answer` after a prompt of `prompt_len` positions."""

    def __init__(self, net, prompt_len: int, answer: list[int]):
        self.prompt_len, self.answer, self.positions = prompt_len, torch.tensor(answer), None
        net.llava.model.register_forward_pre_hook(self._positions, with_kwargs=True)
        net.llava.lm_head.register_forward_hook(self._steer)

    def _positions(self, module, args, kwargs):
        pos = kwargs.get("position_ids")
        if pos is None:
            embeds, cache = kwargs["inputs_embeds"], kwargs.get("past_key_values")
            start = cache.get_seq_length() if cache is not None else 0
            pos = torch.arange(start, start + embeds.shape[1], device=embeds.device)[None].expand(
                embeds.shape[0], -1
            )
        self.positions = pos

    def _steer(self, module, args, logits):
        k = self.positions - self.prompt_len + 1  # index into the answer predicted at each position
        hit = (k >= 0) & (k < len(self.answer))
        if hit.any():
            logits = logits.clone()
            rows, cols = hit.nonzero(as_tuple=True)
            logits[rows, cols, self.answer.to(logits.device)[k[hit]]] = torch.finfo(logits.dtype).max / 2
        return logits


def timed(fn, repeats: int) -> float:
    """Median wall time of fn() in ms (after one warm-up), synchronising the GPU."""
    fn()
    times = []
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append((time.perf_counter() - t) * 1000)
    return float(np.median(times))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--tiny", action="store_true", help="tiny random model (runs on CPU; for checking the bench)"
    )
    ap.add_argument("--pairs", type=int, default=4, help="person-object pairs per image")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    cuda = torch.cuda.is_available()
    if not cuda and not args.tiny:
        print("mvloc_gpu: no CUDA device on this machine; the 13B benchmark needs one GPU (e.g. one H100).")
        print(json.dumps({"skipped": "no CUDA device"}))
        return 0
    device = torch.device("cuda" if cuda else "cpu")
    tokenizer = build_dev_tokenizer([LABEL, PARTS_ANSWER], vocab_size=2000)
    seg = add_interactvlm_tokens(tokenizer)
    if args.tiny:
        arch = tiny_architecture(len(tokenizer), seg, mask_size=1024)
    else:
        arch = full_architecture(seg, vocab_size=32003)
    t = time.perf_counter()
    torch.manual_seed(0)
    net = build_net(arch, device)
    build_s = time.perf_counter() - t
    loc = MVLoc(
        net, tokenizer, MVLocConfig(max_new_tokens=64, batch_size=args.pairs, answer_draft=SIMPLE_ANSWER)
    )
    rng = np.random.default_rng(0)
    renders = rng.integers(0, 256, (4, arch.mask_size, arch.mask_size, 3), dtype=np.uint8)
    t = time.perf_counter()
    loc.set_views("body", renders, rig_cam_params(HUMAN_VIEWS))
    embed_ms = (time.perf_counter() - t) * 1000
    from skimage import data

    image = data.astronaut()
    prompt = loc.prompt_ids(LABEL)
    prompt_len = len(prompt) - 1 + (arch.vision.image_size // arch.vision.patch_size) ** 2
    parts = loc.answer_ids(LABEL, PARTS_ANSWER)
    simple = loc.answer_ids(LABEL, SIMPLE_ANSWER)
    script = ScriptedAnswer(net, prompt_len, parts)

    def run(mode: str, n: int):
        res = loc.localize(image, [LABEL] * n, "body", mode)
        assert all(r.masks.shape[0] == 4 for r in res), "scripted answer lost its [SEG]"
        return res

    if cuda:
        torch.cuda.reset_peak_memory_stats()
    original = timed(lambda: run("original", 1), args.repeats)
    generate = timed(lambda: run("generate", args.pairs), args.repeats) / args.pairs
    script.answer = torch.tensor(simple)
    loc.last_answers.clear()
    single = timed(lambda: run("fast", 1), args.repeats)
    single_batch = timed(lambda: run("fast", args.pairs), args.repeats) / args.pairs
    assert run("fast", 1)[0].path == "single_pass"
    result = {
        "device": torch.cuda.get_device_name() if cuda else "cpu",
        "model": "tiny" if args.tiny else "13B (Llama-2-13B + CLIP ViT-L/14 + SAM ViT-H), random init",
        "dtype": str(net.dtype).removeprefix("torch."),
        "prompt_positions": prompt_len,
        "answer_tokens_parts": len(parts),
        "answer_tokens_simple": len(simple),
        "pairs_per_image": args.pairs,
        "build_s": round(build_s, 1),
        "body_sam_embed_ms_once": round(embed_ms, 1),
        "original_ms_per_pair": round(original, 1),
        "ours_generate_ms_per_pair": round(generate, 1),
        "ours_single_pass_ms_per_pair_1": round(single, 1),
        "ours_single_pass_ms_per_pair_batched": round(single_batch, 1),
        "speedup_generate": round(original / generate, 2),
        "speedup_single_pass": round(original / single_batch, 2),
        "single_pass_hz": round(1000 / single, 2),
        "peak_gpu_mem_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None,
    }
    if cuda:
        del loc, net, script
        torch.cuda.empty_cache()
    result["quantized"] = {
        q: quantized_figures(arch, tokenizer, q, args.pairs, args.repeats) for q in ("8bit", "4bit")
    }
    for k, v in result.items():
        print(f"{k:40s} {v}")
    print(json.dumps(result))
    return 0


def quantized_figures(arch, tokenizer, quantization: str, pairs: int, repeats: int) -> dict:
    """Weights and peak GPU memory (GiB) and generate-mode ms per pair with the language model in
    8-bit / 4-bit (bitsandbytes), or why it was skipped."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        require_bitsandbytes(quantization, device)
    except ValueError as error:
        return {"skipped": str(error).split(";")[0]}
    torch.manual_seed(0)
    net = build_net(arch, device)
    quantize_language_model(net, quantization, device)
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    weights_gib = torch.cuda.memory_allocated() / 2**30
    loc = MVLoc(net, tokenizer, MVLocConfig(max_new_tokens=64, batch_size=pairs))
    rng = np.random.default_rng(0)
    renders = rng.integers(0, 256, (4, arch.mask_size, arch.mask_size, 3), dtype=np.uint8)
    loc.set_views("body", renders, rig_cam_params(HUMAN_VIEWS))
    from skimage import data

    prompt_len = len(loc.prompt_ids(LABEL)) - 1 + (arch.vision.image_size // arch.vision.patch_size) ** 2
    ScriptedAnswer(net, prompt_len, loc.answer_ids(LABEL, PARTS_ANSWER))
    torch.cuda.reset_peak_memory_stats()
    ms = timed(lambda: loc.localize(data.astronaut(), [LABEL] * pairs, "body", "generate"), repeats) / pairs
    return {
        "weights_gib": round(weights_gib, 2),
        "peak_gpu_mem_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2),
        "generate_ms_per_pair": round(ms, 1),
    }  # the network is freed when this returns


if __name__ == "__main__":
    sys.exit(main())
