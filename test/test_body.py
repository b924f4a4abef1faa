"""Body models: anny (shipped) and the SMPL family (a synthetic SMPL-format file written here)."""

from __future__ import annotations

import pickle
import shutil

import numpy as np
import pytest
import torch
import trimesh

from ivlm_core.body import KEYPOINT_NAMES, PART_NAMES, clear_body_model_cache, load_body_model
from ivlm_core.body.anny_body import load_anny
from ivlm_core.body.cache import main as cache_main
from ivlm_core.body.disk_cache import anny_cache_dir, prune_anny_intermediates
from ivlm_core.body.parts import SIDED_PARTS

LEFT_RIGHT = [(f"left_{part}", f"right_{part}") for part in SIDED_PARTS]


@pytest.fixture(scope="module")
def anny():
    return load_body_model("anny")


def _keypoints(model, out=None, batch=0):
    out = out if out is not None else model.forward()
    kp = out.keypoints[batch].detach().numpy()
    return {name: kp[i] for i, name in enumerate(KEYPOINT_NAMES)}


def test_part_names_are_the_contract():
    assert PART_NAMES[:6] == ("head", "neck", "torso_front", "torso_back", "hips", "buttocks")
    assert set(PART_NAMES[6:]) == {f"{s}_{p}" for s in ("left", "right") for p in SIDED_PARTS}
    assert len(PART_NAMES) == 18


def test_anny_mesh_shapes_and_types(anny):
    assert anny.name == "anny"
    assert anny.num_vertices == 13718 and anny.canonical_vertices.shape == (13718, 3)
    assert anny.canonical_vertices.dtype == np.float32 and anny.faces.dtype == np.int64
    assert anny.faces.shape[1] == 3 and anny.faces.min() == 0 and anny.faces.max() == anny.num_vertices - 1
    assert anny.part_labels.dtype == np.int16 and anny.part_labels.shape == (anny.num_vertices,)
    assert anny.num_joints == 104 and anny.canonical_pose.shape == (104, 3)


def test_anny_parts_cover_every_vertex_and_none_is_empty(anny):
    assert anny.part_labels.min() >= 0 and anny.part_labels.max() < len(PART_NAMES)
    ids = np.concatenate([anny.part_vertex_ids(name) for name in PART_NAMES])
    assert np.array_equal(np.sort(ids), np.arange(anny.num_vertices))
    for name in PART_NAMES:
        assert anny.part_vertex_ids(name).size >= 10, name


def test_anny_left_parts_are_the_persons_left_and_mirror_the_right(anny):
    v = anny.canonical_vertices
    for left, right in LEFT_RIGHT:
        left_ids, right_ids = anny.part_vertex_ids(left), anny.part_vertex_ids(right)
        assert abs(left_ids.size - right_ids.size) <= 0.02 * left_ids.size, (left, right)
        assert np.all(v[left_ids, 0] > 0) and np.all(v[right_ids, 0] < 0), (left, right)
        # Mirror image: the left part's centroid is the right part's with x negated.
        mirrored = v[right_ids].mean(axis=0) * np.array([-1, 1, 1])
        assert np.allclose(v[left_ids].mean(axis=0), mirrored, atol=0.01), (left, right)


def test_anny_front_parts_are_in_front(anny):
    v = anny.canonical_vertices
    def centre(part):
        return v[anny.part_vertex_ids(part)].mean(axis=0)

    assert centre("torso_front")[2] > centre("torso_back")[2] + 0.05
    assert centre("hips")[2] > centre("buttocks")[2]
    assert v[anny.part_vertex_ids("head"), 1].min() > centre("torso_front")[1]


