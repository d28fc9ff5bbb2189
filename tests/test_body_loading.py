"""Loading body models: through smplx from sanitised copies, posing, the canonical body, and refusing
unsafe, broken or missing files with useful errors."""

from __future__ import annotations

import os
import pickle
import shutil
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from ivlm_core.body import (
    canonical_body,
    find_model_file,
    load_body_model,
    load_smpl_to_smplx,
    read_model_file,
    sanitise_model_file,
    vitruvian_body_pose,
)
from ivlm_core.body import mapping as mapping_module
from ivlm_core.errors import ModelFileError, ModelFilesMissingError

# ---- loading and posing the demo bodies -------------------------------------------------------------


@pytest.fixture(scope="module")
def smplx_model(synthetic_body_files):
    return load_body_model("smplx", folder=synthetic_body_files.root / "body_models")


def test_smplx_loads_through_smplx_and_is_flagged_as_demo(smplx_model) -> None:
    out = smplx_model.model()
    assert out.vertices.shape == (1, 10475, 3) and out.joints.shape == (1, 127, 3)
    assert torch.isfinite(out.vertices).all() and torch.isfinite(out.joints).all()
    assert smplx_model.is_synthetic and smplx_model.synthetic_version
    assert smplx_model.source.name == "SMPLX_NEUTRAL.npz"


def test_smplx_face_contour_gives_144_joints(synthetic_body_files) -> None:
    loaded = load_body_model("smplx", folder=synthetic_body_files.root / "body_models", use_face_contour=True)
    yaw = torch.zeros(1, 63)
    yaw[0, 3 * 11 + 1] = 0.4  # turn the neck (joint 12): the contour look-up follows it
    out = loaded.model(body_pose=yaw)
    assert out.joints.shape == (1, 144, 3) and torch.isfinite(out.joints).all()


def test_smplh_loads_with_73_joints(synthetic_body_files) -> None:
    loaded = load_body_model("smplh", folder=synthetic_body_files.root / "body_models")
    out = loaded.model()
    assert out.vertices.shape == (1, 6890, 3) and out.joints.shape == (1, 73, 3)
    assert loaded.is_synthetic


def test_sanitised_copy_is_numeric_only_and_reused(synthetic_body_files) -> None:
    first = sanitise_model_file(synthetic_body_files.smplx, "smplx")
    again = sanitise_model_file(synthetic_body_files.smplx, "smplx")
    assert first.path == again.path and first.path != synthetic_body_files.smplx
    with np.load(first.path, allow_pickle=False) as npz:  # no pickled objects inside
        for key in npz.files:
            assert npz[key].dtype != object


def _body_pose(**joints: tuple[float, float, float]) -> torch.Tensor:
    """SMPL-X body_pose (21 joints, axis-angle) from {joint index (1-based, as in the skeleton): vector}."""
    pose = torch.zeros(1, 63)
    for name, rot in joints.items():
        j = int(name[1:])
        pose[0, 3 * (j - 1) : 3 * j] = torch.tensor(rot)
    return pose


def test_bending_the_left_knee_moves_only_the_left_lower_leg(smplx_model) -> None:
    model = smplx_model.model
    rest = model().joints[0].detach()
    bent = model(body_pose=_body_pose(j4=(1.2, 0.0, 0.0))).joints[0].detach()  # left knee, about +x
    left_ankle, right_ankle, right_knee = 7, 8, 5
    assert bent[left_ankle, 2] < rest[left_ankle, 2] - 0.15  # foot swings back (-Z)
    assert bent[left_ankle, 1] > rest[left_ankle, 1] + 0.05  # and up
    assert torch.allclose(bent[[right_ankle, right_knee]], rest[[right_ankle, right_knee]], atol=1e-6)


def test_raising_the_right_arm_moves_the_right_hand_up(smplx_model) -> None:
    model = smplx_model.model
    rest = model().joints[0].detach()
    raised = model(body_pose=_body_pose(j17=(0.0, 0.0, -1.2))).joints[0].detach()  # right shoulder
    assert raised[21, 1] > rest[21, 1] + 0.3  # right wrist goes up
    assert torch.allclose(raised[20], rest[20], atol=1e-6)  # left wrist stays


