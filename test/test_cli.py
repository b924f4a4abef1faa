"""The command line writes what a user looks at first: JSON result, contact overlay, coloured GLB meshes."""

from __future__ import annotations

import json

import cv2
import numpy as np
import skimage.data
import trimesh

from ivlm_core.cli import main


def test_cli_writes_json_overlay_and_meshes_for_camera_photo(tmp_path, capsys):
    image_path = tmp_path / "camera.png"
    cv2.imwrite(str(image_path), skimage.data.camera())
    out = tmp_path / "out"
    rc = main([str(image_path), "--object", "camera", "245,135,335,245", "--out", str(out)])
    assert rc == 0
    result = json.loads((out / "result.json").read_text())
    (pair,) = result["results"]
    assert any(p.endswith("_hand") for p in pair["body_parts"])
    assert pair["body_contact_vertex_ids"] and pair["evidence"]
    overlay = cv2.imread(str(out / "overlay.png"))
    assert overlay.shape == (512, 512, 3)
    # the overlay is in colour (contact drawn in red) while the input photo is grey
    assert np.abs(overlay[:, :, 2].astype(int) - overlay[:, :, 0].astype(int)).max() > 100
    body = trimesh.load(out / "pair0_body.glb", force="mesh")
    assert len(body.vertices) > 1000
    assert pair["reconstruction"] is not None
    assert (out / "pair0_scene.glb").is_file() == pair["reconstruction"]["ok"]
    assert "hand" in capsys.readouterr().out


def test_cli_rejects_a_malformed_box(tmp_path, capsys):
    image_path = tmp_path / "camera.png"
    cv2.imwrite(str(image_path), skimage.data.camera())
    rc = main([str(image_path), "--object", "camera", "245,135,335", "--out", str(tmp_path / "o")])
    assert rc == 2
    assert "X0,Y0,X1,Y1" in capsys.readouterr().err
