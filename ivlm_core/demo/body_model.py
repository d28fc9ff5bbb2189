"""Synthetic SMPL-X and SMPL-H body models in the real file formats, and the SMPL -> SMPL-X mapping.

Demo data for tests, benchmarks and the server's demo mode, generated here (nothing licensed is used or
shipped). The files have the keys, shapes and layout of the real downloads, so they load through exactly
the code that loads a user's real files:

    <out_dir>/body_models/smplx/SMPLX_NEUTRAL.npz      10475 vertices, 20908 faces, 55 joints
    <out_dir>/body_models/smplh/SMPLH_NEUTRAL.npz      6890 vertices, 13776 faces, 52 joints
    <out_dir>/interactvlm/data/smpl_to_smplx.pkl       {"matrix": csr [10475, 6890]}

i.e. the layout of the user's models folder (see `ivlm_core.paths`), so a demo folder can stand in for it.
Each body file carries `ivlm_synthetic_demo` (the generator version) so demo results can be flagged.
"""

from __future__ import annotations

import os
import pickle
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from ivlm_core import paths
from ivlm_core.demo.blendshapes import EXPRESSION_FIELDS, SHAPE_FIELDS, blend_basis
from ivlm_core.demo.body_mesh import RestMesh, build_rest_meshes
from ivlm_core.demo.face import dynamic_contour, static_landmarks
from ivlm_core.demo.geometry import closest_points_on_mesh
from ivlm_core.demo.hands import hand_pca
from ivlm_core.demo.remesh import vertex_normals
from ivlm_core.demo.rigging import (
    bone_heat_weights,
    fit_joint_regressor,
    nearest_bone_joint,
    pose_correctives,
    regressor_candidates,
)
from ivlm_core.demo.skeleton import (
    SMPLH_JOINT_NAMES,
    SMPLH_PARENTS,
    SMPLX_JOINT_NAMES,
    SMPLX_PARENTS,
    bones,
    joint_positions,
)
from ivlm_core.demo.uv import body_uv
from ivlm_core.fileio import save_npz_atomic

GENERATOR_VERSION = "ivlm-synthetic-body 2"
MARKER_KEY = "ivlm_synthetic_demo"
SMPLX_SHAPE_SPACE, SMPLX_EXPRESSION_SPACE = 300, 100  # smplx wants >= 400 components for no warning
SMPLH_SHAPE_SPACE = 16  # as in the "Extended SMPL+H" files
_ROOT_PARENT = 4294967295  # kintree_table[0, 0] in real files: -1 stored as uint32


@dataclass(frozen=True)
class SyntheticBodyFiles:
    """Where the demo body files are; `root` can stand in for the user's models folder."""

    root: Path
    smplx: Path
    smplh: Path
    smpl_to_smplx: Path


def synthetic_body_files(root: Path) -> SyntheticBodyFiles:
    """The paths the generator writes under `root` (the models-folder layout of `ivlm_core.paths`)."""
    return SyntheticBodyFiles(
        root=root,
        smplx=paths.body_models_dir(root) / "smplx" / "SMPLX_NEUTRAL.npz",
        smplh=paths.body_models_dir(root) / "smplh" / "SMPLH_NEUTRAL.npz",
        smpl_to_smplx=paths.interactvlm_data_dir(root) / "smpl_to_smplx.pkl",
    )


def write_synthetic_body_models(out_dir: Path) -> SyntheticBodyFiles:
    """Generates both demo bodies and the mapping into `out_dir` (deterministic output)."""
    files = synthetic_body_files(Path(out_dir))
    smplh_mesh, smplx_mesh = build_rest_meshes()
    smplh = smplh_arrays(smplh_mesh)
    smplx = smplx_arrays(smplx_mesh)
    for path, arrays in ((files.smplh, smplh), (files.smplx, smplx)):
        path.parent.mkdir(parents=True, exist_ok=True)
        save_npz_atomic(path, arrays, allow_pickle=True)  # the release format's joint2num / part2num dicts
    matrix = smpl_to_smplx_matrix(smplx["v_template"], smplh["v_template"], smplh["f"])
    files.smpl_to_smplx.parent.mkdir(parents=True, exist_ok=True)
    with open(files.smpl_to_smplx, "wb") as fh:
        pickle.dump({"matrix": matrix}, fh, protocol=pickle.HIGHEST_PROTOCOL)
    return files


