"""scripts/compare_official.py on CPU: a tiny random checkpoint, synthetic SMPL-H, "official" files.

The official side is produced here without the lift under test: the demo's per-vertex file is
`official_reference.official_lift` (transcribed from InteractVLM's HumanContact3DPredictor) applied
to the model's masks and to the pixel-to-vertex / barycentric maps read straight from the .npz files.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from official_reference import official_lift
from synthetic_smpl import smplh_skeleton, write_synthetic_smpl
from tiny_models import contrast_masks

from ivlm_core.backends.interactvlm.backend import InteractVLMBackend
from ivlm_core.backends.interactvlm.checkpoint import save_original_layout
from ivlm_core.backends.interactvlm.configs import checkpoint_config, tiny_architecture
from ivlm_core.backends.interactvlm.mvloc import MVLoc, MVLocConfig, build_net
from ivlm_core.backends.interactvlm.tokenizer import add_interactvlm_tokens, build_dev_tokenizer
from ivlm_core.render import HUMAN_VIEWS, rig_cam_params

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import compare_official

LABEL = "tennis_racket"


def _answering_checkpoint(folder: Path) -> None:
    """A tiny random checkpoint whose greedy answer is always [SEG] (a constant direction in the residual
    stream that only the [SEG] row of lm_head reads), with masks of useful contrast."""
    tokenizer = build_dev_tokenizer(["tennis racket bench", "left hand"])
    ids = add_interactvlm_tokens(tokenizer)
    torch.manual_seed(0)
    arch = tiny_architecture(len(tokenizer), ids)
    net = build_net(arch, "cpu")
    with torch.no_grad():
        net.llava.get_input_embeddings().weight[:, 0] = 100.0
        projector = net.llava.model.multi_modal_projector
        projector.weight[0], projector.bias[0] = 0.0, 100.0
        net.llava.lm_head.weight[:, 0] = 0.0
        net.llava.lm_head.weight[ids["[SEG]"], 0] = 50.0
    contrast_masks(net)
    save_original_layout(net, folder, checkpoint_config(arch))
    tokenizer.save_pretrained(folder)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("compare")
    _answering_checkpoint(root / "ckpt")
    joints, parents = smplh_skeleton()
    write_synthetic_smpl(root / "models" / "smplh" / "SMPLH_NEUTRAL.pkl", joints, parents)
    # "Official" data folder: renders and lift maps of the SMPL-H rig, as data.zip ships them.
    config = MVLocConfig(checkpoint_dir=str(root / "ckpt"), device="cpu", max_new_tokens=2)
    models = str(root / "models")
    rendered = InteractVLMBackend(localizer=MVLoc.from_checkpoint(config), body_model_path=models)
    rig = root / "data" / "hcontact_vitruvian"
    rig.mkdir(parents=True)
    for view, image in zip(HUMAN_VIEWS, rendered.rig.images, strict=True):
        png = rig / f"body_render_norm_{view.name}.png"
        cv2.imwrite(str(png), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    names = ("pixel_to_vertex_map_1024", "bary_coords_map_1024")
    for name, maps in zip(names, rendered.rig.tables.to_dense(), strict=True):
        np.savez(rig / f"{name}.npz", **{v.name: m for v, m in zip(HUMAN_VIEWS, maps, strict=True)})
    photo = np.random.default_rng(3).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    cv2.imwrite(str(root / f"{LABEL}__0001.png"), cv2.cvtColor(photo, cv2.COLOR_RGB2BGR))

    # The official demo's output, from the official formulas on the official files.
    reference_loc = MVLoc.from_checkpoint(
        MVLocConfig(checkpoint_dir=str(root / "ckpt"), device="cpu", max_new_tokens=2, parity=True)
    )
    pngs = [str(rig / f"body_render_norm_{v.name}.png") for v in HUMAN_VIEWS]
    renders = np.stack([cv2.cvtColor(cv2.imread(png), cv2.COLOR_BGR2RGB) for png in pngs])
    reference_loc.set_views("body", renders, rig_cam_params(HUMAN_VIEWS))
    [answer] = reference_loc.localize(photo, [LABEL], "body", mode="original")
    maps = []
    for name in names:
        with np.load(rig / f"{name}.npz") as npz:
            maps.append(np.stack([npz[v.name] for v in HUMAN_VIEWS]))
    p2v_maps, bary_maps = maps
    official = official_lift(answer.masks, p2v_maps, bary_maps, 6890).float().numpy()[None]
    np.savez(root / f"{LABEL}__0001_hcontact_vertices.npz", pred_contact_3d_smplh=official)
    return root, official[0]


def _run(root: Path, official_file: Path, capsys, *extra: str) -> dict:
    argv = [
        "--image", str(root / f"{LABEL}__0001.png"), "--label", LABEL, "--official", str(official_file),
        "--checkpoint", str(root / "ckpt"), "--body-model-path", str(root / "models"),
        "--interactvlm-data", str(root / "data"), "--device", "cpu", "--max-new-tokens", "2", *extra,
    ]  # fmt: skip
    assert compare_official.main(argv) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_parity_run_agrees_with_the_official_lift_exactly(setup, capsys):
    root, official = setup
    assert official.std() > 0.05 and 0 < (official >= 0.5).sum() < 6890  # a non-trivial reference
    report = _run(root, root / f"{LABEL}__0001_hcontact_vertices.npz", capsys)
    assert report["agreement"] == 1.0 and report["f1"] == pytest.approx(1.0)
    assert report["max_abs_diff"] == 0.0
    assert report["answer"].startswith("[SEG]")


def test_differences_are_found_and_listed_largest_first(setup, capsys, tmp_path):
    root, official = setup
    changed = official.copy()
    flipped = np.argsort(np.abs(official - 0.5))[-5:]  # five confident vertices, flipped
    changed[flipped] = 1.0 - changed[flipped]
    np.savez(tmp_path / "changed.npz", pred_contact_3d_smplh=changed[None])
    report = _run(root, tmp_path / "changed.npz", capsys, "--top", "5")
    assert report["agreement"] == pytest.approx(1 - 5 / 6890)
    assert report["f1"] < 1.0
    assert {row["vertex"] for row in report["largest"]} == set(flipped.tolist())
    assert report["max_abs_diff"] == pytest.approx(np.abs(1 - 2 * official[flipped]).max(), abs=1e-6)

    np.savez(tmp_path / "wrong.npz", pred_contact_3d_smplx=changed)
    wrong = str(tmp_path / "wrong.npz")
    argv = [
        "--image", str(root / f"{LABEL}__0001.png"), "--label", LABEL, "--official", wrong,
        "--checkpoint", str(root / "ckpt"), "--body-model-path", str(root / "models"), "--device", "cpu",
    ]  # fmt: skip
    assert compare_official.main(argv) == 2
    assert "not 'pred_contact_3d_smplh'" in capsys.readouterr().err
