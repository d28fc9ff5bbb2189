"""Licence-free pose priors for the body fit: joint limits and a weak pull towards rest.

SMPL-X rotates every joint in the rest pose's frame (Y up, Z front, X the body's left), so for the hinge-like
joints an axis-angle component is close to an anatomical angle: knee flexion is +x, elbow flexion -y (left)
and +y (right), hip flexion -x. The limits are boxes on the three components, generous everywhere (they forbid
what no body does: a knee or elbow bent backwards, a thigh swung far behind the hip, a spine folded sideways)
rather than describing a typical pose. They resolve the depth flips a 2D fit cannot see: a thigh pointing
towards or away from the camera projects alike, but only one of the two keeps the knee and hip in range.
The right side mirrors the left (a mirror in x keeps an axis-angle's x and negates y and z).

With VPoser (`ivlm_core.body.vposer`), the body pose is decoded from its 32-D latent and the prior is the
latent's squared norm; the limits stay on as a guard.
"""

from __future__ import annotations

import torch

# Left-side and central joints: body_pose slot -> ((x lo, x hi), (y lo, y hi), (z lo, z hi)) in radians.
_LIMITS: dict[int, tuple[tuple[float, float], tuple[float, float], tuple[float, float]]] = {
    0: ((-2.6, 0.35), (-0.9, 0.9), (-0.5, 1.4)),  # left hip: flexion -x (extension ~20 deg), abduction +z
    2: ((-0.25, 1.0), (-0.7, 0.7), (-0.6, 0.6)),  # spine1: bending forward +x, backward little
    3: ((-0.1, 2.8), (-0.3, 0.3), (-0.25, 0.25)),  # left knee: flexion +x only
    5: ((-0.2, 0.7), (-0.6, 0.6), (-0.5, 0.5)),  # spine2
    6: ((-0.8, 1.2), (-0.6, 0.6), (-0.5, 0.5)),  # left ankle
    8: ((-0.2, 0.7), (-0.6, 0.6), (-0.5, 0.5)),  # spine3
    9: ((-0.7, 0.7), (-0.35, 0.35), (-0.35, 0.35)),  # left foot (toes)
    11: ((-0.9, 0.9), (-1.1, 1.1), (-0.7, 0.7)),  # neck
    12: ((-0.5, 0.5), (-0.6, 0.6), (-0.5, 0.7)),  # left collar
    14: ((-0.7, 0.7), (-0.9, 0.9), (-0.6, 0.6)),  # head
    15: ((-1.9, 1.9), (-1.9, 0.9), (-1.9, 1.9)),  # left shoulder: forward -y, backward ~50 deg
    17: ((-1.8, 1.8), (-2.8, 0.15), (-0.8, 0.8)),  # left elbow: flexion -y
    19: ((-1.7, 1.7), (-1.0, 1.0), (-1.4, 1.4)),  # left wrist
}
_MIRROR = {1: 0, 4: 3, 7: 6, 10: 9, 13: 12, 16: 15, 18: 17, 20: 19}  # right slot -> left slot


def body_limits() -> torch.Tensor:
    """[21, 3, 2] (low, high) per body_pose joint and axis-angle component."""
    out = torch.zeros(21, 3, 2)
    for slot, ranges in _LIMITS.items():
        out[slot] = torch.tensor(ranges)
    for right, left in _MIRROR.items():
        (xl, xh), (yl, yh), (zl, zh) = _LIMITS[left]
        out[right] = torch.tensor([(xl, xh), (-yh, -yl), (-zh, -zl)])
    return out


def limit_excess(values: torch.Tensor, limits: torch.Tensor) -> torch.Tensor:
    """How far each value lies outside its box (0 inside): values [B, J, 3], limits [J, 3, 2] -> [B, J * 3]."""
    below = torch.relu(limits[..., 0] - values)
    above = torch.relu(values - limits[..., 1])
    return (below + above).flatten(1)
