"""InteractVLM's canonical "Vitruvian" body: the mesh its four human views are rendered from.

Upstream (`preprocess_data/render_mesh_utils.py`) builds it with `smplx.build_layer` on SMPL-H neutral:
10 betas all zero, global orientation identity, no translation, every body joint at rest except the left
hip (body_pose[0]) +30 degrees and the right hip (body_pose[1]) -30 degrees about the joint z axis (legs
apart), arms in T-pose.

Hands: `build_layer` gives an `SMPLHLayer`. Its forward pass uses identity rotations for any hand pose
that is not passed, and, unlike `SMPLH.forward`, never adds `pose_mean` (the hands_mean PCA offsets), so
whatever `flat_hand_mean` says, upstream's canonical hands are flat and open. We pass nothing for the
hands and get the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ivlm_core.body.models import load_body_model

HIP_SPREAD_DEG = 30.0
NUM_BODY_JOINTS = 21  # SMPL-H body_pose joints (no pelvis, no hands)


def rotation_z(degrees: float) -> np.ndarray:
    """Rotation about +Z (column vectors): x turns towards y."""
    a = np.radians(degrees)
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def vitruvian_body_pose() -> np.ndarray:
    """SMPL-H body_pose as rotation matrices [21, 3, 3]: left hip +30 deg, right hip -30 deg about z."""
    pose = np.tile(np.eye(3), (NUM_BODY_JOINTS, 1, 1))
    pose[0] = rotation_z(+HIP_SPREAD_DEG)
    pose[1] = rotation_z(-HIP_SPREAD_DEG)
    return pose


@dataclass(frozen=True)
class CanonicalBody:
    """The Vitruvian SMPL-H mesh: vertices [6890, 3] (BODY frame, metres) and faces [13776, 3]."""

    vertices: np.ndarray
    faces: np.ndarray
    source: Path
    synthetic_version: str | None

    @property
    def is_synthetic(self) -> bool:
        return self.synthetic_version is not None


def canonical_body(folder: Path | None = None, *, path: Path | None = None) -> CanonicalBody:
    """Poses SMPL-H neutral (from `folder`/smplh or `path`) into InteractVLM's canonical body."""
    loaded = load_body_model("smplh", "neutral", folder, path=path, layer=True, num_betas=10)
    model = loaded.model
    with torch.no_grad():
        out = model(
            betas=torch.zeros(1, 10),
            global_orient=torch.eye(3).reshape(1, 1, 3, 3),
            body_pose=torch.as_tensor(vitruvian_body_pose(), dtype=torch.float32).unsqueeze(0),
            transl=torch.zeros(1, 3),
        )
    return CanonicalBody(
        vertices=out.vertices[0].numpy().astype(np.float32),
        faces=np.asarray(model.faces, dtype=np.int64),
        source=loaded.source,
        synthetic_version=loaded.synthetic_version,
    )
