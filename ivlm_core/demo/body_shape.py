"""The synthetic body as one smooth signed-distance shape, built around the designed skeleton.

Capsules, tapered capsules, ellipsoids and rounded boxes along the bones, blended by smooth unions into a
single closed genus-0 surface: head with nose, brows and ears, neck, torso, arms in T-pose, hands with
five separate fingers, legs and feet. Also the target edge length used when meshing it (finer on the
hands and face, where the detail is).
"""

from __future__ import annotations

import numpy as np

from ivlm_core.demo.sdf import Ellipsoid, RoundBox, RoundCone, Shape, Sphere, Union
from ivlm_core.demo.skeleton import FINGERS, THUMB_RADII, designed_points, finger_radius

_MIRROR = np.array([-1.0, 1.0, 1.0])


def _side(p: tuple[float, float, float] | np.ndarray, side: str) -> np.ndarray:
    p = np.asarray(p, dtype=float)
    return p if side == "left" else p * _MIRROR


def _head() -> Union:
    ears = [(Ellipsoid(_side((0.079, 0.392, -0.008), s), (0.012, 0.030, 0.019)), 0.008) for s in ("left", "right")]
    brows = [
        (RoundCone(_side((0.012, 0.421, 0.094), s), _side((0.052, 0.421, 0.083), s), 0.007, 0.006), 0.010)
        for s in ("left", "right")
    ]
    return Union(
        [
            (Ellipsoid((0.0, 0.405, 0.005), (0.078, 0.096, 0.098)), 0.0),  # cranium
            (Ellipsoid((0.0, 0.350, 0.030), (0.062, 0.062, 0.070)), 0.030),  # face and jaw
            (RoundCone((0.0, 0.400, 0.092), (0.0, 0.366, 0.116), 0.007, 0.011), 0.012),  # nose
            (Ellipsoid((0.0, 0.331, 0.090), (0.026, 0.011, 0.012)), 0.010),  # lips
            *ears,
            *brows,
            (Sphere((0.0, 0.300, 0.082), 0.016), 0.020),  # chin
        ]
    )


def _torso() -> Union:
    buttocks = [(Ellipsoid(_side((0.070, -0.425, -0.050), s), (0.080, 0.090, 0.070)), 0.04) for s in ("left", "right")]
    pecs = [(Ellipsoid(_side((0.070, 0.080, 0.040), s), (0.070, 0.060, 0.065)), 0.04) for s in ("left", "right")]
    return Union(
        [
            (Ellipsoid((0.0, 0.060, -0.010), (0.150, 0.155, 0.100)), 0.0),  # chest
            (RoundCone((-0.150, 0.168, -0.018), (0.150, 0.168, -0.018), 0.048, 0.048), 0.06),  # shoulder girdle
            (Ellipsoid((0.0, -0.140, 0.000), (0.132, 0.160, 0.092)), 0.06),  # waist
            (Ellipsoid((0.0, -0.365, -0.010), (0.162, 0.120, 0.105)), 0.06),  # pelvis
            (Ellipsoid((0.0, -0.470, -0.008), (0.085, 0.075, 0.085)), 0.04),  # crotch: rounds the top of the leg gap
            *buttocks,
            *pecs,
            (RoundCone((0.0, 0.200, -0.018), (0.0, 0.330, -0.008), 0.052, 0.047), 0.04),  # neck
        ]
    )


def _hand(side: str) -> Union:
    pts = designed_points()
    parts: list[tuple[Shape, float]] = [
        (RoundBox(_side((0.744, 0.171, 0.001), side), (0.040, 0.004, 0.034), 0.0115), 0.0),  # palm
    ]
    for finger in FINGERS:
        chain = [pts[f"{side}_{finger}{k}"] for k in (1, 2, 3)] + [pts[f"{side}_{finger}_tip"]]
        radii = THUMB_RADII if finger == "thumb" else [finger_radius(finger) * s for s in (1.0, 0.95, 0.9, 0.82)]
        blend = 0.012 if finger == "thumb" else 0.004
        for k in range(3):
            parts.append((RoundCone(chain[k], chain[k + 1], radii[k], radii[k + 1]), blend))
    return Union(parts)


def _arm(side: str) -> Union:
    p = designed_points()
    shoulder, elbow, wrist = p[f"{side}_shoulder"], p[f"{side}_elbow"], p[f"{side}_wrist"]
    return Union(
        [
            (RoundCone(shoulder + _side((-0.02, 0.0, 0.0), side), elbow, 0.050, 0.039), 0.0),  # upper arm
            (Ellipsoid(_side((0.195, 0.183, -0.016), side), (0.065, 0.052, 0.055)), 0.03),  # deltoid
            (RoundCone(elbow, wrist, 0.037, 0.027), 0.02),  # forearm
            (Ellipsoid(_side((0.515, 0.175, -0.021), side), (0.080, 0.036, 0.041)), 0.03),  # forearm muscles
            (_hand(side), 0.02),
        ]
    )