def ensure_synthetic_body_models(root: Path | None = None) -> SyntheticBodyFiles:
    """The demo bodies under `root` (default: <cache>/demo/models), generated on first use.

    Generation goes to a temporary folder that is renamed into place, so a crash or a concurrent
    process never leaves a half-written set; a set from another generator version is replaced.
    """
    root = Path(root) if root is not None else paths.cache_dir() / "demo" / "models"
    files = synthetic_body_files(root)
    stamp = root / "GENERATOR_VERSION"
    if _is_complete(files, stamp):
        return files
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=root.parent))
    try:
        write_synthetic_body_models(tmp)
        (tmp / "GENERATOR_VERSION").write_text(GENERATOR_VERSION + "\n")
        if root.exists():
            if _is_complete(files, stamp):  # another process finished first
                return files
            old = Path(tempfile.mkdtemp(prefix=f".{root.name}.old.", dir=root.parent))
            os.replace(root, old / "models")
            shutil.rmtree(old, ignore_errors=True)
        try:
            os.replace(tmp, root)
        except OSError:
            if not _is_complete(files, stamp):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return files


def _is_complete(files: SyntheticBodyFiles, stamp: Path) -> bool:
    return (
        stamp.is_file()
        and stamp.read_text().strip() == GENERATOR_VERSION
        and all(p.is_file() for p in (files.smplx, files.smplh, files.smpl_to_smplx))
    )


# ---- the arrays of each file -------------------------------------------------------------------------


def _rig(mesh: RestMesh, names: tuple[str, ...], parents: np.ndarray) -> dict[str, np.ndarray]:
    """Skinning weights, joint regressor, pose correctives and the kinematic tree for one mesh."""
    v, f = mesh.vertices, mesh.faces
    skeleton = bones(names)
    eye_joint = {side: names.index(f"{side}_eye_smplhf") for side in mesh.eyeballs}
    fixed = {eye_joint[side]: idx for side, idx in mesh.eyeballs.items()}
    weights = bone_heat_weights(v, f, skeleton, names, fixed)
    labels, _ = nearest_bone_joint(v, skeleton, names)
    for joint, idx in fixed.items():
        labels[idx] = joint
    candidates = regressor_candidates(labels, parents)
    for joint, idx in fixed.items():
        candidates[joint] = idx  # eyes: the eyeball alone
    joints = joint_positions(names)
    regressor = fit_joint_regressor(v, joints, candidates)
    normals = vertex_normals(v, f)
    kintree = np.stack([parents, np.arange(len(parents))]).astype(np.int64)
    kintree[0, 0] = _ROOT_PARENT
    return {
        "J_regressor": regressor,
        "weights": weights,
        "posedirs": pose_correctives(v, normals, weights, parents),
        "kintree_table": kintree,
        "J": joints,
    }


def _shape_basis(mesh: RestMesh, n_components: int, expression: bool) -> np.ndarray:
    normals = vertex_normals(mesh.vertices, mesh.faces)
    rigid = list(mesh.eyeballs.values())
    basis = np.zeros((len(mesh.vertices), 3, n_components), dtype=np.float32)
    shape = blend_basis(SHAPE_FIELDS, mesh.vertices, normals, rigid)
    basis[:, :, : shape.shape[2]] = shape
    if expression:
        expr = blend_basis(EXPRESSION_FIELDS, mesh.vertices, normals, rigid)
        basis[:, :, SMPLX_SHAPE_SPACE : SMPLX_SHAPE_SPACE + expr.shape[2]] = expr
    return basis


def _marker() -> np.ndarray:
    return np.array(GENERATOR_VERSION)