def _assert_vitruvian(model):
    v = model.canonical_vertices
    assert np.allclose(0.5 * (v.min(axis=0) + v.max(axis=0)), 0.0, atol=1e-5)  # bbox centre at the origin
    kp = _keypoints(model)
    for side, sign in (("left", 1.0), ("right", -1.0)):
        shoulder, elbow, wrist = kp[f"{side}_shoulder"], kp[f"{side}_elbow"], kp[f"{side}_wrist"]
        assert abs(elbow[1] - shoulder[1]) < 0.03 and abs(wrist[1] - shoulder[1]) < 0.03  # arms horizontal
        assert sign * wrist[0] > sign * elbow[0] > sign * shoulder[0] > 0  # pointing outwards
        hip, ankle = kp[f"{side}_hip"], kp[f"{side}_ankle"]
        spread = np.degrees(np.arctan2(sign * (ankle[0] - hip[0]), hip[1] - ankle[1]))
        assert 25.0 < spread < 45.0, spread  # legs spread by about 30 degrees
        assert v[:, 1].max() > shoulder[1] > hip[1] > ankle[1]  # y up
    return kp


def test_anny_mesh_is_closed_with_outward_normals(anny):
    mesh = trimesh.Trimesh(anny.canonical_vertices, anny.faces, process=False)
    assert mesh.is_watertight and mesh.volume > 0.03  # cubic metres: a closed, outward-wound body
    normals = mesh.vertex_normals
    v = anny.canonical_vertices
    assert normals[np.argmax(v[:, 1]), 1] > 0.9  # top of the head faces up
    assert normals[anny.part_vertex_ids("torso_front"), 2].mean() > 0.5
    assert normals[anny.part_vertex_ids("buttocks"), 2].mean() < -0.3


def test_anny_canonical_pose_is_vitruvian_and_faces_plus_z(anny):
    kp = _assert_vitruvian(anny)
    assert kp["nose"][2] > kp["left_ear"][2] + 0.05 and kp["nose"][2] > kp["right_ear"][2] + 0.05
    assert kp["left_big_toe"][2] > kp["left_heel"][2] + 0.1
    assert kp["left_eye"][0] > 0 > kp["right_eye"][0]  # person's left eye on +x
    for side, sign in (("left", 1.0), ("right", -1.0)):
        for point in ("pinky", "index", "thumb"):  # MediaPipe's hand points lie beyond the wrist
            assert sign * kp[f"{side}_{point}"][0] > sign * kp[f"{side}_wrist"][0] + 0.04, (side, point)
        assert kp[f"{side}_thumb"][2] > kp[f"{side}_pinky"][2] + 0.05  # palms down, thumbs forward
    assert 1.4 < np.ptp(anny.canonical_vertices[:, 1]) < 1.9  # an adult, in metres


def test_anny_forward_reproduces_canonical_mesh_and_is_differentiable(anny):
    pose = torch.tensor(anny.canonical_pose)[None].repeat(2, 1, 1).requires_grad_(True)
    shape = torch.tensor(anny.default_shape)[None].repeat(2, 1)
    shape[1, anny.shape_names.index("height")] = 1.0
    shape.requires_grad_(True)
    out = anny.forward(pose, shape)
    assert out.vertices.shape == (2, anny.num_vertices, 3) and out.joints.shape == (2, anny.num_joints, 3)
    assert out.keypoints.shape == (2, len(KEYPOINT_NAMES), 3)
    # shape needs a gradient here, so anny recomputes the rest shape the canonical mesh took from its cache
    assert np.allclose(out.vertices[0].detach().numpy(), anny.canonical_vertices, atol=1e-5)
    height = out.vertices[:, :, 1].amax(dim=1) - out.vertices[:, :, 1].amin(dim=1)
    assert height[1] > height[0] + 0.05  # the "height" phenotype makes a taller person
    (out.keypoints[:, anny.keypoint_index("left_wrist")].sum() + out.vertices[:, :, 1].mean()).backward()
    left_elbow = anny.joint_index("lowerarm01.L")
    assert torch.isfinite(pose.grad).all() and pose.grad[:, left_elbow].abs().sum() > 0
    assert shape.grad[:, anny.shape_names.index("height")].abs().sum() > 0


