"""Greedy decoding that also returns the hidden state that predicted the segmentation token.

Three ways to the same answer (InteractVLM decodes greedily, `num_beams=1`):
- `generate_original`: as the original code runs it (`use_cache=False`): every step re-runs the whole
  sequence. Kept as the reference and for the speed comparison.
- `generate`: KV cache, a shared image/system prefix computed once (`encode_prefix`) and reused for
  every object in the image, several questions batched in one pass.
- `generate(..., drafts=...)`: a single forward pass over question + expected answer. The answer is
  accepted only if greedy decoding would have produced every draft token (the argmax at each
  position equals the next draft token, up to EOS), so the result is the greedy answer; rows whose
  draft fails are decoded again without a draft. Drafts come from checkpoints whose answer has no
  free text, or from the previous answer for the same object.

The segmentation hidden state is the final-layer state at the position whose next token is [SEG]
(LISA/InteractVLM shift the token mask by one: `seg_token_mask[:, 1:]`); every segmentation token of
an answer is kept (a joint model answers with [HSEG] and [OSEG]).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from transformers import DynamicCache

from ivlm_core.backends.interactvlm.model import InteractVLMNet
from ivlm_core.backends.interactvlm.tokenizer import IMAGE_TOKEN_INDEX


@dataclass
class Answer:
    """One generated answer."""

    token_ids: list[int]  # generated ids (after the prompt), ending in EOS unless max_new_tokens hit
    # Every segmentation token ([SEG], [HSEG], [OSEG]) in answer order: (token id, (hidden,) state that
    # predicted it). A joint model's answer holds one [HSEG] and one [OSEG].
    segs: list[tuple[int, torch.Tensor]]
    path: str = "generate"  # "original", "generate" or "single_pass"


@dataclass
class Prefix:
    """KV cache of `<s> system USER: <im_start>` + the 256 image features; shared by all questions."""

    cache: DynamicCache
    length: int


def split_prompt(ids: list[int]) -> tuple[list[int], list[int]]:
    """Prompt ids -> (ids before the image placeholder, ids after it)."""
    if ids.count(IMAGE_TOKEN_INDEX) != 1:
        raise ValueError("the prompt must contain exactly one <image> placeholder")
    i = ids.index(IMAGE_TOKEN_INDEX)
    return ids[:i], ids[i + 1 :]


def _embed(net: InteractVLMNet, ids: list[int]) -> torch.Tensor:
    return net.embed_tokens(torch.tensor([ids], device=net.device))


def _forward(net, embeds, cache=None, attention_mask=None, position_ids=None):
    out = net.llava.model(
        inputs_embeds=embeds,
        attention_mask=attention_mask,
        position_ids=position_ids,
        past_key_values=cache,
        use_cache=cache is not None,
    )
    return out.last_hidden_state, net.llava.lm_head(out.last_hidden_state)


@torch.no_grad()
def generate_original(
    net: InteractVLMNet,
    image_features: torch.Tensor,
    ids: list[int],
    seg_ids: set[int],
    eos_id: int,
    max_new_tokens: int,
) -> Answer:
    """Greedy decoding without KV cache, one question (the original's `evaluate`).

    image_features: (256, hidden) from `net.encode_image`.
    """
    before, after = split_prompt(ids)
    image = image_features[None].to(net.dtype)
    generated: list[int] = []
    segs: list[tuple[int, torch.Tensor]] = []
    for _ in range(max_new_tokens):
        embeds = torch.cat([_embed(net, before), image, _embed(net, after + generated)], dim=1)
        hidden, logits = _forward(net, embeds)
        token = int(logits[0, -1].argmax())
        if token in seg_ids:
            segs.append((token, hidden[0, -1].clone()))
        generated.append(token)
        if token == eos_id:
            break
    return Answer(generated, segs, "original")


@torch.no_grad()
def encode_prefix(net: InteractVLMNet, before: list[int], image_features: torch.Tensor) -> Prefix:
    """Run the LLM over the prompt up to and including the image; image_features: (256, hidden)."""
    embeds = torch.cat([_embed(net, before), image_features[None].to(net.dtype)], dim=1)
    cache = DynamicCache(config=net.llava.config.text_config)
    _forward(net, embeds, cache)
    return Prefix(cache, embeds.shape[1])


@torch.no_grad()
def generate(
    net: InteractVLMNet,
    prefix: Prefix,
    suffixes: list[list[int]],
    seg_ids: set[int],
    eos_id: int,
    pad_id: int,
    max_new_tokens: int,
    drafts: list[list[int] | None] | None = None,
) -> list[Answer]:
    """Greedy answers for several questions sharing `prefix`, batched, KV-cached.

    suffixes: per question, the prompt ids after the image placeholder. drafts: per question, an
    expected answer ending in EOS, or None; see the module docstring.
    """
    if not suffixes:
        return []
    drafts = drafts or [None] * len(suffixes)
    use_draft = [d is not None and 0 < len(d) <= max_new_tokens and d[-1] == eos_id for d in drafts]
    rows = [s + (d if ok else []) for s, d, ok in zip(suffixes, drafts, use_draft, strict=True)]
    answers = _decode(
        net,
        prefix,
        rows,
        [len(d) if ok else 0 for d, ok in zip(drafts, use_draft, strict=True)],
        seg_ids,
        eos_id,
        pad_id,
        max_new_tokens,
    )
    retry = [i for i, a in enumerate(answers) if a is None]
    if retry:
        again = _decode(
            net,
            prefix,
            [suffixes[i] for i in retry],
            [0] * len(retry),
            seg_ids,
            eos_id,
            pad_id,
            max_new_tokens,
        )
        for i, a in zip(retry, again, strict=True):
            answers[i] = a
    return answers  # type: ignore[return-value]


def _decode(net, prefix, rows, draft_lens, seg_ids, eos_id, pad_id, max_new_tokens) -> list[Answer | None]:
    """Batched prefill of `rows` (left-padded after the shared prefix) then greedy steps.

    Rows with a draft (draft_lens > 0) are verified from the prefill alone: an Answer, or None when
    the draft is not what greedy decoding gives.
    """
    b = len(rows)
    width = max(len(r) for r in rows)
    dev = net.device
    ids = torch.full((b, width), pad_id, dtype=torch.long, device=dev)
    mask = torch.zeros((b, prefix.length + width), dtype=torch.long, device=dev)
    mask[:, : prefix.length] = 1
    pos = torch.full((b, width), prefix.length, dtype=torch.long, device=dev)
    for i, r in enumerate(rows):
        ids[i, width - len(r) :] = torch.tensor(r, device=dev)
        mask[i, prefix.length + width - len(r) :] = 1
        pos[i, width - len(r) :] = torch.arange(prefix.length, prefix.length + len(r), device=dev)
    cache = copy.deepcopy(prefix.cache)
    if b > 1:
        cache.batch_repeat_interleave(b)
    hidden, logits = _forward(net, net.embed_tokens(ids), cache, mask, pos)
    answers: list[Answer | None] = [None] * b
    active = []
    for i, n in enumerate(draft_lens):
        if n:
            answers[i] = _verify(
                rows[i][-n:], hidden[i, width - n - 1 :], logits[i, width - n - 1 :], seg_ids
            )
        else:
            active.append(i)
    if not active:
        return answers
    generated: dict[int, list[int]] = {i: [] for i in active}
    segs: dict[int, list[tuple[int, torch.Tensor]]] = {i: [] for i in active}
    last_hidden, last_logits = hidden[:, -1], logits[:, -1]
    next_pos = pos[:, -1] + 1
    for _ in range(max_new_tokens):
        tokens = last_logits.argmax(-1)
        chosen = tokens.tolist()  # one device sync per step
        for i in list(active):
            t = chosen[i]
            if t in seg_ids:
                segs[i].append((t, last_hidden[i].clone()))
            generated[i].append(t)
            if t == eos_id:
                active.remove(i)
        if not active:
            break
        mask = torch.cat([mask, torch.ones((b, 1), dtype=mask.dtype, device=dev)], dim=1)
        h, lg = _forward(net, net.embed_tokens(tokens[:, None]), cache, mask, next_pos[:, None])
        last_hidden, last_logits = h[:, -1], lg[:, -1]
        next_pos = next_pos + 1
    for i, toks in generated.items():
        answers[i] = Answer(toks, segs[i], "generate")
    return answers


def _verify(draft: list[int], hidden: torch.Tensor, logits: torch.Tensor, seg_ids: set[int]) -> Answer | None:
    """Accept `draft` if greedy decoding reproduces it. hidden/logits: (len(draft)+1, .) from the position
    before the draft; position j predicts draft[j]."""
    predicted = logits[: len(draft)].argmax(-1).tolist()
    if predicted != draft:
        return None
    segs = [(t, hidden[k].clone()) for k, t in enumerate(draft) if t in seg_ids]
    return Answer(list(draft), segs, "single_pass")