def test_rest_pose_height_and_span(smplx_model) -> None:
    v = smplx_model.model(left_hand_pose=None).vertices[0].detach().numpy()
    assert np.ptp(v[:, 1]) == pytest.approx(1.70, abs=0.02)
    assert 1.65 < np.ptp(v[:, 0]) < 1.82


def test_stature_beta_makes_a_taller_body(smplx_model) -> None:
    model = smplx_model.model
    rest = model().vertices[0].detach().numpy()
    tall = model(betas=torch.tensor([[2.0] + [0.0] * 9])).vertices[0].detach().numpy()
    assert np.ptp(tall[:, 1]) > np.ptp(rest[:, 1]) + 0.06


# ---- canonical body ---------------------------------------------------------------------------------


def test_vitruvian_pose_matrices() -> None:
    pose = vitruvian_body_pose()
    assert pose.shape == (21, 3, 3)
    c, s = np.cos(np.radians(30)), np.sin(np.radians(30))
    np.testing.assert_allclose(pose[0], [[c, -s, 0], [s, c, 0], [0, 0, 1]], atol=1e-12)
    np.testing.assert_allclose(pose[1], [[c, s, 0], [-s, c, 0], [0, 0, 1]], atol=1e-12)
    np.testing.assert_allclose(pose[2:], np.tile(np.eye(3), (19, 1, 1)))


def test_canonical_body_spreads_the_feet(synthetic_body_files) -> None:
    body = canonical_body(synthetic_body_files.root / "body_models")
    assert body.vertices.shape == (6890, 3) and body.faces.shape == (13776, 3)
    assert body.vertices.dtype == np.float32 and body.is_synthetic
    rest = read_model_file(synthetic_body_files.smplh)["v_template"]
    feet = rest[:, 1] < -1.0
    left, right = feet & (rest[:, 0] > 0), feet & (rest[:, 0] < 0)
    assert body.vertices[left, 0].mean() > rest[left, 0].mean() + 0.2
    assert body.vertices[right, 0].mean() < rest[right, 0].mean() - 0.2
    upper = rest[:, 1] > -0.2  # arms stay in T-pose, upper body unchanged
    np.testing.assert_allclose(body.vertices[upper], rest[upper], atol=1e-5)


# ---- missing files ----------------------------------------------------------------------------------


def test_missing_smplx_file_names_file_folder_and_site(tmp_path: Path) -> None:
    with pytest.raises(ModelFilesMissingError) as info:
        find_model_file("smplx", "neutral", tmp_path)
    err = info.value
    assert "SMPLX_NEUTRAL.npz" in err.message and str(tmp_path / "smplx") in err.message
    assert "https://smpl-x.is.tue.mpg.de" in err.hint and str(tmp_path / "smplx") in err.hint
    assert err.to_dict()["code"] == "MODEL_FILES_MISSING"


def test_missing_smplh_file_points_to_mano_site(tmp_path: Path) -> None:
    with pytest.raises(ModelFilesMissingError) as info:
        load_body_model("smplh", "neutral", tmp_path)
    assert "SMPLH_NEUTRAL.npz" in info.value.message
    assert "https://mano.is.tue.mpg.de" in info.value.hint and "Extended SMPL+H" in info.value.hint


def test_pkl_is_found_when_there_is_no_npz(tmp_path: Path) -> None:
    (tmp_path / "smplx").mkdir()
    (tmp_path / "smplx" / "SMPLX_FEMALE.pkl").write_bytes(b"")
    assert find_model_file("smplx", "female", tmp_path).name == "SMPLX_FEMALE.pkl"


def test_missing_mapping_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(ModelFilesMissingError) as info:
        load_smpl_to_smplx(tmp_path / "smpl_to_smplx.pkl")
    assert "smpl_to_smplx.pkl" in info.value.message and str(tmp_path) in info.value.message


# ---- unsafe and broken files ------------------------------------------------------------------------


class _RunsCommand:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused_and_runs_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "smplx" / "SMPLX_NEUTRAL.pkl"
    path.parent.mkdir()
    path.write_bytes(pickle.dumps({"v_template": _RunsCommand(marker)}))
    with pytest.raises(ModelFileError) as info:
        load_body_model("smplx", folder=tmp_path)
    assert "Refused" in info.value.message and "system" in info.value.message and str(path) in info.value.message
    assert not marker.exists()


