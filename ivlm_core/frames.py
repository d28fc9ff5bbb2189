"""Coordinate frames, units and the conversions between them: the one place for these conventions.

Units are metres. Rigid transforms are 4x4 homogeneous matrices acting on column vectors
(`p_b = b_from_a @ p_a`), named `<to>_from_<from>` so a chain reads right to left.

Frames:

BODY           SMPL / SMPL-H / SMPL-X model space. +Y up, +Z the way the body faces, +X the body's left.
               Object meshes sent by clients are also Y-up in their own local frame.
P3D_VIEW       PyTorch3D camera view space: +X left, +Y up, +Z forward (into the scene).
               InteractVLM's canonical renders and pixel maps were made in it.
CV_CAMERA      OpenCV camera: +X right, +Y down, +Z forward. Intrinsics K use it, with pixel
               centres at integer coordinates: pixel (row i, col j) is centred at (u=j, v=i).
GL_CAMERA      OpenGL / Blender camera: +X right, +Y up, the camera looks down -Z.
BLENDER_WORLD  Blender's world: +Z up. A Y-up frame enters it by +90 degrees about X (as glTF does).

Every array that crosses a module boundary says in its name or docstring which frame it is in.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch

ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)

# PyTorch3D view -> OpenCV camera: flip X (left -> right) and Y (up -> down); Z stays forward.
CV_CAMERA_FROM_P3D_VIEW = np.diag([-1.0, -1.0, 1.0, 1.0])
P3D_VIEW_FROM_CV_CAMERA = CV_CAMERA_FROM_P3D_VIEW  # its own inverse

# OpenCV camera -> OpenGL/Blender camera: flip Y (down -> up) and Z (forward -> backward).
GL_CAMERA_FROM_CV_CAMERA = np.diag([1.0, -1.0, -1.0, 1.0])
CV_CAMERA_FROM_GL_CAMERA = GL_CAMERA_FROM_CV_CAMERA  # its own inverse

# Y-up (BODY) -> Z-up (BLENDER_WORLD): (x, y, z) -> (x, -z, y), a +90 degree turn about X.
BLENDER_WORLD_FROM_BODY = np.array(
    [[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, -1.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]]
)
BODY_FROM_BLENDER_WORLD = BLENDER_WORLD_FROM_BODY.T


def make_transform(rotation: ArrayT, translation: ArrayT) -> ArrayT:
    """Builds 4x4 transforms (column vectors) from rotations [..., 3, 3] and translations [..., 3]."""
    if isinstance(rotation, torch.Tensor):
        out = torch.zeros(*rotation.shape[:-2], 4, 4, dtype=rotation.dtype, device=rotation.device)
    else:
        out = np.zeros((*rotation.shape[:-2], 4, 4), dtype=rotation.dtype)
    out[..., :3, :3] = rotation
    out[..., :3, 3] = translation
    out[..., 3, 3] = 1.0
    return out


def transform_points(transform: ArrayT, points: ArrayT) -> ArrayT:
    """Applies 4x4 transforms [..., 4, 4] to points [..., N, 3] (column-vector convention)."""
    return points @ transform[..., :3, :3].swapaxes(-1, -2) + transform[..., None, :3, 3]


def transform_directions(transform: ArrayT, directions: ArrayT) -> ArrayT:
    """Applies only the rotation part of 4x4 transforms to direction vectors [..., N, 3]."""
    return directions @ transform[..., :3, :3].swapaxes(-1, -2)


def invert_rigid(transform: ArrayT) -> ArrayT:
    """Inverse of rigid 4x4 transforms without a general matrix inverse."""
    rot_t = transform[..., :3, :3].swapaxes(-1, -2)
    return make_transform(rot_t, -(rot_t @ transform[..., :3, 3:4])[..., 0])


def as_torch(matrix: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    """A constant convention matrix on the dtype and device of `like`."""
    return torch.as_tensor(matrix, dtype=like.dtype, device=like.device)
