"""Joint human + object contact from one answer holding [HSEG] and [OSEG] (tiny Gen-Hu-Obj model, CPU).

The original collects every seg token but decodes them all on one view set, which crashes with more
than one; here each token goes to its own view set through its own half of the attention splitter.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tiny_models import contrast_masks

from ivlm_core.backends.interactvlm.backend import InteractVLMBackend
from ivlm_core.backends.interactvlm.body_rig import TRAINED_BODY_KEY
from ivlm_core.backends.interactvlm.configs import tiny_architecture
from ivlm_core.backends.interactvlm.generation import Answer
from ivlm_core.backends.interactvlm.mvloc import MVLoc, MVLocConfig, build_net
from ivlm_core.backends.interactvlm.tokenizer import add_interactvlm_tokens, build_dev_tokenizer
from ivlm_core.types import Detection


class Script:
    """lm_head hook: the n-th call of a localize call puts its argmax on `tokens[n]`."""

    def __init__(self, net, tokens):
        self.tokens, self.calls = tokens, 0
        net.llava.lm_head.register_forward_hook(self)

    def __call__(self, module, args, logits):
        token = self.tokens[min(self.calls, len(self.tokens) - 1)]
        self.calls += 1
        logits = logits.clone()
        logits[:, -1, token] = logits.abs().max() + 10
        return logits


@pytest.fixture(scope="module")
def joint():
    tokenizer = build_dev_tokenizer(["bench cup", "left hand"])
    ids = add_interactvlm_tokens(tokenizer, "Gen-Hu-Obj")
    torch.manual_seed(0)
    arch = tiny_architecture(len(tokenizer), ids, token_type="Gen-Hu-Obj")
    arch.extra[TRAINED_BODY_KEY] = "anny"
    net = build_net(arch, "cpu")
    contrast_masks(net)
    loc = MVLoc(net, tokenizer, MVLocConfig(max_new_tokens=6))
    word = tokenizer.convert_tokens_to_ids(tokenizer.tokenize("bench"))[0]
    script = Script(loc.net, [ids["[HSEG]"], word, ids["[OSEG]"], tokenizer.eos_token_id])
    return loc, ids, script


def test_every_seg_token_is_kept_in_both_decoding_paths(joint):
    loc, _, script = joint
    rng = np.random.default_rng(0)
    loc.set_views("a", rng.integers(0, 255, (4, 128, 128, 3), dtype=np.uint8), rng.random((4, 5), np.float32))
    photo = rng.integers(0, 255, (64, 80, 3), dtype=np.uint8)
    for mode in ("original", "generate"):
        loc.localize(photo, ["bench"], "a", mode=mode)  # the first call also encodes the system prompt
        script.calls = 0
        [res] = loc.localize(photo, ["bench"], "a", mode=mode)
        assert "[HSEG]" in res.text and "[OSEG]" in res.text, res.text
        assert res.masks.shape == (4, 128, 128) and res.object_masks is None


def test_hseg_and_oseg_are_routed_to_their_own_views_and_splitter_halves(joint):
    loc, ids, _ = joint
    rng = np.random.default_rng(1)
    for key in ("body", "object"):
        renders = rng.integers(0, 255, (4, 128, 128, 3), dtype=np.uint8)
        loc.set_views(key, renders, rng.random((4, 5), np.float32))
    h_human, h_object = torch.randn(64), torch.randn(64)
    answer = Answer([ids["[HSEG]"], ids["[OSEG]"], 2], [(ids["[HSEG]"], h_human), (ids["[OSEG]"], h_object)])
    [res] = loc._masks(["bench"], [answer], ["body"], ["object"], reencode=False)

    def expected(state, token, key):
        view = loc.views[key]
        tokens = loc.net.view_tokens(loc.net.seg_embedding(state[None]), view.cam_params, token)
        return loc.net.decode_masks(tokens, view.embeddings)[0]

    with torch.no_grad():
        torch.testing.assert_close(res.masks, expected(h_human, ids["[HSEG]"], "body"))
        torch.testing.assert_close(res.object_masks, expected(h_object, ids["[OSEG]"], "object"))
        # not the same token through the other half, nor on the other views
        assert not torch.allclose(res.object_masks, expected(h_object, ids["[HSEG]"], "object"))
    with pytest.raises(ValueError, match="got 1 labels but 2 object view keys"):
        loc.localize(np.zeros((8, 8, 3), np.uint8), ["bench"], "body", object_views=["object", "object"])


def test_backend_fills_both_sides_from_one_answer(joint):
    loc, _, script = joint
    backend = InteractVLMBackend(localizer=loc, body_model="anny", mode="generate")
    assert backend.joint and backend.object_loc is loc
    photo = np.random.default_rng(2).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    bench = Detection("bench", np.array([0.0, 60.0, 100.0, 120.0]))
    backend.estimate(photo, [bench])  # renders the mesh, encodes the system prompt
    script.calls = 0
    [result] = backend.estimate(photo, [bench])
    mesh = backend.objects.get("bench", bench.box_xyxy)
    assert result.object_mesh_id == mesh.mesh_id
    assert result.object_probabilities.shape == (mesh.vertices.shape[0],)
    assert result.body_probabilities.shape == (backend.body.num_vertices,)
    assert result.body_probabilities.std() > 0 and result.reason == ""
    assert any(e.startswith("object answer: ") and "[OSEG]" in e for e in result.evidence)
    assert script.calls == 4  # one generation served both sides
