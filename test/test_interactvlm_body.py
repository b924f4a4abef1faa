"""The interactvlm backend renders the body its checkpoint was trained on, in that body's native frame.

Synthetic SMPL-H / SMPL files in the licensed format are written here (no licensed data); a tiny
random model whose answers always hold [SEG] stands in for the released weights.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import smplx
import torch
from scipy import sparse
from synthetic_smpl import SMPL_JOINTS, SMPL_PARENTS, smplh_skeleton, write_synthetic_smpl
from tiny_models import always_answer, stub_13b_checkpoint

from ivlm_core.backends.interactvlm.backend import InteractVLMBackend
from ivlm_core.backends.interactvlm.configs import tiny_architecture
from ivlm_core.backends.interactvlm.mvloc import MVLoc, MVLocConfig, build_net
from ivlm_core.backends.interactvlm.tokenizer import add_interactvlm_tokens, build_dev_tokenizer
from ivlm_core.body import load_body_model
from ivlm_core.render import HUMAN_VIEWS
from ivlm_core.types import Detection

BENCH = Detection("bench", np.array([10.0, 60.0, 120.0, 90.0]))


@pytest.fixture(scope="module")
def loc() -> MVLoc:
    """Tiny random model, no trained-body field in its config (so: SMPL-H, as released checkpoints)."""
    tokenizer = build_dev_tokenizer(["bench cup", "left hand"])
    ids = add_interactvlm_tokens(tokenizer)
    torch.manual_seed(0)
    net = build_net(tiny_architecture(len(tokenizer), ids), "cpu")
    always_answer(net, ids["[SEG]"])
    return MVLoc(net, tokenizer, MVLocConfig(max_new_tokens=2))


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A model folder in smplx's layout with SMPL-H and SMPL neutral files."""
    folder = tmp_path_factory.mktemp("body_models")
    joints, parents = smplh_skeleton()
    write_synthetic_smpl(folder / "smplh" / "SMPLH_NEUTRAL.pkl", joints, parents)
    write_synthetic_smpl(folder / "smpl" / "SMPL_NEUTRAL.pkl", SMPL_JOINTS, SMPL_PARENTS)
    return folder