def smplh_arrays(mesh: RestMesh) -> dict[str, np.ndarray]:
    """Every key smplx.SMPLH reads, in the shapes of the real SMPLH_NEUTRAL file."""
    arrays: dict[str, np.ndarray] = {
        "v_template": mesh.vertices.astype(np.float64),
        "f": mesh.faces.astype(np.int32),
        "shapedirs": _shape_basis(mesh, SMPLH_SHAPE_SPACE, expression=False),
        **_rig(mesh, SMPLH_JOINT_NAMES, SMPLH_PARENTS),
        **hand_pca(),
        "bs_style": np.array("lbs"),
        "bs_type": np.array("lrotmin"),
        MARKER_KEY: _marker(),
    }
    return arrays


def smplx_arrays(mesh: RestMesh) -> dict[str, np.ndarray]:
    """Every key smplx.SMPLX reads (and the other keys of the real SMPLX_NEUTRAL.npz)."""
    n_body_faces = len(mesh.faces) - 320 * len(mesh.eyeballs)
    lmk_faces, lmk_bary = static_landmarks(mesh.vertices, mesh.faces, n_body_faces)
    dyn_faces, dyn_bary = dynamic_contour(mesh.vertices, mesh.faces, n_body_faces)
    vt, ft = body_uv(mesh.vertices, mesh.faces, [mesh.eyeballs["left"], mesh.eyeballs["right"]])
    rig = _rig(mesh, SMPLX_JOINT_NAMES, SMPLX_PARENTS)
    rig.pop("J")
    arrays: dict[str, np.ndarray] = {
        "v_template": mesh.vertices.astype(np.float64),
        "f": mesh.faces.astype(np.int32),
        "shapedirs": _shape_basis(mesh, SMPLX_SHAPE_SPACE + SMPLX_EXPRESSION_SPACE, expression=True),
        **rig,
        **hand_pca(),
        "lmk_faces_idx": lmk_faces.astype(np.int64),
        "lmk_bary_coords": lmk_bary.astype(np.float64),
        "dynamic_lmk_faces_idx": dyn_faces.astype(np.int64),
        "dynamic_lmk_bary_coords": dyn_bary.astype(np.float64),
        "vt": vt.astype(np.float64),
        "ft": ft.astype(np.int32),
        # real files hold these two as pickled dicts (0-d object arrays)
        "joint2num": np.array({name: i for i, name in enumerate(SMPLX_JOINT_NAMES)}, dtype=object),
        "part2num": np.array({name: i for i, name in enumerate(_PART_NAMES)}, dtype=object),
        MARKER_KEY: _marker(),
    }
    return arrays


_PART_NAMES = (
    "global",
    "leftThigh",
    "rightThigh",
    "spine",
    "leftCalf",
    "rightCalf",
    "spine1",
    "leftFoot",
    "rightFoot",
    "spine2",
    "leftToes",
    "rightToes",
    "neck",
    "leftShoulder",
    "rightShoulder",
    "head",
    "leftUpperArm",
    "rightUpperArm",
    "leftForeArm",
    "rightForeArm",
    "leftHand",
    "rightHand",
    "jaw",
    "leftEye",
    "rightEye",
    "leftHandFingers",
    "rightHandFingers",
)


def smpl_to_smplx_matrix(
    smplx_vertices: np.ndarray, smpl_vertices: np.ndarray, smpl_faces: np.ndarray
) -> sp.csr_matrix:
    """[10475, 6890]: each SMPL-X rest vertex as barycentric weights of the closest point on the SMPL(-H)
    rest surface (three entries per row, summing to one), so contact_smplx = matrix @ contact_smpl."""
    face, bary, _ = closest_points_on_mesh(smplx_vertices, smpl_vertices, smpl_faces)
    rows = np.repeat(np.arange(len(smplx_vertices)), 3)
    cols = smpl_faces[face].ravel()
    matrix = sp.csr_matrix(
        (bary.ravel().astype(np.float32), (rows, cols)), shape=(len(smplx_vertices), len(smpl_vertices))
    )
    return matrix
