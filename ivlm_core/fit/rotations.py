"""Rotations as optimisation variables: the continuous 6D form, and batches of starting rotations.

The 6D form (two columns of the matrix, Gram-Schmidt to rebuild the third; Zhou et al., CVPR 2019) has
no singularities, which is why InteractVLM's fitter and ours optimise it. Written here (ten lines)
rather than adding a geometry library for it.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.spatial.transform import Rotation


def rotation_6d_to_matrix(d6: torch.Tensor) -> torch.Tensor:
    """[..., 6] -> [..., 3, 3]; the 6 numbers are the matrix's first two columns, stacked."""
    a1, a2 = d6[..., 0:3], d6[..., 3:6]
    b1 = torch.nn.functional.normalize(a1, dim=-1)
    b2 = torch.nn.functional.normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1, dim=-1)
    b3 = torch.cross(b1, b2, dim=-1)
    return torch.stack([b1, b2, b3], dim=-1)


def matrix_to_rotation_6d(matrix: torch.Tensor) -> torch.Tensor:
    """[..., 3, 3] -> [..., 6], the inverse of `rotation_6d_to_matrix` for proper rotations."""
    return torch.cat([matrix[..., :, 0], matrix[..., :, 1]], dim=-1)


def rotation_angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    """Geodesic angle between two rotation matrices, in degrees."""
    cos = (np.trace(a.T @ b) - 1.0) / 2.0
    return float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))))


def cube_rotations() -> np.ndarray:
    """The 24 rotations of the cube group [24, 3, 3]: evenly spread starts for an unknown orientation.

    Any orientation is within 62.8 degrees of one of them, inside the basin of a local fit.
    """
    return Rotation.create_group("O").as_matrix()


def start_rotations(dense: bool) -> np.ndarray:
    """Starting rotations: the cube group [24], or with `dense` also the icosahedral group [24 + 59] (their shared identity once).

    Why both: the two groups interleave, so any orientation is within about 44 degrees of one of the 83 rather
    than 63 of the 24; an object whose contact patch fits the body in several tilted ways (a mug's wall against
    a palm) then has a start inside the right basin.
    """
    cube = cube_rotations()
    if not dense:
        return cube
    return np.concatenate([cube, Rotation.create_group("I").as_matrix()[1:]])  # identity is already in the cube


def random_rotations(count: int, max_angle_deg: float, rng: np.random.Generator) -> np.ndarray:
    """`count` rotations about uniformly random axes with angles uniform in [0, max_angle_deg]."""
    axes = rng.normal(size=(count, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    angles = np.radians(rng.uniform(0.0, max_angle_deg, count))
    return Rotation.from_rotvec(axes * angles[:, None]).as_matrix()
