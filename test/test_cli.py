"""The command line writes what a user looks at first: JSON result, contact overlay, coloured GLB meshes."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data
import trimesh

import ivlm_core.cli as cli
from ivlm_core.cli import main
from ivlm_core.contact_report import ReportConfig, contact_report
from ivlm_core.settings import SETTINGS

DRINKER_PHOTO = Path(__file__).parent / "data" / "player" / "man_holding_drink_glass.jpg"


def test_cli_writes_json_overlay_and_meshes_for_camera_photo(tmp_path, capsys):
    image_path = tmp_path / "camera.png"
    cv2.imwrite(str(image_path), skimage.data.camera())
    out = tmp_path / "out"
    rc = main([str(image_path), "--object", "camera", "245,135,335,245", "--out", str(out)])
    assert rc == 0
    result = json.loads((out / "result.json").read_text())
    (pair,) = result["results"]
    assert any(p.endswith("_hand") for p in pair["body_parts"])
    assert pair["body_vertex_ids"] and pair["evidence"]
    overlay = cv2.imread(str(out / "overlay.png"))
    assert overlay.shape == (512, 512, 3)
    # the overlay is in colour (contact drawn in red) while the input photo is grey
    assert np.abs(overlay[:, :, 2].astype(int) - overlay[:, :, 0].astype(int)).max() > 100
    body = trimesh.load(out / "pair0_body.glb", force="mesh")
    assert len(body.vertices) > 1000
    # the cameraman's camcorder is placed against his hand: a real pose, its contact and grasp points
    assert pair["reconstructed"], pair["reconstruction_reason"]
    assert (out / "pair0_scene.glb").is_file()
    assert pair["object_scale"] > 0 and not np.allclose(pair["object_pose"], np.eye(4))
    assert len(pair["object_contact_points"]) == len(pair["object_vertex_ids"]) > 0
    assert len(pair["grasp_points"]) > 0
    assert "hand" in capsys.readouterr().out


def test_cli_rejects_a_malformed_box(tmp_path, capsys):
    image_path = tmp_path / "camera.png"
    cv2.imwrite(str(image_path), skimage.data.camera())
    rc = main([str(image_path), "--object", "camera", "245,135,335", "--out", str(tmp_path / "o")])
    assert rc == 2
    assert "X0,Y0,X1,Y1" in capsys.readouterr().err


def test_cli_binary_mode_writes_the_object_agnostic_contact_and_the_panels(tmp_path):
    """--binary: the cameraman's contact with anything holds his hands on the camcorder and says what
    it found about his support; the overlay shows the fitted mesh through K and panels.png the four
    canonical body views and the camera's four views."""
    image_path = tmp_path / "camera.png"
    cv2.imwrite(str(image_path), skimage.data.camera())
    out = tmp_path / "out"
    args = ["--person", "0,60,340,512", "--object", "camera", "245,135,335,245", "--binary"]
    assert main([str(image_path), *args, "--out", str(out)]) == 0
    camera, pair = json.loads((out / "result.json").read_text())["results"]
    assert pair["object"] == "any" and pair["object_mesh_id"] == ""
    assert pair["object_vertex_ids"] == [] and not pair["reconstructed"]
    hands = {p for p in camera["body_parts"] if p.endswith("_hand")}
    assert hands and hands <= set(pair["body_parts"]) and pair["body_vertex_ids"], pair["evidence"]
    assert pair["evidence"][0].startswith("support:")
    panels = cv2.imread(str(out / "panels.png"))
    assert 2 * panels.shape[1] == 4 * panels.shape[0]  # two rows of four views: the person, the camera
    overlay = cv2.imread(str(out / "overlay.png"))
    grey = cv2.imread(str(image_path), cv2.IMREAD_GRAYSCALE)
    assert (np.abs(overlay.astype(int) - grey[..., None]).max(axis=2) > 40).mean() > 0.05  # the mesh is drawn
    assert main([str(image_path), "--out", str(tmp_path / "none")]) == 2  # nothing asked


