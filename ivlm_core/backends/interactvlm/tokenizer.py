"""Tokenizer handling exactly as InteractVLM/LISA: added tokens, the `<image>` placeholder, checks.

The released checkpoints ship their (Llama-2) tokenizer with the added tokens already in it; we load
it from the checkpoint folder and check it against config.json before any weight is read.
"""

from __future__ import annotations

import json
import re
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


class LlamaSlowTokenizer:
    """The checkpoint's Llama sentencepiece model with transformers 4.31's slow `LlamaTokenizer` rules
    (the version InteractVLM pins; `legacy` behaviour), so prompts tokenize exactly as in training.

    Those rules differ from today's fast tokenizers: text is split on added and special tokens; the
    whitespace next to an added token that is not a special token ([SEG], <im_start>, <im_end>) is
    stripped (so the newline after <im_end> never reaches the model); every remaining piece is encoded
    by sentencepiece on its own, dummy prefix included ("[SEG]." gives "[SEG]", "▁."). It also avoids
    transformers' sentencepiece->tokenizers conversion, which needs a newer protobuf than this venv has.
    """

    def __init__(
        self, model_file: str | Path, added_tokens: dict[str, int] | None = None, max_length: int = 512
    ):
        import sentencepiece as spm

        self.sp = spm.SentencePieceProcessor(model_file=str(model_file))
        self.model_max_length = max_length
        self.bos_token, self.eos_token, self.unk_token = "<s>", "</s>", "<unk>"
        self.special = {self.bos_token, self.eos_token, self.unk_token}
        self.added: dict[str, int] = {}
        for token, index in sorted((added_tokens or {}).items(), key=lambda kv: kv[1]):
            if index != len(self):
                raise ValueError(
                    f"added token {token!r} has id {index}, expected {len(self)} (ids follow the vocab)"
                )
            self.added[token] = index
        self._compile()

    def _compile(self) -> None:
        names = sorted(self.special | set(self.added), key=len, reverse=True)
        self._split = re.compile("(" + "|".join(re.escape(n) for n in names) + ")")

    def __len__(self) -> int:
        return self.sp.get_piece_size() + len(self.added)

    @property
    def bos_token_id(self) -> int:
        return self.sp.bos_id()

    @property
    def eos_token_id(self) -> int:
        return self.sp.eos_id()

    @property
    def unk_token_id(self) -> int:
        return self.sp.unk_id()

    @property
    def pad_token_id(self) -> int:
        return self.sp.unk_id()  # run_demo.py: tokenizer.pad_token = tokenizer.unk_token

    def add_tokens(self, tokens: str | list[str], special_tokens: bool = False) -> int:
        """Append tokens not yet in the vocabulary (as `add_tokens` did); returns how many were new."""
        names = [tokens] if isinstance(tokens, str) else list(tokens)
        new = [t for t in names if t not in self.added and self.sp.piece_to_id(t) == self.unk_token_id]
        for token in new:
            self.added[token] = len(self)
        self._compile()
        return len(new)

    def tokenize(self, text: str) -> list[str]:
        """Token strings of `text` (no BOS), by the 4.31 slow-tokenizer rules in the class docstring."""
        parts = self._split.split(text)
        for i, part in enumerate(parts):
            if part in self.added:
                if i > 0:
                    parts[i - 1] = parts[i - 1].rstrip()
                if i + 1 < len(parts):
                    parts[i + 1] = parts[i + 1].lstrip()
        pieces: list[str] = []
        for part in parts:
            if part in self.added or part in self.special:
                pieces.append(part)
            elif part:
                pieces.extend(self.sp.encode(part, out_type=str))
        return pieces

    def convert_tokens_to_ids(self, tokens: str | list[str]) -> int | list[int]:
        if isinstance(tokens, list):
            return [self.convert_tokens_to_ids(t) for t in tokens]
        return self.added[tokens] if tokens in self.added else self.sp.piece_to_id(tokens)

    def __call__(self, text: str, add_special_tokens: bool = True) -> _Encoding:
        ids = self.convert_tokens_to_ids(self.tokenize(text))
        return _Encoding([self.bos_token_id, *ids] if add_special_tokens else ids)

    def decode(self, ids: list[int], skip_special_tokens: bool = False) -> str:
        """Text of `ids`; added tokens (and </s> unless skipped) written out by name."""
        names = {v: k for k, v in self.added.items()}
        if not skip_special_tokens:
            names[self.eos_token_id] = self.eos_token
        out: list[str] = []
        run: list[int] = []
        for i in ids:
            if i in names:
                out += [self.sp.decode(run), names[i]]
                run = []
            elif i != self.bos_token_id and i != self.eos_token_id:
                run.append(i)
        out.append(self.sp.decode(run))
        return "".join(out)

    def save_pretrained(self, folder: str | Path) -> None:
        """Write the checkpoint layout this class reads: tokenizer.model + added_tokens.json."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "tokenizer.model").write_bytes(self.sp.serialized_model_proto())
        (folder / "added_tokens.json").write_text(json.dumps(self.added))


class _Encoding(dict):
    """`tokenizer(text)` result: `.input_ids` and `["input_ids"]`, as with transformers tokenizers."""

    def __init__(self, ids: list[int]):
        super().__init__(input_ids=ids)
        self.input_ids = ids


def load_tokenizer(folder: str | Path, arch: MVLocArchitecture, max_length: int = 512):
    """The checkpoint's tokenizer, configured as in run_demo.py and checked against `arch`.

    A Llama `tokenizer.model` (the released checkpoints) loads as `LlamaSlowTokenizer`; a folder with
    only a `tokenizer.json` (development builds) loads through transformers.
    """
    folder = Path(folder)
    if (folder / "tokenizer.model").is_file():
        added_file = folder / "added_tokens.json"
        added = json.loads(added_file.read_text()) if added_file.is_file() else {}
        tokenizer = LlamaSlowTokenizer(folder / "tokenizer.model", added, max_length)
        check_tokenizer(tokenizer, arch)
        return tokenizer
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
