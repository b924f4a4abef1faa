"""2D human contact (interactvlm-2d-hcontact): SAM on the photo itself, the mask back at photo size.

The reference pre- and post-processing below is transcribed from the official run_demo.py (h2dcontact
branch: ResizeLongestSide + `preprocess`) and segment_anything's `Sam.postprocess_masks`.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from tiny_models import always_answer, contrast_masks

from ivlm_core.backends.interactvlm.backend import InteractVLMBackend
from ivlm_core.backends.interactvlm.body_rig import TRAINED_BODY_KEY
from ivlm_core.backends.interactvlm.configs import tiny_architecture
from ivlm_core.backends.interactvlm.mvloc import MVLoc, MVLocConfig, build_net
from ivlm_core.backends.interactvlm.tokenizer import add_interactvlm_tokens, build_dev_tokenizer
from ivlm_core.types import Detection


def official_sam_input(image: np.ndarray, size: int) -> torch.Tensor:
    """run_demo.py: transform.apply_image (longest side -> size, PIL bilinear), normalise, pad."""
    h, w = image.shape[:2]
    scale = size * 1.0 / max(h, w)
    newh, neww = int(h * scale + 0.5), int(w * scale + 0.5)
    resized = np.array(Image.fromarray(image).resize((neww, newh), Image.BILINEAR))
    x = torch.from_numpy(resized).permute(2, 0, 1).contiguous().float()
    pixel_mean = torch.tensor([123.675, 116.28, 103.53]).view(-1, 1, 1)
    pixel_std = torch.tensor([58.395, 57.12, 57.375]).view(-1, 1, 1)
    x = (x - pixel_mean) / pixel_std
    return F.pad(x, (0, size - neww, 0, size - newh))[None], (newh, neww)


def official_postprocess(masks_at_size: torch.Tensor, input_size, original_size) -> torch.Tensor:
    """postprocess_masks after the first upsampling: crop the padding, resize to the photo."""
    masks = masks_at_size[..., : input_size[0], : input_size[1]]
    return F.interpolate(masks, original_size, mode="bilinear", align_corners=False)


@pytest.fixture(scope="module")
def loc_2d():
    tokenizer = build_dev_tokenizer(["bench cup", "left hand"])
    ids = add_interactvlm_tokens(tokenizer)
    torch.manual_seed(0)
    arch = tiny_architecture(len(tokenizer), ids)
    arch.num_views, arch.multiview_cam_cond = 1, False  # the 2D model: the photo is the only view
    net = build_net(arch, "cpu")
    contrast_masks(net)
    always_answer(net, ids["[SEG]"])
    return MVLoc(net, tokenizer, MVLocConfig(max_new_tokens=2))


def test_mask_comes_back_at_photo_size_as_the_official_postprocessing(loc_2d):
    photo = np.random.default_rng(0).integers(0, 255, (90, 141, 3), dtype=np.uint8)
    seen: dict[str, torch.Tensor] = {}
    encoder = loc_2d.net.sam.vision_encoder
    hook = encoder.register_forward_pre_hook(lambda m, args: seen.setdefault("sam_input", args[0].clone()))
    decode = loc_2d.net.decode_masks
    loc_2d.net.decode_masks = lambda *a: seen.setdefault("masks", decode(*a))
    try:
        [res] = loc_2d.localize_on_photo(photo, ["bench"], mode="generate")
    finally:
        hook.remove()
        del loc_2d.net.decode_masks
    expected_input, input_size = official_sam_input(photo, 128)
    torch.testing.assert_close(seen["sam_input"], expected_input, atol=1e-5, rtol=0)
    assert res.masks.shape == (1, 90, 141) and res.masks.dtype == torch.float32
    torch.testing.assert_close(res.masks, official_postprocess(seen["masks"], input_size, (90, 141))[0])
    assert res.masks.std() > 0.01
    assert "__photo__" not in loc_2d.views


def test_backend_exposes_2d_contact_and_refuses_3d_models(loc_2d, tmp_path):
    with pytest.raises(ValueError, match="needs a 2D contact checkpoint"):
        tokenizer = build_dev_tokenizer(["bench"])
        ids = add_interactvlm_tokens(tokenizer)
        MVLoc(build_net(tiny_architecture(len(tokenizer), ids), "cpu"), tokenizer).localize_on_photo(
            np.zeros((8, 8, 3), np.uint8), ["bench"]
        )
    tokenizer = build_dev_tokenizer(["bench"])
    ids = add_interactvlm_tokens(tokenizer)
    arch = tiny_architecture(len(tokenizer), ids)
    arch.extra[TRAINED_BODY_KEY] = "anny"
    loc_3d = MVLoc(build_net(arch, "cpu"), tokenizer)
    backend = InteractVLMBackend(localizer=loc_3d, contact_2d_localizer=loc_2d)
    photo = np.random.default_rng(1).integers(0, 255, (60, 80, 3), dtype=np.uint8)
    person = Detection("person", np.array([0.0, 0.0, 40.0, 60.0]))
    cup = Detection("cup", np.array([40.0, 10.0, 60.0, 30.0]))
    [contact] = backend.human_contact_2d(photo, [person, cup])
    assert contact.obj is cup and contact.logits.shape == (60, 80) and contact.mask.dtype == bool
    np.testing.assert_array_equal(contact.mask, contact.logits > 0.5)
    with pytest.raises(ValueError, match="set contact_2d_checkpoint"):
        InteractVLMBackend(localizer=loc_3d).human_contact_2d(photo, [cup])
