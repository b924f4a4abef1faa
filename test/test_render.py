"""Cameras reproduce PyTorch3D's look-at rig; the rasterizer backends agree; localizer renders look right."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from ivlm_core.body import load_body_model
from ivlm_core.geometry import vertex_normals
from ivlm_core.render import (
    HUMAN_VIEWS,
    OBJECT_ENCODING_VIEWS,
    OBJECT_VIEWS,
    Rasterizer,
    RenderCamera,
    View,
    interpolate,
    normalize_cam_params,
    render_body_views,
    render_object_views,
)
from ivlm_core.types import CameraIntrinsics

SIZE = 512


@pytest.fixture(scope="module")
def body():
    return load_body_model("anny")


def _rasterizer(backend: str, size: int | tuple[int, int] = SIZE) -> Rasterizer:
    try:
        return Rasterizer(size, backend=backend)
    except RuntimeError as e:
        pytest.skip(f"{backend} backend unavailable here: {e}")


@pytest.fixture(scope="module")
def gl():
    r = _rasterizer("moderngl")
    yield r
    r.close()


@pytest.fixture(scope="module")
def numpy_rasterizer():
    return Rasterizer(SIZE, backend="numpy")


def _project(points_cam: np.ndarray, K: np.ndarray) -> np.ndarray:
    return np.stack(
        [
            K[0, 0] * points_cam[:, 0] / points_cam[:, 2] + K[0, 2],
            K[1, 1] * points_cam[:, 1] / points_cam[:, 2] + K[1, 2],
        ],
        axis=1,
    )


def test_look_at_matches_pytorch3d_front_camera():
    # PyTorch3D: look_at_view_transform(2.7, 0, 0) -> R = diag(-1, 1, -1), T = (0, 0, 2.7).
    R, T = View("front", 2.7, 0.0, 0.0).pytorch3d_rt()
    np.testing.assert_allclose(R, np.diag([-1.0, 1.0, -1.0]), atol=1e-12)
    np.testing.assert_allclose(T, [0.0, 0.0, 2.7], atol=1e-12)


def test_rig_cameras_look_at_origin_from_their_spherical_position():
    for view in HUMAN_VIEWS + OBJECT_VIEWS:
        R, T = view.pytorch3d_rt()
        np.testing.assert_allclose(R.T @ R, np.eye(3), atol=1e-12)
        assert np.linalg.det(R) == pytest.approx(1.0)
        eye = view.camera_position()
        assert np.linalg.norm(eye) == pytest.approx(view.distance)
        # The eye maps to the view origin (plus offsets); the world origin to (x_trans, y_trans, distance).
        np.testing.assert_allclose(eye @ R + T, [view.x_trans, view.y_trans, 0.0], atol=1e-12)
        np.testing.assert_allclose(T, [view.x_trans, view.y_trans, view.distance], atol=1e-12)
        # The optical-frame extrinsics are the PyTorch3D ones with x and y flipped.
        p = np.array([0.3, -0.2, 0.1])
        M = view.world_to_camera()
        np.testing.assert_allclose(M[:3, :3] @ p + M[:3, 3], (p @ R + T) * [-1, -1, 1], atol=1e-12)


def test_world_axes_land_where_pytorch3d_puts_them():
    # Front camera on +z: world +x appears on the image's right, world +y at the top.
    cam = View("front", 2.0, 0.0, 0.0).camera(SIZE)
    M, K = cam.world_to_camera, cam.intrinsics.K
    uv = _project(np.array([[0, 0, 0], [0.5, 0, 0], [0, 0.5, 0]]) @ M[:3, :3].T + M[:3, 3], K)
    assert uv[0] == pytest.approx([SIZE / 2, SIZE / 2])
    assert uv[1, 0] > SIZE / 2 and uv[1, 1] == pytest.approx(SIZE / 2)
    assert uv[2, 1] < SIZE / 2 and uv[2, 0] == pytest.approx(SIZE / 2)
    # bottomfront's y_trans = 0.3 moves the origin up by 0.3 at distance 2 (60° FoV: f = 256 / tan 30°).
    cam = HUMAN_VIEWS[1].camera(SIZE)
    origin = _project(cam.world_to_camera[None, :3, 3], cam.intrinsics.K)[0]
    f = (SIZE / 2) / np.tan(np.radians(30))
    assert origin == pytest.approx([SIZE / 2, SIZE / 2 - f * 0.3 / 2.0])


def test_normalized_camera_params_match_the_original():
    np.testing.assert_allclose(normalize_cam_params(HUMAN_VIEWS[0]), [0.2, 0.125, 0.875, 0.5, 0.5])
    np.testing.assert_allclose(
        normalize_cam_params(HUMAN_VIEWS[1]), [0.2, 315 / 360, 0.875, 0.5, 0.65], rtol=1e-6
    )
    assert [v.name for v in HUMAN_VIEWS] == ["topfront", "bottomfront", "topback", "bottomback"]
    assert [v.name for v in OBJECT_VIEWS] == ["frontleft", "frontright", "backleft", "backright"]
    assert all(v.distance == 1.5 for v in OBJECT_VIEWS) and all(
        v.distance == 2.0 for v in OBJECT_ENCODING_VIEWS
    )


def test_moderngl_and_numpy_backends_agree_on_the_body(body, gl, numpy_rasterizer):
    for view in HUMAN_VIEWS:
        a = gl.rasterize(body.canonical_vertices, body.faces, view)
        b = numpy_rasterizer.rasterize(body.canonical_vertices, body.faces, view)
        covered = a.mask | b.mask
        same = a.triangle_id == b.triangle_id
        assert covered.sum() > 10_000
        assert same[covered].mean() >= 0.99, view.name
        both = same & a.mask
        assert np.abs(a.barycentrics - b.barycentrics)[both].max() < 0.02
        assert np.abs(a.depth - b.depth)[both].max() < 1e-3
        assert np.all(a.depth[~a.mask] == 0) and np.all(a.barycentrics[~a.mask] == 0)


def test_backends_agree_for_a_non_square_real_camera(body):
    # A 640x480 camera 2.5 m in front of the body (optical frame: y down), off-centre principal point.
    K = np.array([[520.0, 0.0, 300.0], [0.0, 520.0, 250.0], [0.0, 0.0, 1.0]])
    world_to_camera = np.diag([1.0, -1.0, -1.0, 1.0])
    world_to_camera[2, 3] = 2.5
    cam = RenderCamera(world_to_camera, CameraIntrinsics(K=K, width=640, height=480), name="real")
    gl = _rasterizer("moderngl", (480, 640))
    a = gl.rasterize(body.canonical_vertices, body.faces, cam)
    b = Rasterizer((480, 640), backend="numpy").rasterize(body.canonical_vertices, body.faces, cam)
    gl.close()
    covered = a.mask | b.mask
    assert covered.sum() > 10_000
    assert (a.triangle_id == b.triangle_id)[covered].mean() >= 0.99
    # The body's top (world +y) is in the upper image rows.
    rows = np.nonzero(a.mask)[0]
    head = body.canonical_vertices[:, 1].argmax()
    v_head = K[1, 1] * -body.canonical_vertices[head, 1] / (2.5 - body.canonical_vertices[head, 2]) + K[1, 2]
    assert rows.min() == pytest.approx(v_head, abs=2.0)


def test_numpy_rasterizer_gives_the_same_raster_in_small_chunks(body, numpy_rasterizer):
    small = Rasterizer(SIZE, backend="numpy")
    small._impl.chunk = 5_000  # many passes merged through the z-buffer
    a = numpy_rasterizer.rasterize(body.canonical_vertices, body.faces, HUMAN_VIEWS[3])
    b = small.rasterize(body.canonical_vertices, body.faces, HUMAN_VIEWS[3])
    np.testing.assert_array_equal(a.triangle_id, b.triangle_id)
    np.testing.assert_allclose(a.barycentrics, b.barycentrics)


@pytest.mark.parametrize("backend", ["moderngl", "numpy"])
def test_barycentrics_and_depth_reproject_to_pixel_centres(body, backend, gl, numpy_rasterizer):
    # Perspective-correct barycentrics interpolate the 3D surface point seen through each pixel centre.
    r = gl if backend == "moderngl" else numpy_rasterizer
    cam = HUMAN_VIEWS[0].camera(SIZE)
    M = cam.world_to_camera
    v_cam = body.canonical_vertices @ M[:3, :3].T + M[:3, 3]
    raster = r.rasterize(body.canonical_vertices, body.faces, HUMAN_VIEWS[0])
    points = interpolate(raster, v_cam, body.faces)[raster.mask].astype(np.float64)
    rows, cols = np.nonzero(raster.mask)
    uv = _project(points, cam.intrinsics.K)
    assert np.abs(uv - np.stack([cols + 0.5, rows + 0.5], 1)).max() < 0.02
    assert np.abs(points[:, 2] - raster.depth[raster.mask]).max() < 3e-3  # llvmpipe interpolates in float32
    np.testing.assert_allclose(raster.barycentrics[raster.mask].sum(1), 1.0, atol=1e-5)
    assert raster.barycentrics[raster.mask].min() >= -1e-5


@pytest.mark.skipif(not torch.cuda.is_available(), reason="nvdiffrast backend needs CUDA")
def test_nvdiffrast_matches_numpy(body, numpy_rasterizer):
    pytest.importorskip("nvdiffrast.torch")
    r = Rasterizer(SIZE, backend="nvdiffrast", device="cuda")
    for view in HUMAN_VIEWS:
        a = r.rasterize(body.canonical_vertices, body.faces, view)
        b = numpy_rasterizer.rasterize(body.canonical_vertices, body.faces, view)
        covered = a.mask | b.mask
        assert (a.triangle_id == b.triangle_id)[covered].mean() >= 0.99
        both = (a.triangle_id == b.triangle_id) & a.mask
        assert np.abs(a.barycentrics - b.barycentrics)[both].max() < 0.02
        assert np.abs(a.depth - b.depth)[both].max() < 1e-3


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_auto_backend_on_cpu_is_moderngl_and_says_so(gl):
    logger = logging.getLogger("ivlm_core.render.rasterize")
    records, level = _Records(), logger.level
    logger.addHandler(records)
    logger.setLevel(logging.INFO)
    try:
        r = Rasterizer(64, backend="auto", device="cpu")
    finally:
        logger.removeHandler(records)
        logger.setLevel(level)
    assert r.backend == "moderngl"
    assert any(m.startswith("rasterizer: moderngl") for m in records.messages)
    r.close()


def test_rasterizer_can_be_shared_between_threads(body, gl):
    from concurrent.futures import ThreadPoolExecutor

    expected = [gl.rasterize(body.canonical_vertices, body.faces, view).triangle_id for view in HUMAN_VIEWS]
    with ThreadPoolExecutor(max_workers=4) as pool:
        got = list(
            pool.map(lambda view: gl.rasterize(body.canonical_vertices, body.faces, view), HUMAN_VIEWS * 2)
        )
    for k, raster in enumerate(got):
        np.testing.assert_array_equal(raster.triangle_id, expected[k % 4])


@pytest.mark.parametrize("backend", ["moderngl", "numpy"])
def test_rasterizing_several_views_at_once_equals_one_call_per_view(body, backend, gl, numpy_rasterizer):
    r = gl if backend == "moderngl" else numpy_rasterizer
    together = r.rasterize_views(body.canonical_vertices, body.faces, HUMAN_VIEWS)
    for view, raster in zip(HUMAN_VIEWS, together, strict=True):
        alone = r.rasterize(body.canonical_vertices, body.faces, view)
        np.testing.assert_array_equal(raster.triangle_id, alone.triangle_id)
        np.testing.assert_array_equal(raster.barycentrics, alone.barycentrics)
        np.testing.assert_array_equal(raster.depth, alone.depth)


def test_culling_back_faces_of_a_closed_mesh_changes_no_output(body, gl):
    # The closed body is drawn with back faces culled (llvmpipe's per-triangle cost halves); adding one
    # degenerate face (no pixels, last id) opens it, so every face is drawn: the rasters must agree.
    v, f = body.canonical_vertices, body.faces
    culled = gl.rasterize_views(v, f, HUMAN_VIEWS)
    assert gl._impl._meshes["raster"].orientation == 1
    opened = gl.rasterize_views(v, np.concatenate([f, [[0, 0, 0]]]), HUMAN_VIEWS)
    assert gl._impl._meshes["raster"].orientation == 0
    for a, b in zip(culled, opened, strict=True):
        assert np.sum(a.triangle_id != b.triangle_id) <= 5  # exact ties on shared edges
        same = a.triangle_id == b.triangle_id
        np.testing.assert_allclose(a.barycentrics[same], b.barycentrics[same], atol=1e-6)


def test_moderngl_uploads_a_changed_mesh_again(body, gl):
    # The uploaded mesh is reused while its arrays are equal: an edit in place must still show up.
    v = body.canonical_vertices.astype(np.float32)
    before = gl.rasterize(v, body.faces, HUMAN_VIEWS[0])
    kept = before.triangle_id.copy()
    v[:, 1] += 0.1  # up by 10 cm: the silhouette moves up in the image
    after = gl.rasterize(v, body.faces, HUMAN_VIEWS[0])
    fresh = Rasterizer(SIZE, backend="moderngl")
    np.testing.assert_array_equal(
        after.triangle_id, fresh.rasterize(v, body.faces, HUMAN_VIEWS[0]).triangle_id
    )
    fresh.close()
    assert np.nonzero(after.mask)[0].min() < np.nonzero(before.mask)[0].min() - 10
    # Results are the caller's: later calls do not write into them.
    np.testing.assert_array_equal(before.triangle_id, kept)


def test_bad_input_raises_value_error(numpy_rasterizer):
    v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], dtype=np.float32)
    f = np.array([[0, 1, 2]])
    view = HUMAN_VIEWS[0]
    with pytest.raises(ValueError, match="non-empty"):
        numpy_rasterizer.rasterize(np.zeros((0, 3)), f, view)
    with pytest.raises(ValueError, match="non-empty"):
        numpy_rasterizer.rasterize(v, np.zeros((0, 3), int), view)
    with pytest.raises(ValueError, match="NaN"):
        numpy_rasterizer.rasterize(np.where(np.eye(3, dtype=bool), np.nan, v), f, view)
    with pytest.raises(ValueError, match="index vertices"):
        numpy_rasterizer.rasterize(v, np.array([[0, 1, 3]]), view)
    with pytest.raises(ValueError, match="integer"):
        numpy_rasterizer.rasterize(v, f.astype(float), view)
    with pytest.raises(ValueError, match="rasterizer is"):
        numpy_rasterizer.rasterize(v, f, view.camera(256))
    with pytest.raises(ValueError, match="unknown rasterizer backend"):
        Rasterizer(SIZE, backend="vulkan")
    with pytest.raises(ValueError, match="one per camera"):
        numpy_rasterizer.shade_views(v, f, HUMAN_VIEWS[:2], np.ones((3, 3)), np.zeros((1, 3)))
    with pytest.raises(ValueError, match="View or a RenderCamera"):
        numpy_rasterizer.rasterize_views(v, f, [np.eye(4)])


def test_body_render_is_normal_coloured_phong_on_white(body, gl):
    rig = render_body_views(gl, body.canonical_vertices, body.faces)
    assert rig.images.shape == (4, SIZE, SIZE, 3) and rig.images.dtype == np.uint8
    white = (rig.images == 255).all(-1)
    np.testing.assert_array_equal(white, ~rig.masks)
    np.testing.assert_allclose(rig.cam_params[0], [0.2, 0.125, 0.875, 0.5, 0.5])
    # Shading scales all channels alike and specular adds equally, so channel order follows the normal's.
    normals = vertex_normals(body.canonical_vertices, body.faces)
    for k, view in enumerate(HUMAN_VIEWS):
        raster = gl.rasterize(body.canonical_vertices, body.faces, view)
        n = interpolate(raster, normals, body.faces)[raster.mask]
        c = rig.images[k][raster.mask].astype(int)
        clear = np.abs(n[:, 0] - n[:, 1]) > 0.1
        assert (np.sign(c[clear, 0] - c[clear, 1]) == np.sign(n[clear, 0] - n[clear, 1])).mean() > 0.98
    # The light sits in front (+z) for topfront: surfaces facing it are brighter than those facing away.
    raster = gl.rasterize(body.canonical_vertices, body.faces, HUMAN_VIEWS[0])
    nz = interpolate(raster, normals, body.faces)[raster.mask][:, 2]
    brightness = rig.images[0][raster.mask].astype(float).sum(1)
    assert brightness[nz > 0.5].mean() > brightness[nz < -0.5].mean() + 20


def test_moderngl_shading_matches_the_numpy_phong_formula(body, gl, numpy_rasterizer):
    # The fragment shader and ivlm_core.render.shading.shade_phong implement the same PyTorch3D lighting.
    gl_rig = render_body_views(gl, body.canonical_vertices, body.faces)
    np_rig = render_body_views(numpy_rasterizer, body.canonical_vertices, body.faces)
    both = gl_rig.masks & np_rig.masks
    diff = np.abs(gl_rig.images.astype(int) - np_rig.images.astype(int)).max(-1)
    assert (diff[both] <= 2).mean() > 0.99
    assert np.median(diff[both]) <= 1


def test_object_render_uses_normalised_xyz_colours(gl):
    trimesh = pytest.importorskip("trimesh")
    cup = trimesh.creation.cylinder(radius=0.04, height=0.1, sections=48)
    # Any placement and size renders the same: centred on the vertex mean, largest extent 1.
    rig = render_object_views(gl, cup.vertices * 3.0 + [1.0, 2.0, 3.0], cup.faces)
    assert np.abs(rig.vertices.mean(0)).max() < 1e-6
    assert (rig.vertices.max(0) - rig.vertices.min(0)).max() == pytest.approx(1.0)
    np.testing.assert_array_equal(rig.images, render_object_views(gl, cup.vertices, cup.faces).images)
    np.testing.assert_allclose(rig.cam_params[:, 0], 0.2)  # encoded at distance 2, rendered at 1.5
    white = (rig.images == 255).all(-1)
    np.testing.assert_array_equal(white, ~rig.masks)
    assert rig.masks.mean() > 0.05
    # Colour channels order like the normalised coordinates they encode (x -> red, y -> green).
    for k, view in enumerate(OBJECT_VIEWS):
        raster = gl.rasterize(rig.vertices, cup.faces, view)
        p = interpolate(raster, (rig.vertices - rig.vertices.min(0)) / np.ptp(rig.vertices, 0), cup.faces)
        p, c = p[raster.mask], rig.images[k][raster.mask].astype(int)
        clear = np.abs(p[:, 0] - p[:, 1]) > 0.1
        assert (np.sign(c[clear, 0] - c[clear, 1]) == np.sign(p[clear, 0] - p[clear, 1])).mean() > 0.98
