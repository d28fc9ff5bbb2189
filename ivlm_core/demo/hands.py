"""Hand pose PCA of the synthetic bodies, in the layout of the MANO-derived keys of SMPL-H/SMPL-X files.

`hands_components*` are 45 x 45 orthonormal rows (smplx uses the first `num_pca_comps`), `hands_mean*` is
the pose added when `flat_hand_mean=False` (a relaxed, slightly curled hand), `hands_coeffs*` example
coefficients. The first components mean something (curl all fingers, spread, thumb across the palm,
curl the index alone); the rest complete an orthonormal basis from a seeded random draw. Right-hand
values mirror the left ones: a mirror in x keeps the x part of an axis-angle vector and flips y and z.
"""

from __future__ import annotations

import numpy as np

from ivlm_core.demo.skeleton import FINGERS, designed_points

_MIRROR_AXIS = np.array([1.0, -1.0, -1.0])
_PALM_NORMAL = np.array([0.0, -1.0, 0.0])  # palms face down in the T-pose


def _curl_axis(finger: str) -> np.ndarray:
    """Axis turning a left-hand finger's tip toward the palm: direction x palm normal."""
    pts = designed_points()
    d = pts[f"left_{finger}_tip"] - pts[f"left_{finger}1"]
    axis = np.cross(d / np.linalg.norm(d), _PALM_NORMAL)
    return axis / np.linalg.norm(axis)


def _pose(per_joint: dict[tuple[str, int], np.ndarray]) -> np.ndarray:
    """A 45-vector (15 joints x axis-angle) from {(finger, 1..3): rotation vector}."""
    out = np.zeros((15, 3))
    for (finger, k), rot in per_joint.items():
        out[3 * FINGERS.index(finger) + k - 1] = rot
    return out.ravel()


def _meaningful_left() -> list[np.ndarray]:
    curl = _pose({(f, k): _curl_axis(f) for f in FINGERS for k in (1, 2, 3)})
    spread_amount = {"index": 1.0, "middle": 0.3, "ring": -0.5, "pinky": -1.0, "thumb": 0.6}
    spread = _pose({(f, 1): np.array([0.0, -s, 0.0]) for f, s in spread_amount.items()})
    thumb = _pose({("thumb", k): _curl_axis("thumb") * w for k, w in ((1, 1.0), (2, 0.7), (3, 0.5))})
    index = _pose({("index", k): _curl_axis("index") for k in (1, 2, 3)})
    return [curl, spread, thumb, index]


def mirror_to_right(left: np.ndarray) -> np.ndarray:
    """Right-hand pose values [..., 45] from left-hand ones."""
    return (left.reshape(*left.shape[:-1], 15, 3) * _MIRROR_AXIS).reshape(left.shape)


def hand_pca(seed: int = 7, n_examples: int = 64) -> dict[str, np.ndarray]:
    """hands_components{l,r} [45, 45], hands_mean{l,r} [45], hands_coeffs{l,r} [n_examples, 45]."""
    rng = np.random.default_rng(seed)
    rows = _meaningful_left() + list(rng.standard_normal((45, 45)))
    basis: list[np.ndarray] = []
    for r in rows:  # Gram-Schmidt, dropping rows that add nothing new
        r = r - sum((r @ b) * b for b in basis) if basis else r
        if np.linalg.norm(r) > 1e-6:
            basis.append(r / np.linalg.norm(r))
        if len(basis) == 45:
            break
    components = np.stack(basis)
    mean = 0.12 * _meaningful_left()[0] + 0.05 * _meaningful_left()[2]  # a relaxed, slightly curled hand
    coeffs = rng.standard_normal((n_examples, 45)) * np.linspace(1.0, 0.05, 45)
    return {
        "hands_componentsl": components,
        "hands_componentsr": mirror_to_right(components),
        "hands_meanl": mean,
        "hands_meanr": mirror_to_right(mean),
        "hands_coeffsl": coeffs,
        "hands_coeffsr": coeffs.copy(),
    }