def test_malicious_object_array_inside_npz_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "SMPLX_NEUTRAL.npz"
    np.savez(path, v_template=np.zeros((10475, 3)), joint2num=np.array([_RunsCommand(marker)], dtype=object))
    with pytest.raises(ModelFileError, match="Refused"):
        read_model_file(path)
    assert not marker.exists()


def test_eval_in_a_mapping_file_is_refused(tmp_path: Path) -> None:
    class CallsEval:
        def __reduce__(self):
            return (eval, ("__import__('os').getcwd()",))

    path = tmp_path / "smpl_to_smplx.pkl"
    path.write_bytes(pickle.dumps({"matrix": CallsEval()}))
    with pytest.raises(ModelFileError, match="eval"):
        load_smpl_to_smplx(path)


def _fake_module(monkeypatch: pytest.MonkeyPatch, name: str, **attrs: object) -> None:
    """Installs a stand-in module (for pickling only) under `name`, with its parent packages."""
    parts = name.split(".")
    for i in range(1, len(parts) + 1):
        mod_name = ".".join(parts[:i])
        if mod_name not in sys.modules:
            monkeypatch.setitem(sys.modules, mod_name, types.ModuleType(mod_name))
    for key, value in attrs.items():
        value.__module__, value.__qualname__ = name, key
        setattr(sys.modules[name], key, value)


class _Ch:  # pickles like chumpy's Ch: its state is a dict with the array under "x" (plus bookkeeping)
    def __init__(self, x: np.ndarray) -> None:
        self.x = x
        self._dirty_vars = {"x"}
        self._itr = None
        self._make_dense = False
        self._make_sparse = False
        self._depends_on_deps = {}


def _chumpy_pickle(data: dict, protocol: int, monkeypatch: pytest.MonkeyPatch) -> bytes:
    """Pickles `data` with chumpy.ch.Ch present just while pickling (chumpy is not installed)."""
    with monkeypatch.context() as m:
        _fake_module(m, "chumpy.ch", Ch=_Ch)
        blob = pickle.dumps(data, protocol=protocol)
    assert "chumpy.ch" not in sys.modules
    return blob


def test_python2_style_chumpy_pickle_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Protocol 1 goes through copyreg._reconstructor, as the original Python 2 files do."""
    x = np.arange(12.0).reshape(4, 3)
    reg = sp.csc_matrix(np.eye(3, 4))
    path = tmp_path / "model.pkl"
    path.write_bytes(_chumpy_pickle({"v_template": _Ch(x), "J_regressor": reg}, 1, monkeypatch))
    raw = read_model_file(path)
    np.testing.assert_array_equal(raw["v_template"], x)
    assert sp.issparse(raw["J_regressor"]) and (raw["J_regressor"] != reg).nnz == 0


def test_chumpy_style_smplh_pkl_loads_to_the_right_arrays(
    tmp_path: Path, synthetic_body_files, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An SMPL-H .pkl laid out like the original chumpy-era files: Ch arrays and a csc J_regressor."""
    smplh = read_model_file(synthetic_body_files.smplh)
    data = {k: v for k, v in smplh.items() if k != "ivlm_synthetic_demo"}
    for key in ("v_template", "shapedirs", "posedirs", "weights"):
        data[key] = _Ch(smplh[key])
    data["J_regressor"] = sp.csc_matrix(smplh["J_regressor"])
    data["bs_style"] = "lbs"
    path = tmp_path / "smplh" / "SMPLH_NEUTRAL.pkl"
    path.parent.mkdir()
    path.write_bytes(_chumpy_pickle(data, 2, monkeypatch))
    raw = read_model_file(path)
    for key in ("v_template", "shapedirs", "posedirs", "weights"):
        np.testing.assert_array_equal(raw[key], smplh[key])
    assert sp.issparse(raw["J_regressor"])
    np.testing.assert_array_equal(raw["J_regressor"].toarray(), smplh["J_regressor"])
    from_pkl = load_body_model("smplh", folder=tmp_path)
    from_npz = load_body_model("smplh", path=synthetic_body_files.smplh)
    assert not from_pkl.is_synthetic and from_npz.is_synthetic
    torch.testing.assert_close(from_pkl.model().vertices, from_npz.model().vertices)


def test_truncated_npz_names_the_file(tmp_path: Path, synthetic_body_files) -> None:
    path = tmp_path / "SMPLX_NEUTRAL.npz"
    data = synthetic_body_files.smplx.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError) as info:
        load_body_model("smplx", path=path)
    assert str(path) in info.value.message and info.value.hint


