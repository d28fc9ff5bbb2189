"""The synthetic SMPL-X / SMPL-H files: formats, surfaces, rig, landmarks and the SMPL -> SMPL-X mapping."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.sparse.csgraph import connected_components
from smplx.vertex_ids import vertex_ids as SMPLX_VERTEX_IDS

from ivlm_core.body import load_smpl_to_smplx, read_model_file
from ivlm_core.demo import GENERATOR_VERSION, ensure_synthetic_body_models
from ivlm_core.demo.skeleton import SMPLH_JOINT_NAMES, SMPLX_JOINT_NAMES, joint_positions
from ivlm_core.demo.topology import adjacency, edges_of, inspect_surface

SMPLX_PARENTS_REAL = [
    -1,
    0,
    0,
    0,
    1,
    2,
    3,
    4,
    5,
    6,
    7,
    8,
    9,
    9,
    9,
    12,
    13,
    14,
    16,
    17,
    18,
    19,
    15,
    15,
    15,
    20,
    25,
    26,
    20,
    28,
    29,
    20,
    31,
    32,
    20,
    34,
    35,
    20,
    37,
    38,
    21,
    40,
    41,
    21,
    43,
    44,
    21,
    46,
    47,
    21,
    49,
    50,
    21,
    52,
    53,
]
SMPLH_PARENTS_REAL = [
    -1,
    0,
    0,
    0,
    1,
    2,
    3,
    4,
    5,
    6,
    7,
    8,
    9,
    9,
    9,
    12,
    13,
    14,
    16,
    17,
    18,
    19,
    20,
    22,
    23,
    20,
    25,
    26,
    20,
    28,
    29,
    20,
    31,
    32,
    20,
    34,
    35,
    21,
    37,
    38,
    21,
    40,
    41,
    21,
    43,
    44,
    21,
    46,
    47,
    21,
    49,
    50,
]


@pytest.fixture(scope="module")
def smplx_data(synthetic_body_files) -> dict:
    return read_model_file(synthetic_body_files.smplx)


@pytest.fixture(scope="module")
def smplh_data(synthetic_body_files) -> dict:
    return read_model_file(synthetic_body_files.smplh)


def _eyeball_and_body(data: dict) -> tuple[np.ndarray, list[np.ndarray]]:
    """Vertex ids of the main body and of each smaller piece (eyeballs)."""
    n = len(data["v_template"])
    _, labels = connected_components(adjacency(data["f"].astype(np.int64), n), directed=False)
    counts = np.bincount(labels)
    main = counts.argmax()
    others = [np.flatnonzero(labels == c) for c in range(len(counts)) if c != main]
    return np.flatnonzero(labels == main), others


def test_files_are_in_the_models_folder_layout(synthetic_body_files) -> None:
    root = synthetic_body_files.root
    assert synthetic_body_files.smplx == root / "body_models" / "smplx" / "SMPLX_NEUTRAL.npz"
    assert synthetic_body_files.smplh == root / "body_models" / "smplh" / "SMPLH_NEUTRAL.npz"
    assert synthetic_body_files.smpl_to_smplx == root / "interactvlm" / "data" / "smpl_to_smplx.pkl"
    for path in (synthetic_body_files.smplx, synthetic_body_files.smplh, synthetic_body_files.smpl_to_smplx):
        assert path.is_file()


def test_ensure_reuses_the_generated_files(synthetic_body_files) -> None:
    before = synthetic_body_files.smplx.stat().st_mtime_ns
    again = ensure_synthetic_body_models()
    assert again == synthetic_body_files
    assert again.smplx.stat().st_mtime_ns == before


def test_smplx_file_has_every_key_with_real_shapes(smplx_data: dict) -> None:
    d = smplx_data
    shapes = {
        "v_template": (10475, 3),
        "f": (20908, 3),
        "shapedirs": (10475, 3, 400),
        "posedirs": (10475, 3, 486),
        "J_regressor": (55, 10475),
        "kintree_table": (2, 55),
        "weights": (10475, 55),
        "hands_componentsl": (45, 45),
        "hands_componentsr": (45, 45),
        "hands_meanl": (45,),
        "hands_meanr": (45,),
        "lmk_faces_idx": (51,),
        "lmk_bary_coords": (51, 3),
        "dynamic_lmk_faces_idx": (79, 17),
        "dynamic_lmk_bary_coords": (79, 17, 3),
        "ft": (20908, 3),
    }
    for key, shape in shapes.items():
        assert np.shape(d[key]) == shape, key
    assert d["hands_coeffsl"].shape[1] == 45 and d["hands_coeffsr"].shape[1] == 45
    assert d["vt"].shape[1] == 2 and d["vt"].shape[0] >= 10475
    assert d["ft"].max() < len(d["vt"]) and d["vt"].min() >= 0 and d["vt"].max() <= 1
    assert d["kintree_table"][0, 0] == 4294967295
    assert list(d["kintree_table"][0, 1:]) == SMPLX_PARENTS_REAL[1:]
    assert list(d["kintree_table"][1]) == list(range(55))
    assert isinstance(d["joint2num"], dict) and d["joint2num"]["left_wrist"] == 20
    assert isinstance(d["part2num"], dict)
    assert str(d["ivlm_synthetic_demo"]) == GENERATOR_VERSION


def test_smplh_file_has_every_key_with_real_shapes(smplh_data: dict) -> None:
    d = smplh_data
    shapes = {
        "v_template": (6890, 3),
        "f": (13776, 3),
        "shapedirs": (6890, 3, 16),
        "posedirs": (6890, 3, 459),
        "J_regressor": (52, 6890),
        "kintree_table": (2, 52),
        "weights": (6890, 52),
        "hands_componentsl": (45, 45),
        "hands_componentsr": (45, 45),
        "hands_meanl": (45,),
        "hands_meanr": (45,),
    }
    for key, shape in shapes.items():
        assert np.shape(d[key]) == shape, key
    assert list(d["kintree_table"][0, 1:]) == SMPLH_PARENTS_REAL[1:]
    assert d["kintree_table"][0, 0] == 4294967295
    assert str(d["ivlm_synthetic_demo"]) == GENERATOR_VERSION


def test_smplh_surface_is_one_closed_genus0_manifold(smplh_data: dict) -> None:
    report = inspect_surface(smplh_data["f"], 6890)
    assert report.is_manifold and report.unused_vertices == 0
    assert report.n_components == 1 and report.n_boundary_edges == 0
    assert report.euler_characteristic == 2 and report.genus_total() == 0


def test_smplx_surface_is_body_with_two_eye_openings_and_two_eyeballs(smplx_data: dict) -> None:
    f = smplx_data["f"].astype(np.int64)
    report = inspect_surface(f, 10475)
    assert report.is_manifold and report.unused_vertices == 0
    assert 2 * 10475 - 20908 == 42
    assert report.n_components == 3 and report.n_boundary_loops == 2 and report.n_boundary_edges == 34
    assert report.euler_characteristic == 0 + 2 + 2  # body with two openings, two spheres
    assert report.genus_total() == 0
    body, balls = _eyeball_and_body(smplx_data)
    assert sorted(len(b) for b in balls) == [162, 162]
    # each opening has 17 edges and sits in front of its eyeball
    e = edges_of(f)
    rim = e.vertices[e.half[:, 1] < 0]
    v = smplx_data["v_template"]
    for ball in balls:
        centre = v[ball].mean(axis=0)
        near = np.linalg.norm(v[rim].mean(axis=1) - centre, axis=1) < 0.03
        assert near.sum() == 17


def test_body_proportions(smplx_data: dict, smplh_data: dict) -> None:
    for d in (smplx_data, smplh_data):
        v = d["v_template"]
        assert v[:, 1].max() == pytest.approx(0.50, abs=0.01)
        assert v[:, 1].min() == pytest.approx(-1.20, abs=0.01)
        assert 1.68 < np.ptp(v[:, 0]) < 1.82  # T-pose arm span, fingertip to fingertip
        assert v[:, 2].max() > 0.15  # toes point forward


def test_joint_regressor_reproduces_designed_joints(smplx_data: dict, smplh_data: dict) -> None:
    for d, names in ((smplx_data, SMPLX_JOINT_NAMES), (smplh_data, SMPLH_JOINT_NAMES)):
        reg = d["J_regressor"]
        assert (reg >= 0).all()
        np.testing.assert_allclose(reg.sum(axis=1), 1.0, atol=1e-9)
        assert ((reg > 0).sum(axis=1) <= 256).all()  # sparse
        joints = reg @ d["v_template"]
        assert np.abs(joints - joint_positions(names)).max() < 1e-3
    left_hip = smplx_data["J_regressor"][1] @ smplx_data["v_template"]
    assert left_hip[0] > 0 and smplx_data["J_regressor"][0] @ smplx_data["v_template"] == pytest.approx(
        [0.0, -0.35, 0.0], abs=1e-3
    )


def test_skinning_weights_are_sparse_and_normalised(smplx_data: dict, smplh_data: dict) -> None:
    for d in (smplx_data, smplh_data):
        w = d["weights"]
        assert (w >= 0).all()
        np.testing.assert_allclose(w.sum(axis=1), 1.0, atol=1e-9)
        assert ((w > 0).sum(axis=1) <= 4).all()
    # eyeballs follow their eye joints only (23 left, 24 right)
    v = smplx_data["v_template"]
    _, balls = _eyeball_and_body(smplx_data)
    for ball in balls:
        joint = 23 if v[ball, 0].mean() > 0 else 24
        assert (smplx_data["weights"][ball, joint] == 1.0).all()


def test_shape_and_expression_components(smplx_data: dict, smplh_data: dict) -> None:
    dirs = smplx_data["shapedirs"]
    size = np.abs(dirs).max(axis=(0, 1))
    assert (size[:10] > 0.005).all() and (size[16:300] == 0).all()
    assert (size[300:310] > 0.001).all() and (size[310:] == 0).all()
    v = smplx_data["v_template"]
    moved = np.abs(dirs[:, :, 300:310]).max(axis=(1, 2)) > 1e-6
    assert v[moved, 1].min() > 0.25  # expressions act on the face only
    # stature makes the body taller, and the SMPL-H file shares the same components
    assert np.ptp(v[:, 1] + dirs[:, 1, 0]) > np.ptp(v[:, 1]) + 0.03
    assert (np.abs(smplh_data["shapedirs"]).max(axis=(0, 1))[:10] > 0.005).all()


def test_pose_correctives_are_small_and_local(smplx_data: dict) -> None:
    posedirs = smplx_data["posedirs"]
    assert np.abs(posedirs).max() < 0.01
    left_knee = posedirs[:, :, 9 * 3 : 9 * 4]  # joint 4 is feature block 3
    active = np.abs(left_knee).max(axis=(1, 2)) > 0
    v = smplx_data["v_template"][active]
    assert active.any()
    assert (v[:, 0] > 0).all() and (v[:, 1] < -0.5).all() and (v[:, 1] > -1.1).all()  # left leg only
    strong = np.abs(left_knee).max(axis=(1, 2)) > 0.5 * np.abs(left_knee).max()
    knee = smplx_data["J_regressor"][4] @ smplx_data["v_template"]
    assert np.linalg.norm(smplx_data["v_template"][strong] - knee, axis=1).max() < 0.12


def test_hand_pca_is_orthonormal_with_a_relaxed_mean(smplx_data: dict) -> None:
    for side in "lr":
        comps = smplx_data[f"hands_components{side}"]
        np.testing.assert_allclose(comps @ comps.T, np.eye(45), atol=1e-9)
        mean = smplx_data[f"hands_mean{side}"].reshape(15, 3)
        assert 0.05 < np.linalg.norm(mean, axis=1).max() < 0.3


@pytest.mark.parametrize("model_type", ["smplx", "smplh"])
def test_keypoint_vertex_ids_sit_at_their_anatomical_spots(model_type: str, smplx_data: dict, smplh_data: dict) -> None:
    d = smplx_data if model_type == "smplx" else smplh_data
    v = d["v_template"]
    ids = SMPLX_VERTEX_IDS[model_type]
    head = (v[:, 1] > 0.27) & (np.abs(v[:, 0]) < 0.1)
    assert v[ids["nose"], 2] == v[head, 2].max()
    for s, sign in (("l", 1), ("r", -1)):
        assert sign * v[ids[f"{s}eye"], 0] > 0.02 and 0.39 < v[ids[f"{s}eye"], 1] < 0.42
        assert sign * v[ids[f"{s}ear"], 0] > 0.085
        for finger in ("thumb", "index", "middle", "ring", "pinky"):
            assert sign * v[ids[f"{s}{finger}"], 0] > 0.78
        big, small, heel = [ids[f"{s.upper()}{k}"] for k in ("BigToe", "SmallToe", "Heel")]
        foot = (v[:, 1] < -1.05) & (sign * v[:, 0] > 0)
        assert v[big, 2] == v[foot, 2].max()  # the big toe is the most forward point of that foot
        assert v[small, 2] > 0.12 and sign * v[small, 0] > sign * v[big, 0] + 0.03  # lateral
        assert v[heel, 2] == v[foot & (v[:, 1] < -1.17), 2].min()
    tips = {f: v[ids[f"l{f}"]] for f in ("thumb", "index", "middle", "ring", "pinky")}
    assert tips["middle"][0] > tips["pinky"][0] and tips["thumb"][2] > tips["index"][2] > tips["pinky"][2]


def test_mapping_matches_smplx_rest_surface(synthetic_body_files, smplx_data: dict, smplh_data: dict) -> None:
    matrix = load_smpl_to_smplx(synthetic_body_files.smpl_to_smplx)
    assert matrix.shape == (10475, 6890) and matrix.dtype == np.float32
    assert np.all(np.diff(matrix.indptr) == 3)
    np.testing.assert_allclose(np.asarray(matrix.sum(axis=1)).ravel(), 1.0, atol=1e-5)
    assert matrix.data.min() >= 0
    body, _ = _eyeball_and_body(smplx_data)
    err = np.linalg.norm(matrix @ smplh_data["v_template"] - smplx_data["v_template"], axis=1)[body]
    assert np.percentile(err, 99) < 0.003 and err.max() < 0.008
