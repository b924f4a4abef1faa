"""DAMON (DECO's contact dataset, deco.is.tue.mpg.de) as MV-Loc training samples, in its shipped layouts.

- InteractVLM's layout (`datasets/hcontact_3d.py::init_damon_hcontact`): a split folder
  (`data/damon/train`) holding `imgname.npy`, `images/<basename>`, `contact_label_objectwise.pkl` or
  `.npy` (one dict per image: object name -> SMPL vertex ids) and optionally
  `body_parts_objectwise.pkl` (`"<image stem>_<object>"` -> body-part names);
- DECO's release: one `.npz` (e.g. `hot_dca_train.npz`) with `imgname` and `contact_label_objectwise`,
  images found by file name under `images` (default: `<npz folder>/images`).

As the original: objects without contact vertices are skipped and `foot_ground` is named `scene`.
Every file is read without running code from it (`ivlm_core.safe_pickle`): the annotation pickles
and object arrays come from outside.
"""

from __future__ import annotations

import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ivlm_core.backends.interactvlm.train import ContactSample
from ivlm_core.safe_pickle import READ_ERRORS, load_npy, restricted_load

OBJECTWISE = "contact_label_objectwise"
BODY_PARTS = "body_parts_objectwise"
DAMON_VERTICES = 6890  # labels are SMPL vertex ids (SMPL-H shares them)
_HINT = "DAMON annotations hold only names, vertex-id lists and arrays; re-save them as plain .npy / .npz"


def _read(path: Path) -> object:
    """A .pkl, .npy or one-array .npz annotation file, restricted to plain data."""
    try:
        with open(path, "rb") as file:
            if path.suffix == ".npy":
                return load_npy(file, path, "DAMON annotation file", _HINT)
            return restricted_load(file, path, "DAMON annotation file", _HINT)
    except READ_ERRORS as error:
        raise ValueError(f"{path} is not a readable DAMON annotation file ({error!r})") from error


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    """Every member of an .npz, object arrays through the restricted unpickler."""
    try:
        with zipfile.ZipFile(path) as archive:
            out = {}
            for member in archive.namelist():
                with archive.open(member) as file:
                    out[member.removesuffix(".npy")] = load_npy(file, path, "DAMON annotation file", _HINT)
            return out
    except READ_ERRORS as error:
        raise ValueError(f"{path} is not a readable DAMON .npz ({error!r})") from error


def read_damon(
    path: str | Path, images: str | Path | None = None, num_vertices: int = DAMON_VERTICES
) -> list[ContactSample]:
    """One ContactSample per (image, object with contact) of a DAMON split; see the module docstring.

    path: InteractVLM's split folder, its `data` / `damon` parent (split `train`), or DECO's .npz.
    images: the image folder (default `<split folder>/images`). ValueError naming the file for
    anything missing, malformed or out of range (vertex ids must index `num_vertices`).
    """
    path = Path(path).expanduser()
    body_parts: Mapping = {}
    if path.suffix == ".npz":
        arrays = _read_npz(path)
        missing = [k for k in ("imgname", OBJECTWISE) if k not in arrays]
        if missing:
            raise ValueError(f"{path} lacks {missing}: not DECO's DAMON .npz (it has {sorted(arrays)})")
        names, objectwise, folder = arrays["imgname"], arrays[OBJECTWISE], path.parent
    else:
        candidates = (path, path / "train", path / "damon" / "train")
        folder = next((p for p in candidates if (p / "imgname.npy").is_file()), None)
        if folder is None:
            raise ValueError(f"{path}: no imgname.npy here, in train/ or in damon/train/ (InteractVLM)")
        names = _read(folder / "imgname.npy")
        found = [p for p in (folder / f"{OBJECTWISE}.pkl", folder / f"{OBJECTWISE}.npy") if p.is_file()]
        if not found:
            raise ValueError(f"{folder} has no {OBJECTWISE}.pkl or .npy")
        objectwise = _read(found[0])
        if (folder / f"{BODY_PARTS}.pkl").is_file():
            body_parts = _read(folder / f"{BODY_PARTS}.pkl")
            if not isinstance(body_parts, Mapping):
                raise ValueError(f"{folder / f'{BODY_PARTS}.pkl'} is not a dict of body-part lists")
    if not isinstance(objectwise, Sequence | np.ndarray) or len(objectwise) != len(names):
        raise ValueError(f"{path}: {OBJECTWISE} must hold one dict per image ({len(names)} images)")
    image_root = Path(images).expanduser() if images else folder / "images"
    return _samples(path, names, objectwise, body_parts, image_root, num_vertices)


def _samples(path, names, objectwise, body_parts, image_root, num_vertices) -> list[ContactSample]:
    from PIL import Image

    samples = []
    for index, (name, objects) in enumerate(zip(names, objectwise, strict=True)):
        if not isinstance(objects, Mapping):
            raise ValueError(f"{path}: {OBJECTWISE}[{index}] is {type(objects).__name__}, not a dict")
        with_contact = {str(k): np.asarray(v, np.int64).reshape(-1) for k, v in objects.items() if len(v)}
        if not with_contact:
            continue
        image_path = image_root / Path(str(name)).name
        if not image_path.is_file():
            raise ValueError(f"{path}: image {index} ({name}) is not at {image_path}; pass the image folder")
        image = np.asarray(Image.open(image_path).convert("RGB"))
        for obj, ids in with_contact.items():
            if ids.min() < 0 or ids.max() >= num_vertices:
                raise ValueError(f"{path}: image {index}, {obj!r}: vertex ids outside [0, {num_vertices})")
            contact = np.zeros(num_vertices, bool)
            contact[ids] = True
            parts = list(body_parts.get(f"{image_path.stem}_{obj}", []))
            label = "scene" if "foot_ground" in obj else obj  # the original's convention (RICH's name)
            samples.append(ContactSample(image, label, contact, parts))
    if not samples:
        raise ValueError(f"{path} holds no object with contact vertices")
    return samples
