"""Checkpoint, tokenizer and prompt handling of the InteractVLM backend (tiny configs, CPU, no downloads).

Synthetic checkpoints are written in the original key layout (LISA/InteractVLM names, SAM in
segment_anything names, bf16, sharded safetensors or .bin) and must load unchanged.
"""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from ivlm_core.backends.interactvlm import prompts
from ivlm_core.backends.interactvlm.checkpoint import (
    CheckpointError,
    expected_keys,
    map_key,
    original_key,
    save_original_layout,
)
from ivlm_core.backends.interactvlm.configs import checkpoint_config, full_architecture, tiny_architecture
from ivlm_core.backends.interactvlm.mvloc import MVLoc, MVLocConfig, build_net
from ivlm_core.backends.interactvlm.tokenizer import (
    IMAGE_TOKEN_INDEX,
    LlamaSlowTokenizer,
    add_interactvlm_tokens,
    build_dev_tokenizer,
    load_tokenizer,
    tokenize_prompt,
)

ORIGINAL_NAMES = [
    "model.embed_tokens.weight",
    "model.layers.1.self_attn.q_proj.weight",
    "lm_head.weight",
    "model.mm_projector.weight",
    "model.vision_tower.vision_tower.vision_model.encoder.layers.0.self_attn.q_proj.weight",
    "model.visual_model.image_encoder.blocks.1.attn.rel_pos_h",
    "model.visual_model.image_encoder.neck.3.weight",
    "model.visual_model.prompt_encoder.pe_layer.positional_encoding_gaussian_matrix",
    "model.visual_model.prompt_encoder.mask_downscaling.6.weight",
    "model.visual_model.mask_decoder.transformer.layers.0.norm4.bias",
    "model.visual_model.mask_decoder.output_hypernetworks_mlps.3.layers.2.weight",
    "model.visual_model.mask_decoder.iou_prediction_head.layers.1.bias",
    "model.text_hidden_fcs.0.2.weight",
    "cam_pose_encoder.view_transforms.3.weight",
]


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    """A tiny Llama-style sentencepiece model (BPE, byte fallback, <unk>/<s>/</s> = 0/1/2) in the
    checkpoint layout, with InteractVLM's tokens added: the released tokenizers' format, in small."""
    import sentencepiece as spm

    folder = tmp_path_factory.mktemp("spm")
    corpus = [
        prompts.SYSTEM,
        *prompts.HCONTACT_PARTS_QUESTIONS,
        *prompts.HCONTACT_PARTS_ANSWERS,
        *prompts.HCONTACT_ANSWERS,
        "bench cup tennis racket left hand right hand USER: ASSISTANT:",
    ]
    (folder / "corpus.txt").write_text("\n".join(corpus * 3))
    spm.SentencePieceTrainer.train(
        input=str(folder / "corpus.txt"),
        model_prefix=str(folder / "tokenizer"),
        vocab_size=600,
        hard_vocab_limit=False,
        model_type="bpe",
        byte_fallback=True,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        minloglevel=2,
    )
    tok = LlamaSlowTokenizer(folder / "tokenizer.model")
    add_interactvlm_tokens(tok)
    return tok


@pytest.fixture(scope="module")
def arch(tokenizer):
    return tiny_architecture(len(tokenizer), {"[SEG]": tokenizer.convert_tokens_to_ids("[SEG]")})


@pytest.fixture(scope="module")
def net(arch):
    torch.manual_seed(0)
    return build_net(arch, "cpu")


def _write(folder, net, arch, tokenizer, shard_bytes=200_000, **config):
    save_original_layout(net, folder, checkpoint_config(arch, **config), max_shard_bytes=shard_bytes)
    tokenizer.save_pretrained(folder)
    return folder


def test_added_tokens_follow_the_original_order():
    tok = build_dev_tokenizer()
    base = len(tok)
    ids = add_interactvlm_tokens(tok, "Gen-Hu-Obj")
    assert ids == {"[SEG]": base, "[HSEG]": base + 1, "[OSEG]": base + 2}
    assert tok.convert_tokens_to_ids(["<im_start>", "<im_end>"]) == [base + 3, base + 4]