def test_truncated_pkl_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "SMPLH_NEUTRAL.pkl"
    path.write_bytes(pickle.dumps({"v_template": np.zeros((6890, 3))})[:100])
    with pytest.raises(ModelFileError, match="not a readable model file") as info:
        read_model_file(path)
    assert str(path) in info.value.message


def _copy_without(src: Path, dst: Path, drop: str = "", replace: dict | None = None) -> Path:
    arrays = dict(read_model_file(src))
    arrays.pop(drop, None)
    arrays.update(replace or {})
    np.savez(dst, **arrays)
    return dst


def test_missing_key_is_reported(tmp_path: Path, synthetic_body_files) -> None:
    path = _copy_without(synthetic_body_files.smplh, tmp_path / "SMPLH_NEUTRAL.npz", drop="weights")
    with pytest.raises(ModelFileError, match="'weights'") as info:
        load_body_model("smplh", path=path)
    assert str(path) in info.value.message


def test_wrong_shape_is_reported(tmp_path: Path, synthetic_body_files) -> None:
    path = _copy_without(
        synthetic_body_files.smplh, tmp_path / "SMPLH_NEUTRAL.npz", replace={"v_template": np.zeros((6889, 3))}
    )
    with pytest.raises(ModelFileError, match=r"'v_template' has shape \(6889, 3\), expected \(6890, 3\)"):
        load_body_model("smplh", path=path)


def test_smplh_without_hand_pca_still_loads(tmp_path: Path, synthetic_body_files) -> None:
    arrays = dict(read_model_file(synthetic_body_files.smplh))
    for key in ("hands_componentsl", "hands_componentsr", "hands_meanl", "hands_meanr"):
        arrays.pop(key)
    (tmp_path / "smplh").mkdir()
    np.savez(tmp_path / "smplh" / "SMPLH_NEUTRAL.npz", **arrays)
    out = load_body_model("smplh", folder=tmp_path).model()
    assert out.vertices.shape == (1, 6890, 3)


# ---- the SMPL -> SMPL-X mapping file ----------------------------------------------------------------


def test_mapping_accepts_a_dense_matrix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mapping_module, "SMPLX_VERTICES", 5)
    monkeypatch.setattr(mapping_module, "SMPL_VERTICES", 4)
    dense = np.random.default_rng(0).random((5, 4))
    path = tmp_path / "smpl_to_smplx.pkl"
    path.write_bytes(pickle.dumps({"matrix": dense}))
    matrix = load_smpl_to_smplx(path)
    assert sp.isspmatrix_csr(matrix) and matrix.dtype == np.float32
    np.testing.assert_allclose(matrix.toarray(), dense, rtol=1e-6)


def test_mapping_with_wrong_shape_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "smpl_to_smplx.pkl"
    path.write_bytes(pickle.dumps({"matrix": sp.csr_matrix((10, 6890), dtype=np.float32)}))
    with pytest.raises(ModelFileError, match=r"shape \(10, 6890\), expected \(10475, 6890\)"):
        load_smpl_to_smplx(path)


def test_joblib_mapping_is_refused_with_conversion_hint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class NumpyArrayWrapper:
        def __init__(self) -> None:
            self.shape, self.dtype = (10475, 6890), np.dtype("float32")

    with monkeypatch.context() as m:
        _fake_module(m, "joblib.numpy_pickle", NumpyArrayWrapper=NumpyArrayWrapper)
        blob = pickle.dumps({"matrix": NumpyArrayWrapper()})
    path = tmp_path / "smpl_to_smplx.pkl"
    path.write_bytes(blob)
    with pytest.raises(ModelFileError, match="joblib") as info:
        load_smpl_to_smplx(path)
    assert "joblib.load" in info.value.hint


def test_demo_folder_can_stand_in_for_the_models_folder(tmp_path: Path, synthetic_body_files) -> None:
    root = tmp_path / "models"
    shutil.copytree(synthetic_body_files.root, root)
    assert find_model_file("smplx", folder=root / "body_models") == root / "body_models/smplx/SMPLX_NEUTRAL.npz"
    assert load_smpl_to_smplx(root / "interactvlm" / "data" / "smpl_to_smplx.pkl").shape == (10475, 6890)
