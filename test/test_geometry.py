"""Shared geometry: mesh validation, vertex normals, pinhole projection, the contact colour ramp."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from ivlm_core.body import load_body_model
from ivlm_core.colours import CONTACT_RGB, NO_CONTACT_RGB, contact_rgb, rgba8
from ivlm_core.geometry import validate_mesh, vertex_normals
from ivlm_core.types import CameraIntrinsics


def test_vertex_normals_point_outward_on_a_sphere():
    sphere = trimesh.creation.icosphere(subdivisions=3, radius=0.7)
    radial = sphere.vertices / np.linalg.norm(sphere.vertices, axis=1, keepdims=True)
    n = vertex_normals(sphere.vertices, sphere.faces)
    np.testing.assert_allclose(np.linalg.norm(n, axis=1), 1.0, atol=1e-9)
    assert np.sum(n * radial, axis=1).min() > 0.99
    np.testing.assert_allclose(vertex_normals(sphere.vertices, sphere.faces[:, ::-1]), -n, atol=1e-12)


def test_validate_mesh_names_the_mesh_and_the_fault():
    v, f = np.eye(3), np.array([[0, 1, 2]])
    with pytest.raises(ValueError, match=r"object vertices .* V >= 4"):
        validate_mesh(v, f, "object", min_vertices=4)
    with pytest.raises(ValueError, match=r"body faces index vertices in \[0, 3\]"):
        validate_mesh(v, [[0, 1, 3]], "body")
    with pytest.raises(ValueError, match="NaN"):
        validate_mesh(np.where(v == 1, np.nan, v), f)


def test_project_and_backproject_are_inverse_on_the_posed_body():
    camera = CameraIntrinsics(np.array([[600.0, 0, 330], [0, 580.0, 250], [0, 0, 1]]), 640, 480)
    body = load_body_model("anny").canonical_vertices.astype(np.float64) + np.array([0.0, 0.0, 2.5])
    uv = camera.project(body)
    assert uv.shape == (len(body), 2)
    np.testing.assert_allclose(camera.backproject(uv, body[:, 2]), body, atol=1e-9)
    # A point's offset from the principal point is f * x / z (and f * y / z).
    centre = camera.project(np.array([0.1, -0.2, 2.0]))
    np.testing.assert_allclose(centre, [330 + 600 * 0.05, 250 - 580 * 0.1])
    assert camera.project(body.astype(np.float32)).dtype == np.float32
    assert np.all(np.isfinite(camera.project(np.array([[0.1, 0.1, 0.0], [0.1, 0.1, -1.0]]))))


def test_image_size_check_names_both_sizes():
    camera = CameraIntrinsics.from_fov(640, 480)
    camera.check_image_size(640, 480)
    with pytest.raises(ValueError, match="camera is 640x480 but the object mask is 480x640"):
        camera.check_image_size(480, 640, "object mask")


def test_contact_colour_ramp_runs_from_the_base_to_contact_red():
    rgb = contact_rgb(np.array([0.0, 0.5, 1.0, 7.0]))
    np.testing.assert_allclose(rgb[0], NO_CONTACT_RGB)
    np.testing.assert_allclose(rgb[1], 0.5 * (NO_CONTACT_RGB + CONTACT_RGB), atol=1e-6)
    np.testing.assert_allclose(rgb[2:], [CONTACT_RGB, CONTACT_RGB])
    assert rgba8(rgb[2:3]).tolist() == [[255, 38, 25, 255]]


@pytest.mark.parametrize(
    ("K", "reason"),
    [
        ([[1e-6, 0, 320], [0, 1e-6, 240], [0, 0, 1]], "horizontal field of view of 180 deg"),
        ([[1e9, 0, 320], [0, 1e9, 240], [0, 0, 1]], "horizontal field of view of 3.67e-05 deg"),
        ([[500, 0, 320], [0, 5e8, 240], [0, 0, 1]], "vertical field of view"),
        ([[500, 0, 320], [0, 500, 240], [0, 0, 0]], r"last row must be \[0, 0, 1\]"),
        ([[500, 0, 320], [0, 500, 240], [0, 0, 1e-3]], r"last row must be \[0, 0, 1\]"),
        ([[-500, 0, 320], [0, 500, 240], [0, 0, 1]], "focal length -500"),
        ([[500, 0, 3.2e5], [0, 500, 240], [0, 0, 1]], "principal point"),
        (np.zeros((3, 3)), "all zeros.*from_fov"),
        ([[500, 0, np.nan], [0, 500, 240], [0, 0, 1]], "finite"),
    ],
)
def test_implausible_intrinsics_are_refused_with_the_reason(K, reason):
    with pytest.raises(ValueError, match=reason):
        CameraIntrinsics(np.asarray(K, np.float64), 640, 480)


def test_plausible_intrinsics_pass_and_all_zero_k_reads_as_uncalibrated():
    for fov in (2.0, 60.0, 150.0):  # telephoto to wide angle
        camera = CameraIntrinsics.from_fov(640, 480, fov)
        assert CameraIntrinsics(camera.K, 640, 480).fx == camera.fx
    assert CameraIntrinsics.is_uncalibrated(np.zeros(9))
    assert not CameraIntrinsics.is_uncalibrated(CameraIntrinsics.from_fov(640, 480).K)
    with pytest.raises(ValueError, match="field of view must be 1 to 170 deg"):
        CameraIntrinsics.from_fov(640, 480, 0.0)


def test_distortion_px_is_how_far_the_lens_moves_the_image_border():
    camera = CameraIntrinsics.from_fov(640, 480, 60.0)  # f = 554 px
    assert camera.distortion_px([0.0] * 5, "plumb_bob") == 0.0 and camera.distortion_px([], "") == 0.0
    # barrel distortion k1 = -0.3: the corner ray 400 px from the centre (r = 0.722 in K's units) lands at
    # r_d = r (1 + k1 r^2) = 0.609, 62.6 px nearer the centre than a pinhole puts it
    corner = camera.distortion_px([-0.3, 0.0, 0.0, 0.0, 0.0], "plumb_bob")
    assert corner == pytest.approx(400.0 * 0.3 * (400.0 / camera.fx) ** 2, rel=1e-6)
    assert camera.distortion_px([-0.01, 0.0, 0.0, 0.0, 0.0], "plumb_bob") < corner / 10  # mild lens
    assert camera.distortion_px([-0.3, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], "rational_polynomial") == \
        pytest.approx(corner)
    assert camera.distortion_px([0.0] * 4, "equidistant") > 20.0  # a fisheye is never a pinhole
    assert camera.distortion_px([0.1, 0.2, 0.3], "plumb_bob") == np.inf  # 3 coefficients: no model
    assert camera.distortion_px([0.1], "kannala_brandt_unknown") == np.inf
    assert camera.distortion_px([np.nan] * 5, "plumb_bob") == np.inf