def test_anny_bending_the_left_elbow_moves_only_the_left_forearm_and_hand(anny):
    pose = torch.tensor(anny.canonical_pose)
    pose[anny.joint_index("lowerarm01.L")] = torch.tensor([0.0, -np.pi / 2, 0.0])  # fold the forearm forwards
    with torch.no_grad():
        moved = np.linalg.norm(anny.forward(pose).vertices[0].numpy() - anny.canonical_vertices, axis=1)
    assert np.median(moved[anny.part_vertex_ids("left_hand")]) > 0.2
    for still in ("right_forearm", "right_hand", "torso_back", "left_thigh", "head"):
        assert np.median(moved[anny.part_vertex_ids(still)]) < 1e-4, still
    with torch.no_grad():
        bent, straight = anny.forward(pose).joints[0].numpy(), anny.forward().joints[0].numpy()
    elbow, wrist = anny.joint_index("lowerarm01.L"), anny.joint_index("wrist.L")
    assert np.allclose(bent[elbow], straight[elbow], atol=1e-5)  # the forearm turns about the elbow...
    lengths = [np.linalg.norm(joints[wrist] - joints[elbow]) for joints in (bent, straight)]
    assert np.isclose(lengths[0], lengths[1], atol=1e-5)
    assert np.linalg.norm(bent[wrist] - straight[wrist]) > 0.2  # ...and swings the wrist away


def test_global_orient_and_transl_move_the_whole_body(anny):
    half_turn = torch.tensor([[0.0, np.pi, 0.0]])
    with torch.no_grad():
        out = anny.forward(global_orient=half_turn, transl=torch.tensor([[0.0, 0.0, 2.0]]))
    expected = anny.canonical_vertices * np.array([-1, 1, -1]) + np.array([0, 0, 2.0])
    assert np.allclose(out.vertices[0].numpy(), expected, atol=1e-5)
    assert _keypoints(anny, out)["nose"][2] < 2.0  # now facing -z


def test_bad_inputs_raise_value_errors(anny):
    with pytest.raises(ValueError, match="pose must have shape"):
        anny.forward(torch.zeros(1, 24, 3))
    with pytest.raises(ValueError, match="shape must have shape"):
        anny.forward(shape=torch.zeros(1, 10))
    with pytest.raises(ValueError, match="must agree"):
        anny.forward(torch.zeros(2, anny.num_joints, 3), torch.full((3, 6), 0.5))
    with pytest.raises(ValueError, match="unknown body part"):
        anny.part_vertex_ids("left_elbow")
    with pytest.raises(ValueError, match="unknown body model"):
        load_body_model("mano")


def test_anny_cache_is_reused(anny, capsys):
    assert load_body_model(name="anny", model_path="", device="cpu") is anny  # once per process
    assert list(anny_cache_dir().rglob("*.safetensors"))  # once per machine
    clear_body_model_cache()
    files = {p: p.stat().st_mtime_ns for p in anny_cache_dir().rglob("*.safetensors")}
    assert cache_main([]) == 0  # the setup entry point, reading the warm on-disk cache
    assert {p: p.stat().st_mtime_ns for p in anny_cache_dir().rglob("*.safetensors")} == files  # not rebuilt
    assert "13718 vertices" in capsys.readouterr().out
    assert np.array_equal(load_body_model("anny").part_labels, anny.part_labels)


def test_pruned_anny_cache_still_loads(anny, tmp_path, monkeypatch):
    compact = next(anny_cache_dir().glob("v*/build_compact_model_data_*.safetensors"))
    version_dir = tmp_path / compact.parent.name
    version_dir.mkdir()
    shutil.copy(compact, version_dir / compact.name)
    (version_dir / "load_data_0.safetensors").write_bytes(b"intermediate")
    assert prune_anny_intermediates(tmp_path) == len(b"intermediate")
    assert [p.name for p in version_dir.iterdir()] == [compact.name]
    monkeypatch.setenv("ANNY_CACHE_DIR", str(tmp_path))
    written = (version_dir / compact.name).stat().st_mtime_ns
    reloaded = load_anny()  # from the compact file alone: nothing is rebuilt
    assert (version_dir / compact.name).stat().st_mtime_ns == written
    assert np.array_equal(reloaded.canonical_vertices, anny.canonical_vertices)
    assert [p.name for p in version_dir.glob("*.safetensors")] == [compact.name]