@pytest.fixture(scope="module")
def photo():
    return np.random.default_rng(0).integers(0, 255, (100, 130, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def smplh_backend(loc, models):
    return InteractVLMBackend(localizer=loc, body_model_path=str(models))


def test_without_the_smplh_files_the_error_names_them(loc, tmp_path):
    with pytest.raises(ValueError, match=r"trained on smplh.*SMPLH_NEUTRAL\.pkl.*body_model_path"):
        InteractVLMBackend(localizer=loc)
    with pytest.raises(ValueError, match=rf"{tmp_path}/smplh/SMPLH_NEUTRAL\.pkl"):
        InteractVLMBackend(localizer=loc, body_model_path=str(tmp_path))


def test_smplh_is_rendered_in_its_native_frame(smplh_backend, models, photo):
    """The rendered vertices are smplx's own SMPL-H output for the official pose, not re-centred."""
    official = smplx.SMPLH(model_path=str(models / "smplh" / "SMPLH_NEUTRAL.pkl"), gender="neutral",
                           num_betas=10, use_pca=False, flat_hand_mean=True)  # fmt: skip
    body_pose = torch.zeros(1, 63)
    body_pose[0, 2], body_pose[0, 5] = np.radians(30), -np.radians(30)  # VIRTUVIAN_POSE: hips about z
    expected = official(body_pose=body_pose).vertices[0].detach().numpy()
    np.testing.assert_allclose(smplh_backend.rig.vertices, expected, atol=1e-5)
    assert smplh_backend.body.name == smplh_backend.render_body.name == "smplh"
    centre = 0.5 * (expected.min(0) + expected.max(0))
    assert np.abs(centre).max() > 0.05  # the native frame is not the bounding-box frame
    [result] = smplh_backend.estimate(photo, [BENCH])
    assert result.body_model == "smplh" and result.body_probabilities.shape == (6890,)
    assert result.body_probabilities.std() > 0
    assert "body rig: smplh rendered in its native frame" in result.evidence


def test_official_renders_and_lift_tables_are_used_when_the_data_folder_has_them(loc, models, smplh_backend):
    rig_folder = models.parent / "data" / "hcontact_vitruvian"
    rig_folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    renders = rng.integers(0, 255, (4, 128, 128, 3), dtype=np.uint8)
    for view, image in zip(HUMAN_VIEWS, renders, strict=True):
        png = rig_folder / f"body_render_norm_{view.name}.png"
        cv2.imwrite(str(png), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    names = ("pixel_to_vertex_map_1024", "bary_coords_map_1024")
    for name, maps in zip(names, smplh_backend.rig.tables.to_dense(), strict=True):
        np.savez(rig_folder / f"{name}.npz", **{v.name: m for v, m in zip(HUMAN_VIEWS, maps, strict=True)})

    data = str(rig_folder.parent)
    backend = InteractVLMBackend(localizer=loc, body_model_path=str(models), interactvlm_data=data)
    np.testing.assert_array_equal(backend.rig.images, renders)
    np.testing.assert_array_equal(loc.views["body"].renders.permute(0, 2, 3, 1).numpy(), renders)
    np.testing.assert_array_equal(backend.rig.tables.pixels, smplh_backend.rig.tables.pixels)
    np.testing.assert_array_equal(backend.rig.tables.barycentrics, smplh_backend.rig.tables.barycentrics)
    assert "body rig: official renders and lift tables" in backend._evidence

    (rig_folder / "bary_coords_map_1024.npz").unlink()
    with pytest.raises(ValueError, match=r"lacks the official body renders.*bary_coords_map_1024\.npz"):
        InteractVLMBackend(localizer=loc, body_model_path=str(models), interactvlm_data=str(rig_folder))


def test_contact_reaches_another_body_only_through_a_vertex_correspondence(
    loc, models, smplh_backend, photo, tmp_path
):
    [reference] = smplh_backend.estimate(photo, [BENCH])
    smpl = InteractVLMBackend(localizer=loc, body_model_path=str(models), body_model="smpl")
    [same_mesh] = smpl.estimate(photo, [BENCH])
    assert same_mesh.body_model == "smpl"
    np.testing.assert_array_equal(same_mesh.body_probabilities, reference.body_probabilities)
    assert "contact mapped smplh -> smpl" in same_mesh.evidence

    with pytest.raises(ValueError, match=r"no vertex correspondence from smplh to anny.*body_model to smplh"):
        InteractVLMBackend(localizer=loc, body_model_path=str(models), body_model="anny")

    anny = load_body_model("anny")
    matrix = np.zeros((anny.num_vertices, 6890), np.float32)
    source = np.arange(anny.num_vertices) % 6890
    matrix[np.arange(anny.num_vertices), source] = 1.0
    np.savez(tmp_path / "smplh_to_anny.npz", matrix=matrix)
    mapped = InteractVLMBackend(localizer=loc, body_model_path=str(models), body_model="anny",
                                body_correspondence=str(tmp_path / "smplh_to_anny.npz"))  # fmt: skip
    [on_anny] = mapped.estimate(photo, [BENCH])
    assert on_anny.body_model == "anny"
    np.testing.assert_allclose(on_anny.body_probabilities, reference.body_probabilities[source], atol=1e-6)

    assert mapped.transfer.matrix.nnz == anny.num_vertices  # kept sparse: one weight per row here
    sparse.save_npz(tmp_path / "smplh_to_anny_sparse.npz", sparse.csr_array(matrix))  # the other format
    from_sparse = InteractVLMBackend(localizer=loc, body_model_path=str(models), body_model="anny",
                                     body_correspondence=str(tmp_path / "smplh_to_anny_sparse.npz"))
    np.testing.assert_array_equal(from_sparse.estimate(photo, [BENCH])[0].body_probabilities,
                                  on_anny.body_probabilities)
    matrix[0, 0] = np.nan
    np.savez(tmp_path / "nan.npz", matrix=matrix)
    with pytest.raises(ValueError, match=r"nan\.npz: matrix has non-finite weights"):
        InteractVLMBackend(localizer=loc, body_model_path=str(models), body_model="anny",
                           body_correspondence=str(tmp_path / "nan.npz"))  # fmt: skip
    np.savez(tmp_path / "wrong.npz", matrix=matrix[:, :100])
    with pytest.raises(ValueError, match=rf"wrong\.npz: matrix is \({anny.num_vertices}, 100\), expected"):
        InteractVLMBackend(localizer=loc, body_model_path=str(models), body_model="anny",
                           body_correspondence=str(tmp_path / "wrong.npz"))  # fmt: skip


def test_missing_body_files_fail_before_the_checkpoint_loads(tmp_path):
    """A 13B config with an empty shard: the SMPL-H error comes first (no weights are read)."""
    from ivlm_core.backends import create_backend

    folder = stub_13b_checkpoint(tmp_path / "interactvlm-3d-hcontact-damon")
    with pytest.raises(ValueError, match=r"trained on smplh renders.*smplh/SMPLH_NEUTRAL\.pkl"):
        create_backend("interactvlm", checkpoint=str(folder), device="cpu", body_model_path=str(tmp_path))