def test_prompt_is_the_llava_v1_conversation_with_one_image_placeholder(tokenizer):
    question = prompts.DEMO_HCONTACT_PROMPT.format(class_name=prompts.object_name("Tennis Racket"))
    text = prompts.conversation(question)
    assert text == (
        "A chat between a curious human and an artificial intelligence assistant. The assistant gives "
        "helpful, detailed, and polite answers to the human's questions. USER: <im_start><image><im_end>\n"
        "Which body parts are in contact with the tennis_racket? Segment these contact areas. ASSISTANT:"
    )
    ids = tokenize_prompt(text, tokenizer)
    assert ids.count(IMAGE_TOKEN_INDEX) == 1 and ids.count(tokenizer.bos_token_id) == 1 and ids[0] == 1
    i = ids.index(IMAGE_TOKEN_INDEX)
    assert ids[i - 1] == tokenizer.convert_tokens_to_ids("<im_start>")
    assert ids[i + 1] == tokenizer.convert_tokens_to_ids("<im_end>")
    assert prompts.conversation("q", "It is [SEG].").endswith("ASSISTANT: It is [SEG].</s>")


def test_tokenization_follows_the_slow_llama_tokenizer_of_transformers_4_31(tokenizer, tmp_path):
    sp = tokenizer.sp
    text = prompts.conversation(prompts.DEMO_HCONTACT_PROMPT.format(class_name="bench"))
    ids = tokenize_prompt(text, tokenizer)
    i = ids.index(IMAGE_TOKEN_INDEX)
    before, question = text.split("<im_start>")[0], text.split("<im_end>")[1]
    # each piece is encoded on its own (dummy prefix), the whitespace around added tokens is dropped:
    assert ids[1 : i - 1] == sp.encode(before.rstrip())
    assert ids[i + 2 :] == sp.encode(question.lstrip())  # the "\n" after <im_end> is gone
    assert tokenizer.tokenize("region is [SEG].</s>") == [
        *sp.encode("region is", out_type=str),
        "[SEG]",
        *sp.encode(".", out_type=str),
        "</s>",
    ]
    tokenizer.save_pretrained(tmp_path)
    arch = tiny_architecture(len(tokenizer), {"[SEG]": tokenizer.convert_tokens_to_ids("[SEG]")})
    reloaded = load_tokenizer(tmp_path, arch)
    assert tokenize_prompt(text, reloaded) == ids
    assert reloaded.decode([*reloaded("It is [SEG].").input_ids, reloaded.eos_token_id]) == "It is[SEG].</s>"


def test_key_map_round_trips_and_uses_the_original_names(net):
    ours = expected_keys(net)
    originals = {original_key(k) for k in ours}
    assert len(originals) == len(ours)
    assert all(map_key(original_key(k)) == k for k in ours)
    assert set(ORIGINAL_NAMES) <= originals
    assert map_key("model.layers.0.self_attn.rotary_emb.inv_freq") is None


def test_sharded_bf16_checkpoint_loads_with_no_missing_or_unexpected_keys(net, arch, tokenizer, tmp_path):
    folder = _write(tmp_path / "ckpt", net.to(torch.bfloat16), arch, tokenizer)
    net.float()
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) > 3
    loc = MVLoc.from_checkpoint(MVLocConfig(checkpoint_dir=str(folder), device="cpu"))
    assert loc.net.dtype == torch.float32
    mine, theirs = loc.net.state_dict(), net.state_dict()
    assert set(mine) == set(theirs)
    for key in theirs:
        torch.testing.assert_close(mine[key], theirs[key].to(torch.bfloat16).float(), rtol=0, atol=0)