def _leg(side: str) -> Union:
    p = designed_points()
    hip, knee, ankle = p[f"{side}_hip"], p[f"{side}_knee"], p[f"{side}_ankle"]
    return Union(
        [
            (RoundCone(hip + np.array([0.0, 0.03, 0.0]), knee, 0.078, 0.054), 0.0),  # thigh
            (Ellipsoid(_side((0.094, -0.620, 0.010), side), (0.066, 0.170, 0.078)), 0.04),  # thigh muscles
            (RoundCone(knee, ankle, 0.050, 0.032), 0.03),  # shin
            (Ellipsoid(_side((0.103, -0.930, -0.022), side), (0.050, 0.110, 0.053)), 0.04),  # calf
            (_foot(side), 0.03),
        ]
    )


def _foot(side: str) -> Union:
    return Union(
        [
            (Sphere(_side((0.110, -1.165, -0.045), side), 0.035), 0.0),  # heel
            (RoundBox(_side((0.116, -1.172, 0.050), side), (0.034, 0.015, 0.080), 0.013), 0.02),  # sole and arch
            (Ellipsoid(_side((0.113, -1.140, 0.030), side), (0.040, 0.038, 0.080)), 0.03),  # instep
            (RoundCone(_side((0.095, -1.184, 0.140), side), _side((0.093, -1.186, 0.181), side), 0.015, 0.014), 0.012),
            (RoundCone(_side((0.108, -1.187, 0.165), side), _side((0.150, -1.188, 0.142), side), 0.012, 0.011), 0.012),
        ]
    )


def body_sdf() -> Union:
    """The whole body: each top-level child is one block of the sampling grid."""
    return Union(
        [
            (_head(), 0.0),
            (_torso(), 0.04),
            (_arm("left"), 0.045),
            (_arm("right"), 0.045),
            (_leg("left"), 0.05),
            (_leg("right"), 0.05),
        ]
    )


def grid_axes(coarse: float = 0.008, fine: float = 0.002, medium: float = 0.004) -> tuple[np.ndarray, ...]:
    """Sampling axes for marching cubes: coarse on the body, fine through the hands, medium on the head."""
    xs = graded_axis(-0.93, 0.93, coarse, [(-0.93, -0.655, fine), (0.655, 0.93, fine), (-0.1, 0.1, medium)])
    ys = graded_axis(-1.23, 0.53, coarse, [(0.125, 0.225, fine), (0.25, 0.53, medium), (-1.23, -1.12, medium)])
    zs = graded_axis(-0.16, 0.23, coarse, [(-0.07, 0.115, fine)])
    return xs, ys, zs


def graded_axis(lo: float, hi: float, coarse: float, zones: list[tuple[float, float, float]]) -> np.ndarray:
    """Sample positions from lo to hi: spacing `coarse`, or a zone's spacing inside it (changing gradually)."""
    fine_x = np.linspace(lo, hi, int(np.ceil((hi - lo) / 1e-4)) + 1)
    spacing = np.full_like(fine_x, coarse)
    for a, b, h in zones:
        # spacing ramps from h at the zone edge to coarse over 3 cm, so cells change size gradually
        dist = np.maximum(np.maximum(a - fine_x, fine_x - b), 0.0)
        spacing = np.minimum(spacing, h + (coarse - h) * np.clip(dist / 0.03, 0.0, 1.0))
    cells = np.concatenate([[0.0], np.cumsum(np.diff(fine_x) / spacing[:-1])])
    n = int(np.ceil(cells[-1]))
    return np.interp(np.linspace(0.0, cells[-1], n + 1), cells, fine_x)


def target_edge_length(p: np.ndarray, body: float, hands: float, face: float) -> np.ndarray:
    """Desired edge length at points p: `hands` beyond the wrists, `face` on the front of the head,
    and in between on the feet (toes are small)."""
    hand_w = np.clip((np.abs(p[:, 0]) - 0.62) / 0.06, 0.0, 1.0)
    head_r = np.linalg.norm((p - np.array([0.0, 0.38, 0.06])) / np.array([0.09, 0.11, 0.09]), axis=1)
    face_w = np.clip((1.3 - head_r) / 0.4, 0.0, 1.0)
    foot_w = np.clip((-1.08 - p[:, 1]) / 0.05, 0.0, 1.0)
    length = body + (hands - body) * hand_w
    length = np.minimum(length, body + (0.5 * (body + hands) - body) * foot_w)
    return np.minimum(length, body + (face - body) * face_w)