def test_cli_refuses_truncated_images_a_file_as_out_and_a_short_K_before_working(tmp_path, capsys):
    """A JPEG cut in half decodes (OpenCV greys the rest) but is refused; --out naming a file and --K with
    three numbers are refused with the option named; a 16-bit PNG is drawn."""
    photo = (Path(__file__).parent / "data" / "player" / "man_holding_drink_glass.jpg").read_bytes()
    half = tmp_path / "half.jpg"
    half.write_bytes(photo[: len(photo) // 2])
    assert cv2.imread(str(half)) is not None  # what made the CLI answer "none" before
    args = ["--object", "cup", "245,235,305,345"]
    assert main([str(half), *args, "--out", str(tmp_path / "o")]) == 2
    assert "truncated" in capsys.readouterr().err
    whole = tmp_path / "whole.jpg"
    whole.write_bytes(photo + b"appended by a phone")  # data after the end marker is fine
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    assert main([str(whole), *args, "--out", str(a_file)]) == 2
    assert "is a file" in capsys.readouterr().err
    assert main([str(whole), *args, "--K", "500,500,187", "--out", str(tmp_path / "k")]) == 2
    assert "--K takes 4 numbers" in capsys.readouterr().err
    deep = tmp_path / "deep.png"
    cv2.imwrite(str(deep), skimage.data.camera().astype(np.uint16) * 257)
    out = tmp_path / "deep"
    camera = ["--object", "camera", "245,135,335,245", "--no-reconstruct"]
    assert main([str(deep), *camera, "--out", str(out)]) == 0
    assert cv2.imread(str(out / "overlay.png")).dtype == np.uint8


def test_cli_result_json_carries_what_the_contact_array_of_the_same_results_carries(tmp_path, monkeypatch):
    """result.json and the ROS ContactArray are written from one contact report: for the drinker photo
    (the glass placed against his left hand) both carry the same vertex ids, body and object contact
    points, object pose, grasp points, threshold and clearance, with the node's default settings."""
    conversions = pytest.importorskip("ivlm_ros.conversions", reason="ivlm_ros messages are not built")
    from ivlm_ros.msg import ContactArray

    runs = []
    create = cli.create_backend

    def recording_backend(*args, **kwargs):  # the CLI's own backend, its results kept for the message
        backend = create(*args, **kwargs)
        estimate = backend.estimate

        def recorded(*a, **kw):
            runs.append(estimate(*a, **kw))
            return runs[-1]

        backend.estimate = recorded
        return backend

    monkeypatch.setattr(cli, "create_backend", recording_backend)
    out = tmp_path / "out"
    args = [str(DRINKER_PHOTO), "--person", "0,25,335,500", "--object", "cup", "245,235,305,345"]
    assert main([*args, "--out", str(out)]) == 0
    (pair,) = json.loads((out / "result.json").read_text())["results"]
    (results,) = runs
    node_config = ReportConfig(SETTINGS["contact_threshold"].default, SETTINGS["grasp_clearance"].default)
    array = ContactArray(contacts=[conversions.contact_to_msg(contact_report(r, node_config), r.person_index)
                                   for r in results])
    (msg,) = array.contacts
    assert pair["reconstructed"] and msg.reconstructed, pair["reconstruction_reason"]
    assert pair["object"] == msg.object_label and pair["object_mesh_id"] == msg.object_mesh_id
    assert pair["body_vertex_ids"] == list(msg.body_vertex_ids) != []
    assert pair["object_vertex_ids"] == list(msg.object_vertex_ids) != []
    assert pair["contact_threshold"] == pytest.approx(msg.contact_threshold)
    assert pair["grasp_clearance"] == pytest.approx(msg.grasp_clearance)
    to_array = conversions.points_to_array
    for key in ("body_contact_points", "object_contact_points", "grasp_points", "grasp_normals"):
        ours, theirs = np.array(pair[key]).reshape(-1, 3), to_array(getattr(msg, key))
        assert len(ours) == len(theirs) > 0, key
        np.testing.assert_allclose(ours, theirs, atol=1e-9, err_msg=key)
    pose = conversions.pose_from_matrix(np.array(pair["object_pose"]))
    assert pose == msg.object_pose
    assert pair["object_scale"] == pytest.approx(msg.object_scale, rel=1e-6)


def test_cli_refuses_an_image_too_large_from_its_header_before_decoding(tmp_path, capsys):
    """A 20000x20000 PNG of a few hundred bytes (a decompression bomb) took the CLI to 6.4 GB."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0)
    rows = zlib.compress(bytes((3 * 20000 + 1) * 4))
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", rows) + chunk(b"IEND", b""))
    args = ["--object", "cup", "245,235,305,345", "--out", str(tmp_path / "o")]
    assert main([str(bomb), *args]) == 2
    assert "max_image_pixels = 40.0 MP" in capsys.readouterr().err and not (tmp_path / "o").exists()
    photo = Path(__file__).parent / "data" / "player" / "man_holding_drink_glass.jpg"  # 375x500
    assert main([str(photo), *args, "--max-image-pixels", "100000"]) == 2
    assert "max_image_pixels = 0.1 MP" in capsys.readouterr().err

