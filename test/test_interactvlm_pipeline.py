"""MV-Loc end to end on CPU with a tiny random-init model of the real architecture.

The anny body is rendered from the real InteractVLM human rig; photos are skimage's. A short
text-only fine-tune (the real training code) teaches the tiny model to answer in InteractVLM's format
([SEG] then </s>), so the decoding paths have real answers to agree on.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage import data

import ivlm_core.backends.interactvlm.backend as backend_module
from ivlm_core.backends.interactvlm.backend import InteractVLMBackend
from ivlm_core.backends.interactvlm.body_rig import TRAINED_BODY_KEY
from ivlm_core.backends.interactvlm.configs import checkpoint_config, tiny_architecture
from ivlm_core.backends.interactvlm.mvloc import MVLoc, MVLocConfig, build_net
from ivlm_core.backends.interactvlm.tokenizer import add_interactvlm_tokens, build_dev_tokenizer
from ivlm_core.backends.interactvlm.train import (
    ContactSample,
    TrainConfig,
    add_lora,
    export_checkpoint,
    load_trainable_state,
    sample_loss,
    train,
)
from ivlm_core.types import Detection

LABELS = ["bench", "tennis racket", "cup"]


def _tiny_loc(seed: int) -> MVLoc:
    tokenizer = build_dev_tokenizer(["bench tennis_racket cup", "left hand, right hand, right forearm"])
    ids = add_interactvlm_tokens(tokenizer)
    torch.manual_seed(seed)
    arch = tiny_architecture(len(tokenizer), ids)
    arch.extra[TRAINED_BODY_KEY] = "anny"  # a development model trained here on anny renders
    return MVLoc(build_net(arch, "cpu"), tokenizer, MVLocConfig(max_new_tokens=28))


@pytest.fixture(scope="module")
def backend() -> InteractVLMBackend:
    return InteractVLMBackend(localizer=_tiny_loc(0), body_model="anny")


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return data.astronaut()


@pytest.fixture(scope="module")
def hand_contact(backend) -> np.ndarray:
    contact = np.zeros(backend.body.num_vertices, bool)
    contact[backend.body.part_vertex_ids("left_hand")] = True
    return contact


@pytest.fixture(scope="module")
def answering(backend, photo, hand_contact, tmp_path_factory) -> InteractVLMBackend:
    """The backend after a text-only warm-up on the demo prompt (so it writes [SEG] and </s>)."""
    samples = [
        ContactSample(photo, "bench", hand_contact, ["left hand"]),
        ContactSample(photo, "tennis racket", hand_contact, ["right hand", "right forearm"]),
    ]
    out = str(tmp_path_factory.mktemp("warmup"))
    for steps in (50, 70, 90, 120):  # resumes each time; stops as soon as both answers are well formed
        cfg = TrainConfig(out_dir=out, steps=steps, lr=1e-2, bce_weight=0, dice_weight=0, contact3d_weight=0,
                          part_dropout=0, fixed_question=True, save_every=1000)  # fmt: skip
        train(backend.loc, samples, backend.rig, backend.body.faces, cfg)
        answers = backend.loc.localize(photo, ["bench", "tennis racket"], "body", mode="generate")
        if all("[SEG]" in a.text and a.text.endswith("</s>") for a in answers):
            break
    return backend


def test_renders_are_encoded_once_per_body(backend):
    views = backend.loc.views["body"]
    assert views.embeddings.shape == (4, backend.loc.arch.sam.vision_config.output_channels, 8, 8)
    np.testing.assert_allclose(views.cam_params[0].numpy(), [0.2, 0.125, 0.875, 0.5, 0.5], atol=1e-6)


def test_answers_end_with_seg_token_and_eos(answering, photo):
    [res] = answering.loc.localize(photo, ["bench"], "body", mode="generate")
    assert "[SEG]" in res.text and res.text.endswith("</s>")
    assert res.masks.shape == (4, 128, 128)


def test_generate_and_fast_paths_match_the_original(answering, photo):
    loc = answering.loc
    loc.last_answers.clear()
    original = loc.localize(photo, LABELS, "body", mode="original")
    cached = loc.localize(photo, LABELS, "body", mode="generate")  # prefix reuse + batching (3 lengths)
    fast = loc.localize(photo, LABELS, "body", mode="fast")  # drafts = previous answers -> single pass
    assert [r.path for r in original] == ["original"] * 3
    assert [r.path for r in fast if r.text.endswith("</s>")] == ["single_pass"] * sum(
        r.text.endswith("</s>") for r in fast
    )
    assert any(r.path == "single_pass" for r in fast)
    for o, c, f in zip(original, cached, fast, strict=True):
        assert o.text == c.text == f.text
        assert o.masks.shape == c.masks.shape == f.masks.shape
        if o.masks.numel():
            torch.testing.assert_close(c.masks, o.masks, atol=1e-3, rtol=1e-3)
            torch.testing.assert_close(f.masks, o.masks, atol=1e-3, rtol=1e-3)


def test_wrong_draft_falls_back_to_the_greedy_answer(answering, photo):
    loc = answering.loc
    loc.last_answers.clear()
    [reference] = loc.localize(photo, ["bench"], "body", mode="generate")
    loc.last_answers["bench"] = loc.answer_ids("bench", "It is [SEG].")
    [res] = loc.localize(photo, ["bench"], "body", mode="fast")
    assert res.path == "generate" and res.text == reference.text
    torch.testing.assert_close(res.masks, reference.masks, atol=1e-3, rtol=1e-3)


def test_masks_lift_to_vertex_probabilities_on_the_body(answering, photo):
    people = Detection("person", np.array([150.0, 20.0, 400.0, 510.0]))
    objects = [
        Detection("bench", np.array([0.0, 300.0, 200.0, 510.0])),
        Detection("cup", np.array([10.0, 10, 60, 60])),
    ]
    results = answering.estimate(photo, [people, *objects])
    assert [r.obj.label for r in results] == ["bench", "cup"]
    for r in results:
        assert r.body_probabilities.shape == (answering.body.num_vertices,)
        assert r.body_probabilities.dtype == np.float32
        assert r.body_probabilities.min() >= 0.0 and r.body_probabilities.max() <= 1.0
        assert r.backend == "interactvlm" and r.text
    bench = results[0]
    assert bench.body_probabilities.std() > 0  # the masks, not a constant, reach the vertices
    assert answering.estimate(photo, [people]) == []
    with pytest.raises(ValueError, match="uint8"):
        answering.estimate(photo.astype(np.float32), objects)


def test_training_reduces_the_loss_and_the_lora_checkpoint_reloads(photo, hand_contact, backend, tmp_path):
    import random

    loc = _tiny_loc(1)
    loc.set_views("body", backend.rig.images, backend.rig.cam_params)
    samples = [ContactSample(photo, "bench", hand_contact, ["left hand"])]
    cfg = TrainConfig(
        out_dir=str(tmp_path), steps=4, lr=3e-3, fixed_question=True, part_dropout=0, save_every=4
    )
    faces = backend.body.faces
    add_lora(loc, cfg)
    before = float(sample_loss(loc, samples[0], backend.rig, faces, cfg, random.Random(0))["loss"].detach())
    losses = train(loc, samples, backend.rig, faces, cfg)
    after = float(sample_loss(loc, samples[0], backend.rig, faces, cfg, random.Random(0))["loss"].detach())
    assert len(losses) == 4 and after < before
    assert any("lora_A" in n for n, p in loc.net.named_parameters() if p.requires_grad)
    assert not any(p.requires_grad for n, p in loc.net.named_parameters() if "vision_encoder" in n)

    reloaded = _tiny_loc(1)  # same base weights as `loc` (the LoRA file holds only what trains)
    reloaded.set_views("body", backend.rig.images, backend.rig.cam_params)
    add_lora(reloaded, cfg)
    load_trainable_state(reloaded, tmp_path / "last" / "trainable.safetensors")
    again = float(
        sample_loss(reloaded, samples[0], backend.rig, faces, cfg, random.Random(0))["loss"].detach()
    )
    assert again == pytest.approx(after, rel=1e-4)
    assert train(loc, samples, backend.rig, faces, cfg) == []  # resumed at step 4 of 4: nothing left

    export_checkpoint(loc, tmp_path / "merged", checkpoint_config(loc.arch))  # LoRA merged, original names
    merged = MVLoc.from_checkpoint(MVLocConfig(checkpoint_dir=str(tmp_path / "merged"), device="cpu"))
    merged.set_views("body", backend.rig.images, backend.rig.cam_params)
    exported = float(
        sample_loss(merged, samples[0], backend.rig, faces, cfg, random.Random(0))["loss"].detach()
    )
    assert exported == pytest.approx(after, rel=1e-4)


def test_object_side_lifts_onto_the_registry_mesh_encoded_once(answering, photo):
    object_loc = MVLoc(answering.loc.net, answering.loc.tokenizer, MVLocConfig(max_new_tokens=28))
    both = InteractVLMBackend(localizer=answering.loc, object_localizer=object_loc, body_model="anny")
    bench = Detection("bench", np.array([0.0, 300.0, 200.0, 510.0]))
    [first] = both.estimate(photo, [bench])
    mesh = both.objects.get("bench", bench.box_xyxy)
    assert first.object_mesh_id == mesh.mesh_id
    assert first.object_probabilities.shape == (mesh.vertices.shape[0],)
    assert first.object_probabilities.min() >= 0.0 and first.object_probabilities.max() <= 1.0
    assert any(e.startswith("object answer: ") and "[SEG]" in e for e in first.evidence)
    embeddings = object_loc.views[f"object:{mesh.mesh_id}"].embeddings
    [second] = both.estimate(photo, [bench])
    assert object_loc.views[f"object:{mesh.mesh_id}"].embeddings is embeddings  # rendered + encoded once
    np.testing.assert_allclose(second.object_probabilities, first.object_probabilities, atol=1e-5)


def test_object_rigs_are_kept_for_the_most_recent_meshes_only(answering, photo, monkeypatch):
    """Generic meshes change id with their size: the renders, SAM embeddings and lift tables kept per mesh
    are bounded (least recently used dropped), so a long run with many labels does not grow."""
    monkeypatch.setattr(backend_module, "MAX_OBJECT_RIGS", 2)
    object_loc = MVLoc(answering.loc.net, answering.loc.tokenizer, MVLocConfig(max_new_tokens=28))
    both = InteractVLMBackend(localizer=answering.loc, object_localizer=object_loc, body_model="anny")
    box = np.array([0.0, 300.0, 200.0, 510.0])
    for label in ("bench", "cup", "book"):
        both.estimate(photo, [Detection(label, box)])
    kept = sorted(k for k in object_loc.views if k.startswith("object:"))
    assert kept == sorted(f"object:{both.objects.get(label, box).mesh_id}" for label in ("cup", "book"))
    [again] = both.estimate(photo, [Detection("bench", box)])  # rendered again when it comes back
    assert again.object_probabilities.shape == (both.objects.get("bench", box).vertices.shape[0],)
    assert len([k for k in object_loc.views if k.startswith("object:")]) == 2

