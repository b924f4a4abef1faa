"""Tokenizer handling exactly as InteractVLM/LISA: added tokens, the `<image>` placeholder, checks.

The released checkpoints ship their (Llama-2) tokenizer with the added tokens already in it; we load
it from the checkpoint folder and check it against config.json before any weight is read.
"""

from __future__ import annotations

from pathlib import Path

from transformers import AutoTokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast

from ivlm_core.backends.interactvlm import prompts
from ivlm_core.backends.interactvlm.model import MVLocArchitecture

IMAGE_TOKEN_INDEX = -200  # LLaVA's placeholder id for the image features inside input_ids
IGNORE_INDEX = -100  # label id that the LM loss skips


def add_interactvlm_tokens(tokenizer: PreTrainedTokenizerBase, token_type: str = "Gen") -> dict[str, int]:
    """Add the segmentation tokens and `<im_start>`/`<im_end>` as `train.py` does; returns name -> id.

    Order matters (ids are assigned in order): [SEG] (+ [HSEG], [OSEG] for Gen-Hu-Obj) as normal added
    tokens, then `<im_start>`, `<im_end>` as special tokens (`utils/utils.py::add_new_tokens`).
    """
    names = {
        "Gen": [prompts.SEG_TOKEN],
        "Gen-Hu-Obj": [prompts.SEG_TOKEN, prompts.HSEG_TOKEN, prompts.OSEG_TOKEN],
    }
    if token_type not in names:
        raise ValueError(f"token_type {token_type!r} is not one of {list(names)}")
    ids = {}
    for name in names[token_type]:
        tokenizer.add_tokens(name)
        ids[name] = tokenizer(name, add_special_tokens=False)["input_ids"][0]
    tokenizer.add_tokens([prompts.IM_START_TOKEN, prompts.IM_END_TOKEN], special_tokens=True)
    return ids


def tokenize_prompt(text: str, tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """LLaVA's `tokenizer_image_token`: each chunk around `<image>` tokenized on its own (with BOS),
    the BOS of later chunks dropped, and IMAGE_TOKEN_INDEX where `<image>` was."""
    chunks = [tokenizer(chunk).input_ids for chunk in text.split(prompts.IMAGE_TOKEN)]
    ids: list[int] = []
    offset = 0
    if chunks and chunks[0] and chunks[0][0] == tokenizer.bos_token_id:
        offset = 1
        ids.append(chunks[0][0])
    for i, chunk in enumerate(chunks):
        if i:
            ids.append(IMAGE_TOKEN_INDEX)
        ids.extend(chunk[offset:])
    return ids


def load_tokenizer(
    folder: str | Path, arch: MVLocArchitecture, max_length: int = 512
) -> PreTrainedTokenizerBase:
    """The checkpoint's tokenizer, configured as in run_demo.py and checked against `arch`."""
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            str(folder), model_max_length=max_length, padding_side="right", local_files_only=True
        )
    except (OSError, ValueError) as err:
        raise ValueError(
            f"cannot load the tokenizer from {folder}: {err}. The InteractVLM checkpoint folder must contain "
            "the tokenizer it was trained with (tokenizer.model / tokenizer.json + added_tokens.json)"
        ) from err
    tokenizer.pad_token = tokenizer.unk_token
    check_tokenizer(tokenizer, arch)
    return tokenizer


def check_tokenizer(tokenizer: PreTrainedTokenizerBase, arch: MVLocArchitecture) -> None:
    """Raise ValueError when the tokenizer does not fit the checkpoint (wrong vocab or token ids)."""
    problems = []
    if len(tokenizer) != arch.text.vocab_size:
        problems.append(f"it has {len(tokenizer)} tokens, the model's embedding has {arch.text.vocab_size}")
    for name, want in arch.seg_token_ids.items():
        got = tokenizer.convert_tokens_to_ids(name)
        if got != want:
            problems.append(f"{name} is id {got}, config.json says {want}")
    for name in (prompts.IM_START_TOKEN, prompts.IM_END_TOKEN):
        if tokenizer.convert_tokens_to_ids(name) in (None, tokenizer.unk_token_id):
            problems.append(f"{name} is not in its vocabulary")
    if tokenizer.eos_token_id is None or tokenizer.bos_token_id is None:
        problems.append("it has no BOS/EOS token")
    if problems:
        raise ValueError(
            "tokenizer does not match the checkpoint: "
            + "; ".join(problems)
            + ". Use the tokenizer saved with this checkpoint (with [SEG], <im_start>, <im_end> added)."
        )


def build_dev_tokenizer(
    extra_text: list[str] | None = None, vocab_size: int = 400
) -> PreTrainedTokenizerFast:
    """A small BPE tokenizer for development and tests (no Llama files exist offline).

    Trained on the prompt/answer strings (+ `extra_text`) with Llama's special-token layout
    (<unk>=0, <s>=1, </s>=2), then the InteractVLM tokens are added exactly as for the real one.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from tokenizers.processors import TemplateProcessing

    corpus = [
        prompts.SYSTEM,
        *prompts.HCONTACT_QUESTIONS,
        *prompts.HCONTACT_ANSWERS,
        *prompts.HCONTACT_PARTS_QUESTIONS,
        *prompts.HCONTACT_PARTS_ANSWERS,
        *prompts.OCONTACT_QUESTIONS,
        *prompts.OCONTACT_ANSWERS,
        prompts.DEMO_OAFFORD_PROMPT,
        "USER: ASSISTANT:",
        *(extra_text or []),
    ]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    alphabet = [chr(c) for c in range(32, 127)] + ["\n"]
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<unk>", "<s>", "</s>"],
        initial_alphabet=alphabet,
        show_progress=False,
    )
    tok.train_from_iterator(corpus, trainer)
    tok.post_processor = TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<unk>",
        model_max_length=512,
        padding_side="right",
    )
