"""The `parity` option: the original's lift dtype and decoding, on CPU with a tiny random bf16 model.

The reference lift is `official_reference.official_lift`, transcribed from the official code; it
shares no code with ivlm_core.render.lift.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from official_reference import official_lift
from tiny_models import always_answer
from transformers.models.sam.modeling_sam import SamVisionAttention

from ivlm_core.backends.interactvlm.configs import tiny_architecture
from ivlm_core.backends.interactvlm.mvloc import MVLoc, MVLocConfig, build_net
from ivlm_core.backends.interactvlm.tokenizer import add_interactvlm_tokens, build_dev_tokenizer
from ivlm_core.render.lift import LiftTables, lift, lift_like_original


def random_maps(num_views=4, size=48, num_vertices=300, seed=0):
    """Dense maps of a random mesh: each covered pixel sees one face, with random barycentrics."""
    rng = np.random.default_rng(seed)
    faces = np.stack([rng.choice(num_vertices, 3, replace=False) for _ in range(500)])
    face_of = rng.integers(0, len(faces), (num_views, size, size))
    p2v = faces[face_of].astype(np.int32)
    background = rng.random((num_views, size, size)) < 0.3
    p2v[background] = -1
    bary = rng.dirichlet([1.0, 1.0, 1.0], (num_views, size, size)).astype(np.float32)
    bary[background] = 0
    return p2v, bary, faces


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_lift_like_original_is_the_official_lift_bit_for_bit(dtype):
    """float32 is what the released demo lifts in (postprocess_masks returns float32 masks)."""
    p2v, bary, faces = random_maps()
    tables = LiftTables.from_dense(p2v, bary, faces, num_vertices=300)
    torch.manual_seed(0)
    logits = (torch.randn(4, 48, 48) * 3).to(dtype)
    reference = official_lift(logits, p2v, bary, 300)
    ours = lift_like_original(torch.sigmoid(logits.clamp(-20, 20)), tables)
    assert ours.dtype == dtype
    assert torch.equal(ours, reference)
    # The product's lift sums in another order: equal up to rounding, not bit for bit.
    float_lift = lift(torch.sigmoid(logits.float()), tables)
    tolerance = 2e-2 if dtype == torch.bfloat16 else 1e-5
    torch.testing.assert_close(float_lift, reference.float(), atol=tolerance, rtol=0)
    assert not torch.equal(float_lift, reference.float())


@pytest.fixture(scope="module")
def tiny_bf16():
    tokenizer = build_dev_tokenizer(["bench cup", "left hand"])
    ids = add_interactvlm_tokens(tokenizer)
    torch.manual_seed(0)
    net = build_net(tiny_architecture(len(tokenizer), ids), "cpu", dtype=torch.bfloat16)
    always_answer(net, ids["[SEG]"])  # random weights: make the answer contain [SEG]
    return net, tokenizer


def test_parity_decodes_as_the_original_with_eager_attention(tiny_bf16):
    net, tokenizer = tiny_bf16
    rng = np.random.default_rng(0)
    renders = rng.integers(0, 255, (4, 128, 128, 3), dtype=np.uint8)
    cams = rng.random((4, 5)).astype(np.float32)
    photo = rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)

    plain = MVLoc(net, tokenizer, MVLocConfig(max_new_tokens=3))
    plain.set_views("body", renders, cams)
    [reference] = plain.localize(photo, ["bench"], "body", mode="original")
    assert reference.masks.dtype == torch.float32 and reference.masks.shape == (4, 128, 128)

    parity = MVLoc(net, tokenizer, MVLocConfig(max_new_tokens=3, parity=True))
    assert net.llava.config.text_config._attn_implementation == "eager"
    assert net.sam.config.mask_decoder_config._attn_implementation == "eager"
    assert all(type(layer.attn) is SamVisionAttention for layer in net.sam.vision_encoder.layers)
    parity.set_views("body", renders, cams)
    with pytest.raises(ValueError, match="parity mode decodes as the original only"):
        parity.localize(photo, ["bench"], "body", mode="fast")
    [res] = parity.localize(photo, ["bench"], "body", mode="original")
    assert res.text == reference.text and res.path == "original"
    assert res.masks.dtype == torch.float32  # bf16 logits upsampled in float32, as postprocess_masks
    torch.testing.assert_close(res.masks, reference.masks, atol=0.1, rtol=0.05)