def test_bin_checkpoint_and_separate_sam_file_load(net, arch, tokenizer, tmp_path):
    folder = _write(tmp_path / "st", net, arch, tokenizer, shard_bytes=0)
    state = load_file(folder / "model.safetensors")
    (folder / "model.safetensors").unlink()
    sam = {
        k.removeprefix("model.visual_model."): v
        for k, v in state.items()
        if k.startswith("model.visual_model.")
    }
    torch.save(
        {k: v for k, v in state.items() if not k.startswith("model.visual_model.")},
        folder / "pytorch_model.bin",
    )
    torch.save(sam, tmp_path / "sam_vit_h.pth")
    with pytest.raises(CheckpointError, match=r"(?s)missing \(\d+\): model.visual_model.*set sam_checkpoint"):
        MVLoc.from_checkpoint(MVLocConfig(checkpoint_dir=str(folder), device="cpu"))
    loc = MVLoc.from_checkpoint(
        MVLocConfig(checkpoint_dir=str(folder), sam_checkpoint=str(tmp_path / "sam_vit_h.pth"), device="cpu")
    )
    for key, value in net.state_dict().items():
        torch.testing.assert_close(loc.net.state_dict()[key], value, rtol=0, atol=0)


def test_wrong_or_partial_folders_fail_before_loading(net, arch, tokenizer, tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        MVLoc.from_checkpoint(MVLocConfig(checkpoint_dir=str(tmp_path / "nope"), device="cpu"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match=r"no config\.json"):
        MVLoc.from_checkpoint(MVLocConfig(checkpoint_dir=str(tmp_path / "empty"), device="cpu"))

    folder = _write(tmp_path / "partial", net, arch, tokenizer)
    shards = sorted(folder.glob("model-*.safetensors"))
    shards[1].unlink()
    with pytest.raises(CheckpointError, match=r"shards listed .* are missing"):
        MVLoc.from_checkpoint(MVLocConfig(checkpoint_dir=str(folder), device="cpu"))

    folder = _write(tmp_path / "extra", net, arch, tokenizer, shard_bytes=0)
    state = load_file(folder / "model.safetensors")
    state["model.fusion.proj.weight"] = torch.zeros(2)
    del state["model.text_hidden_fcs.0.2.bias"]
    save_file(state, folder / "model.safetensors")
    with pytest.raises(CheckpointError) as err:
        MVLoc.from_checkpoint(MVLocConfig(checkpoint_dir=str(folder), device="cpu"))
    assert "missing (1): model.text_hidden_fcs.0.2.bias" in str(err.value)
    assert "unexpected (1): model.fusion.proj.weight" in str(err.value)


def test_tokenizer_mismatch_is_reported(net, arch, tokenizer, tmp_path):
    folder = _write(tmp_path / "tok", net, arch, tokenizer, seg_token_idx=7)
    with pytest.raises(ValueError, match=r"tokenizer does not match the checkpoint: \[SEG\] is id"):
        MVLoc.from_checkpoint(MVLocConfig(checkpoint_dir=str(folder), device="cpu"))


def test_13b_config_on_cpu_is_refused_before_any_load(tmp_path):
    folder = tmp_path / "interactvlm-3d-hcontact-damon"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(checkpoint_config(full_architecture())))
    (folder / "model-00001-of-00001.safetensors").write_bytes(b"")
    index = {"weight_map": {"lm_head.weight": "model-00001-of-00001.safetensors"}}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(ValueError, match=r"~1[34]B parameters.*CUDA"):  # the empty weights file is never read
        MVLoc.from_checkpoint(MVLocConfig(checkpoint_dir=str(folder), device="cpu"))


def test_node_factory_builds_the_backend_only_with_a_checkpoint(tmp_path):
    from ivlm_core.backends import backend_options, create_backend

    assert {"checkpoint", "device", "body_model", "object_mesh_folder"} <= backend_options("interactvlm")
    with pytest.raises(ValueError, match="needs its checkpoint folder"):
        create_backend("interactvlm", device="cpu")
    with pytest.raises(CheckpointError, match="does not exist"):
        create_backend("interactvlm", checkpoint=str(tmp_path / "missing"), device="cpu")
