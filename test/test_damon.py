"""DAMON reader: small synthetic files in InteractVLM's and DECO's layouts (no DAMON data is shipped)."""

from __future__ import annotations

import os
import pickle
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from synthetic_smpl import smplh_skeleton, write_synthetic_smpl

from ivlm_core.backends.interactvlm.damon import read_damon

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import train_mvloc

NAMES = np.array([f"datasets/HOT-Annotated/images/{n}.jpg" for n in ("vcoco_001", "hake_002")], dtype=object)
OBJECTWISE = [
    {"bench": [10, 11, 12], "supporting": []},  # empty lists are skipped, as the original does
    {"skateboard": np.array([100, 200]), "foot_ground": [3000, 3001, 3002]},
]


def _images(folder: Path) -> None:
    (folder / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name in NAMES:
        image = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
        cv2.imwrite(str(folder / "images" / Path(name).name), image)


def _interactvlm_layout(root: Path) -> Path:
    split = root / "damon" / "train"
    _images(split)
    np.save(split / "imgname.npy", NAMES, allow_pickle=True)
    with open(split / "contact_label_objectwise.pkl", "wb") as f:
        pickle.dump(OBJECTWISE, f)
    with open(split / "body_parts_objectwise.pkl", "wb") as f:
        pickle.dump({"vcoco_001_bench": ["left hand", "right hand"], "hake_002_skateboard": ["left foot"]}, f)
    return split


def test_interactvlm_layout_gives_one_sample_per_object_with_contact(tmp_path):
    _interactvlm_layout(tmp_path)
    samples = read_damon(tmp_path)  # the data folder: damon/train is found
    assert [(s.label, s.body_parts) for s in samples] == [
        ("bench", ["left hand", "right hand"]), ("skateboard", ["left foot"]), ("scene", []),
    ]  # fmt: skip
    assert np.flatnonzero(samples[0].contact).tolist() == [10, 11, 12]
    assert np.flatnonzero(samples[2].contact).tolist() == [3000, 3001, 3002]
    assert samples[0].contact.shape == (6890,) and samples[0].image.shape == (48, 64, 3)


def test_deco_npz_layout_and_the_objectwise_npy(tmp_path):
    _images(tmp_path)
    objectwise = np.array(OBJECTWISE, dtype=object)
    np.savez(tmp_path / "hot_dca_train.npz", imgname=NAMES, contact_label_objectwise=objectwise,
             contact_label=np.zeros((2, 6890)))  # fmt: skip
    samples = read_damon(tmp_path / "hot_dca_train.npz")
    assert [s.label for s in samples] == ["bench", "skateboard", "scene"]
    assert all(s.body_parts == [] for s in samples)

    split = _interactvlm_layout(tmp_path / "npy")
    (split / "contact_label_objectwise.pkl").unlink()
    np.save(split / "contact_label_objectwise.npy", np.array(OBJECTWISE, dtype=object), allow_pickle=True)
    assert [s.label for s in read_damon(split)] == ["bench", "skateboard", "scene"]


class _Payload:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def test_annotation_files_never_run_code_and_bad_entries_are_named(tmp_path):
    split = _interactvlm_layout(tmp_path)
    marker = tmp_path / "pwned"
    np.save(split / "imgname.npy", np.array([_Payload(f"touch {marker}")], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match=r"imgname\.npy: refused to load this pickle: it references posix"):
        read_damon(split)
    assert not marker.exists()

    np.save(split / "imgname.npy", NAMES, allow_pickle=True)
    with open(split / "contact_label_objectwise.pkl", "wb") as f:
        pickle.dump([{"bench": [7000]}, {}], f)
    with pytest.raises(ValueError, match=r"image 0, 'bench': vertex ids outside \[0, 6890\)"):
        read_damon(split)
    with open(split / "contact_label_objectwise.pkl", "wb") as f:
        pickle.dump([{"bench": [1]}], f)
    with pytest.raises(ValueError, match="one dict per image"):
        read_damon(split)


def test_train_mvloc_trains_on_damon(tmp_path, caplog):
    split = _interactvlm_layout(tmp_path / "data")
    joints, parents = smplh_skeleton()
    write_synthetic_smpl(tmp_path / "models" / "smplh" / "SMPLH_NEUTRAL.pkl", joints, parents)
    common = ["--damon", str(split), "--tiny", "--out", str(tmp_path / "run"), "--steps", "1"]
    with pytest.raises(SystemExit):  # anny's vertices are not DAMON's
        train_mvloc.main(common)
    args = [*common, "--body-model", "smplh", "--body-model-path", str(tmp_path / "models")]
    with caplog.at_level("INFO"):
        assert train_mvloc.main(args) == 0
    assert "3 samples" in caplog.text
    assert (tmp_path / "run" / "last").is_dir()
