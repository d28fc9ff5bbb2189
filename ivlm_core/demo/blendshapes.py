"""Shape and expression blend shapes of the synthetic body, as smooth displacement fields.

Each component is a function of the rest position (and normal) giving a displacement in metres per unit
coefficient, so both demo bodies, which sample the same surface, get the same body changes. The first
shape components mimic what SMPL's do (stature, weight, shoulder width, leg length...); expression
components move only the face (jaw, mouth corners, brows...). Rigid parts (eyeballs) take the field at
their centre, so they move without deforming.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ivlm_core.demo.skeleton import SOLE_Y, designed_points

Field = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (positions [N, 3], normals [N, 3]) -> [N, 3]


def _smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _gauss(p: np.ndarray, centre: tuple[float, float, float], radius: float) -> np.ndarray:
    return np.exp(-(((p - np.asarray(centre)) ** 2).sum(axis=1)) / radius**2)


def _mirror_gauss(p: np.ndarray, centre: tuple[float, float, float], radius: float) -> np.ndarray:
    """A bump at `centre` and at its mirror image (both sides of the face or body)."""
    c = np.asarray(centre)
    return _gauss(p, tuple(c), radius) + _gauss(p, tuple(c * [-1, 1, 1]), radius)


def _head_neck(p: np.ndarray) -> np.ndarray:
    return _smoothstep(0.19, 0.24, p[:, 1]) * (1.0 - _smoothstep(0.11, 0.16, np.abs(p[:, 0])))


def _head(p: np.ndarray) -> np.ndarray:
    return _smoothstep(0.26, 0.30, p[:, 1]) * (1.0 - _smoothstep(0.11, 0.16, np.abs(p[:, 0])))


def _hands(p: np.ndarray) -> np.ndarray:
    return _smoothstep(0.62, 0.68, np.abs(p[:, 0]))


def _feet(p: np.ndarray) -> np.ndarray:
    return _smoothstep(-1.06, -1.12, p[:, 1])


def _vec(x: np.ndarray | float = 0.0, y: np.ndarray | float = 0.0, z: np.ndarray | float = 0.0) -> np.ndarray:
    x, y, z = np.broadcast_arrays(np.asarray(x, float), np.asarray(y, float), np.asarray(z, float))
    return np.stack([x, y, z], axis=1)


def _about(p: np.ndarray, name: str) -> np.ndarray:
    return p - designed_points()[name]


def _limbs_and_torso(p: np.ndarray) -> np.ndarray:
    """Where body weight shows: torso fully, limbs partly, not head, hands or feet."""
    torso = 1.0 - 0.5 * _smoothstep(0.17, 0.30, np.abs(p[:, 0])) - 0.4 * _smoothstep(-0.50, -0.70, p[:, 1])
    return torso * (1.0 - _head_neck(p)) * (1.0 - _hands(p)) * (1.0 - _feet(p))


def _side(x: np.ndarray, scale: float) -> np.ndarray:
    return np.tanh(x / scale)


SHAPE_FIELDS: list[tuple[str, Field]] = [
    ("stature", lambda p, n: (0.04 / 1.70) * _vec(p[:, 0], p[:, 1] - SOLE_Y, 0.5 * p[:, 2])),
    ("weight", lambda p, n: 0.022 * _limbs_and_torso(p)[:, None] * n),
    (
        "shoulder_width",
        lambda p, n: _vec(0.03 * _side(p[:, 0], 0.08) * _smoothstep(0.0, 0.13, p[:, 1]) * (1.0 - _head_neck(p))),
    ),
    (
        "leg_length",
        lambda p, n: _vec(y=-0.05 * np.clip((-0.45 - p[:, 1]) / 0.75, 0, 1) * _smoothstep(-0.38, -0.5, p[:, 1])),
    ),
    ("arm_length", lambda p, n: _vec(0.045 * np.sign(p[:, 0]) * np.clip((np.abs(p[:, 0]) - 0.17) / 0.70, 0, 1))),
    ("hip_width", lambda p, n: _vec(0.022 * _side(p[:, 0], 0.06) * _smoothstep(-0.15, -0.35, p[:, 1]))),
    (
        "belly",
        lambda p, n: _vec(z=0.035 * _gauss(p * [1, 1, 0], (0.0, -0.15, 0.0), 0.12) * _smoothstep(-0.02, 0.05, p[:, 2])),
    ),
    (
        "chest",
        lambda p, n: _vec(
            z=0.022 * _mirror_gauss(p * [1, 1, 0], (0.07, 0.08, 0.0), 0.07) * _smoothstep(0.0, 0.05, p[:, 2])
        ),
    ),
    ("head_size", lambda p, n: 0.10 * _head(p)[:, None] * (p - np.array([0.0, 0.39, 0.01]))),
    ("torso_length", lambda p, n: _vec(y=0.03 * _smoothstep(-0.35, 0.10, p[:, 1]))),
    (
        "neck_length",
        lambda p, n: _vec(
            y=0.015 * _smoothstep(0.17, 0.30, p[:, 1]) * (1.0 - _smoothstep(0.11, 0.16, np.abs(p[:, 0])))
        ),
    ),
    ("foot_size", lambda p, n: 0.08 * _feet(p)[:, None] * (p - _ankles(p))),
    ("hand_size", lambda p, n: 0.08 * _hands(p)[:, None] * (p - _wrists(p))),
    (
        "thigh_girth",
        lambda p, n: 0.012 * (_smoothstep(-0.40, -0.50, p[:, 1]) * _smoothstep(-0.95, -0.75, p[:, 1]))[:, None] * n,
    ),
    ("arm_girth", lambda p, n: 0.010 * (_smoothstep(0.18, 0.25, np.abs(p[:, 0])) * (1.0 - _hands(p)))[:, None] * n),
    ("head_depth", lambda p, n: _vec(z=0.05 * _head(p) * (p[:, 2] - 0.01))),
]


def _ankles(p: np.ndarray) -> np.ndarray:
    pts = designed_points()
    return np.where(p[:, :1] > 0, pts["left_ankle"], pts["right_ankle"])


def _wrists(p: np.ndarray) -> np.ndarray:
    pts = designed_points()
    return np.where(p[:, :1] > 0, pts["left_wrist"], pts["right_wrist"])


def _face(p: np.ndarray) -> np.ndarray:
    return _head(p) * _smoothstep(0.0, 0.05, p[:, 2])


EXPRESSION_FIELDS: list[tuple[str, Field]] = [
    ("jaw_drop", lambda p, n: _vec(y=-0.012 * _face(p) * _smoothstep(0.336, 0.305, p[:, 1]))),
    (
        "smile",
        lambda p, n: (
            0.006
            * _face(p)[:, None]
            * _mirror_gauss(p, (0.025, 0.333, 0.085), 0.012)[:, None]
            * _vec(0.5 * np.sign(p[:, 0]), 1.0)
        ),
    ),
    ("brow_raise", lambda p, n: _vec(y=0.006 * _face(p) * _mirror_gauss(p, (0.032, 0.421, 0.09), 0.02))),
    (
        "frown",
        lambda p, n: (
            0.004
            * (_face(p) * _mirror_gauss(p, (0.015, 0.418, 0.093), 0.012))[:, None]
            * _vec(-0.5 * np.sign(p[:, 0]), -1.0)
        ),
    ),
    ("cheek_puff", lambda p, n: 0.006 * (_face(p) * _mirror_gauss(p, (0.042, 0.352, 0.07), 0.02))[:, None] * n),
    (
        "pucker",
        lambda p, n: (_face(p) * _gauss(p, (0.0, 0.332, 0.09), 0.015))[:, None] * _vec(-0.3 * p[:, 0], 0.0, 0.008),
    ),
    ("squint", lambda p, n: _vec(y=0.004 * _face(p) * _mirror_gauss(p, (0.033, 0.392, 0.09), 0.012))),
    ("nose_wrinkle", lambda p, n: _vec(y=0.003 * _face(p) * _gauss(p, (0.0, 0.385, 0.105), 0.015))),
    ("mouth_left", lambda p, n: _vec(0.006 * _face(p) * _gauss(p, (0.0, 0.332, 0.09), 0.02))),
    (
        "lips_press",
        lambda p, n: _vec(
            y=0.003 * _face(p) * (_gauss(p, (0.0, 0.326, 0.095), 0.012) - _gauss(p, (0.0, 0.339, 0.095), 0.012))
        ),
    ),
]


def blend_basis(
    fields: list[tuple[str, Field]],
    vertices: np.ndarray,
    normals: np.ndarray,
    rigid_parts: list[np.ndarray] | None = None,
) -> np.ndarray:
    """Stacks fields into a basis [V, 3, K]; vertices in each rigid part take the field at its centre."""
    basis = np.zeros((len(vertices), 3, len(fields)), dtype=np.float64)
    for k, (_, field) in enumerate(fields):
        basis[:, :, k] = field(vertices, normals)
        for part in rigid_parts or []:
            centre = vertices[part].mean(axis=0, keepdims=True)
            basis[part, :, k] = field(centre, np.zeros((1, 3)))[0]
    return basis
