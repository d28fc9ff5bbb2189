"""Putting smplx's fixed keypoint vertex ids at the right places on the synthetic bodies.

smplx reads 21 extra joints (nose, eyes, ears, fingertips, toes, heels) from fixed vertex ids
(`smplx/vertex_ids.py`). Fitting a body to 2D keypoints goes through them, so the demo bodies reorder
their vertices until each of those ids sits at its anatomical spot.
"""

from __future__ import annotations

import numpy as np
from smplx.vertex_ids import vertex_ids as SMPLX_VERTEX_IDS

from ivlm_core.demo.skeleton import EYEBALL_RADIUS, FINGERS, designed_points


def keypoint_vertices(vertices: np.ndarray, eyeballs: dict[str, np.ndarray] | None = None) -> dict[str, int]:
    """Current index of the vertex for each smplx keypoint name ('nose', 'leye', 'LBigToe', ...).

    `eyeballs` maps 'left'/'right' to eyeball vertex indices (SMPL-X); without them (SMPL-H) the eye
    keypoints go to the head surface in front of the eye centres.
    """
    v = vertices
    pts = designed_points()
    out: dict[str, int] = {}
    head = np.flatnonzero((v[:, 1] > 0.27) & (np.abs(v[:, 0]) < 0.05))
    out["nose"] = int(head[np.argmax(v[head, 2])])
    for side, s in (("left", "l"), ("right", "r")):
        sign = 1.0 if side == "left" else -1.0
        centre = pts[f"{side}_eye_smplhf"]
        if eyeballs is not None:
            ball = eyeballs[side]
            out[f"{s}eye"] = int(ball[np.argmax(v[ball, 2])])
        else:
            front = centre + np.array([0.0, 0.0, EYEBALL_RADIUS])
            out[f"{s}eye"] = int(np.argmin(np.linalg.norm(v - front, axis=1)))
        ear = np.flatnonzero((v[:, 1] > 0.35) & (v[:, 1] < 0.43) & (np.abs(v[:, 2] + 0.008) < 0.03))
        out[f"{s}ear"] = int(ear[np.argmax(sign * v[ear, 0])])
        for finger in FINGERS:
            tip, last = pts[f"{side}_{finger}_tip"], pts[f"{side}_{finger}3"]
            direction = (tip - last) / np.linalg.norm(tip - last)
            near = np.flatnonzero(np.linalg.norm(v - tip, axis=1) < 0.02)
            out[f"{s}{finger}"] = int(near[np.argmax((v[near] - last) @ direction)])
        big, small, heel = ("LBigToe", "LSmallToe", "LHeel") if side == "left" else ("RBigToe", "RSmallToe", "RHeel")
        foot = np.flatnonzero((v[:, 1] < -1.05) & (sign * v[:, 0] > 0))
        out[big] = int(foot[np.argmax(v[foot, 2])])
        lateral = foot[sign * v[foot, 0] > 0.135]
        out[small] = int(lateral[np.argmax(v[lateral, 2])])
        sole = foot[v[foot, 1] < -1.17]
        out[heel] = int(sole[np.argmin(v[sole, 2])])
    return out


def reorder_for_keypoints(vertices: np.ndarray, current: dict[str, int], model_type: str) -> np.ndarray:
    """A permutation `order` (new vertex i is old vertex order[i]) that puts every keypoint at its
    smplx id and keeps all other vertices in their existing relative order."""
    ids = SMPLX_VERTEX_IDS[model_type]
    n = len(vertices)
    order = np.full(n, -1, dtype=np.int64)
    for name, old in current.items():
        order[ids[name]] = old
    placed = np.zeros(n, dtype=bool)
    placed[list(current.values())] = True
    if placed.sum() != len(current):
        raise ValueError("two keypoints landed on the same vertex")
    order[order < 0] = np.flatnonzero(~placed)
    return order