def test_smpl_family_without_files_names_the_expected_ones(tmp_path, capsys):
    assert cache_main(["--model", "smplh", "--model-path", str(tmp_path)]) == 2
    assert "smplh/SMPLH_NEUTRAL.pkl" in capsys.readouterr().err
    with pytest.raises(ValueError, match=r"SMPLH_NEUTRAL\.pkl"):
        load_body_model("smplh")
    with pytest.raises(ValueError, match=r"smplh/SMPLH_NEUTRAL\.pkl"):
        load_body_model("smplh", model_path=str(tmp_path))
    with pytest.raises(ValueError, match=r"SMPLX_NEUTRAL\.npz"):
        load_body_model("smplx", model_path=str(tmp_path))


# A stick-figure SMPL in its T-pose: joint positions (metres, y up, facing +z, left = +x) and parents.
_SMPL_JOINTS = np.array([
    [0.0, 0.0, 0.0], [0.07, -0.09, 0.0], [-0.07, -0.09, 0.0], [0.0, 0.11, -0.02], [0.1, -0.48, 0.0],
    [-0.1, -0.48, 0.0], [0.0, 0.24, -0.02], [0.09, -0.88, -0.03], [-0.09, -0.88, -0.03], [0.0, 0.3, -0.01],
    [0.11, -0.93, 0.1], [-0.11, -0.93, 0.1], [0.0, 0.5, -0.02], [0.07, 0.42, -0.01], [-0.07, 0.42, -0.01],
    [0.0, 0.58, 0.03], [0.17, 0.44, -0.02], [-0.17, 0.44, -0.02], [0.43, 0.42, -0.03], [-0.43, 0.42, -0.03],
    [0.68, 0.42, -0.02], [-0.68, 0.42, -0.02], [0.77, 0.41, -0.02], [-0.77, 0.41, -0.02],
])
_SMPL_PARENTS = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21]


def _smplh_skeleton():
    """SMPL-H's 52 joints: SMPL's first 22, then index, middle, pinky, ring, thumb (3 each) per hand."""
    joints, parents = list(_SMPL_JOINTS[:22]), list(_SMPL_PARENTS[:22])
    for wrist, sign in ((20, 1.0), (21, -1.0)):
        for finger_z in (0.02, 0.0, -0.04, -0.02, 0.05):  # index, middle, pinky, ring, thumb (thumb in front)
            for knuckle in range(3):
                parents.append(wrist if knuckle == 0 else len(joints) - 1)
                joints.append(_SMPL_JOINTS[wrist] + [sign * (0.06 + 0.03 * knuckle), 0.0, finger_z])
    return np.array(joints), parents


def _write_synthetic_smpl(path, joints, parents):
    """An SMPL-format pickle (6890 vertices, SMPL-H extras when 52 joints) with tubes around the bones.

    Each vertex is skinned to one joint and lies on a tube from that joint towards its child (leaves
    continue their parent's bone), so the body-part code sees the structure of the licensed model;
    no licensed data is used.
    """
    rng = np.random.default_rng(0)
    num_joints = len(joints)
    counts = np.full(num_joints, 6890 // num_joints)
    counts[-1] += 6890 - counts.sum()
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
    tube_end = {0: 3, 9: 12} | {p: j for j, p in reversed(list(enumerate(parents))) if p not in (0, 9)}
    vertices, weights = np.zeros((6890, 3)), np.zeros((6890, num_joints))
    for j, (offset, count) in enumerate(zip(offsets, counts, strict=True)):
        start = joints[j]
        end = joints[tube_end[j]] if j in tube_end else start + 0.4 * (start - joints[parents[j]])
        radial = rng.normal(size=(count, 3))
        radial /= np.linalg.norm(radial, axis=1, keepdims=True)
        points = start + rng.uniform(0.0, 1.0, (count, 1)) * (end - start) + 0.04 * radial
        points[0] = start  # the joint regressor reads the joint back from this vertex
        vertices[offset:offset + count] = points
        weights[offset:offset + count, j] = 1.0
    j_regressor = np.zeros((num_joints, 6890))
    j_regressor[np.arange(num_joints), offsets] = 1.0
    data = {
        "v_template": vertices, "weights": weights, "J_regressor": j_regressor,
        "f": np.arange(6888, dtype=np.int64).reshape(-1, 3),
        "shapedirs": rng.normal(scale=0.01, size=(6890, 3, 10)),
        "posedirs": np.zeros((6890, 3, 9 * (num_joints - 1))),
        "kintree_table": np.array([parents, list(range(num_joints))], dtype=np.int64),
    }
    if num_joints == 52:
        data |= {"hands_componentsl": np.eye(45), "hands_componentsr": np.eye(45),
                 "hands_meanl": np.zeros(45), "hands_meanr": np.zeros(45)}
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(data, f)


def _check_smpl_family_model(model, num_joints):
    assert model.num_vertices == 6890 and model.num_joints == num_joints
    assert model.shape_names == tuple(f"beta{i}" for i in range(10))
    _assert_vitruvian(model)
    for name in PART_NAMES:
        assert model.part_vertex_ids(name).size > 0, name
    assert model.canonical_vertices[model.part_vertex_ids("left_hand"), 0].min() > 0.5
    pose = torch.tensor(model.canonical_pose)[None].requires_grad_(True)
    out = model.forward(pose)
    assert np.allclose(out.vertices[0].detach().numpy(), model.canonical_vertices, atol=1e-5)
    out.keypoints[0, model.keypoint_index("left_wrist")].sum().backward()
    assert pose.grad[0, model.joint_index("left_shoulder")].abs().sum() > 0


def test_smpl_loads_through_smplx_in_the_same_body_frame(tmp_path):
    _write_synthetic_smpl(tmp_path / "smpl" / "SMPL_NEUTRAL.pkl", _SMPL_JOINTS, _SMPL_PARENTS)
    smpl = load_body_model("smpl", model_path=str(tmp_path))
    assert smpl.name == "smpl"
    _check_smpl_family_model(smpl, 24)


def test_smplh_loads_from_a_file_path_with_finger_joints_in_the_hands(tmp_path):
    joints, parents = _smplh_skeleton()
    _write_synthetic_smpl(tmp_path / "my_smplh_model.pkl", joints, parents)
    smplh = load_body_model("smplh", model_path=str(tmp_path / "my_smplh_model.pkl"))
    assert smplh.name == "smplh"
    _check_smpl_family_model(smplh, 52)
    hand = set(smplh.part_vertex_ids("right_hand"))
    finger_vertex = int(np.flatnonzero(smplh.skinner.lbs_weights[:, smplh.joint_index("right_thumb3")])[0])
    assert finger_vertex in hand
    kp = _keypoints(smplh)
    assert np.allclose(kp["left_index"], smplh.forward().joints[0, smplh.joint_index("left_index1")].numpy())


def test_unreadable_smpl_file_is_a_value_error(tmp_path):
    (tmp_path / "smpl").mkdir()
    (tmp_path / "smpl" / "SMPL_NEUTRAL.pkl").write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match="not a readable SMPL model file"):
        load_body_model("smpl", model_path=str(tmp_path))
    (tmp_path / "smpl.npz").write_bytes(b"")
    with pytest.raises(ValueError, match=r"must end in \.pkl"):
        load_body_model("smpl", model_path=str(tmp_path / "smpl.npz"))
