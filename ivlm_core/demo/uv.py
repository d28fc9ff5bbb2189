"""Texture coordinates for the synthetic body: cylindrical charts per body region in one atlas.

Trunk and head wrap around the vertical axis, each leg around its own vertical axis, each arm around
the X axis, eyeballs get small square charts. As in real SMPL-X files there are more texture coordinates
(`vt`) than vertices: vertices on a chart border or on a cylinder's seam get one per chart/side, and
`ft` says which one each face corner uses.
"""

from __future__ import annotations

import numpy as np

# chart id -> (u0, v0, u1, v1) rectangle in the atlas
_ATLAS = {
    0: (0.00, 0.00, 0.50, 1.00),  # trunk, neck, head
    1: (0.50, 0.80, 1.00, 1.00),  # left arm and hand
    2: (0.50, 0.60, 1.00, 0.80),  # right arm and hand
    3: (0.50, 0.00, 0.75, 0.55),  # left leg and foot
    4: (0.75, 0.00, 1.00, 0.55),  # right leg and foot
    5: (0.50, 0.55, 0.55, 0.60),  # left eyeball
    6: (0.55, 0.55, 0.60, 0.60),  # right eyeball
}


def _chart_of_points(p: np.ndarray) -> np.ndarray:
    chart = np.zeros(len(p), dtype=np.int64)
    arm = np.abs(p[:, 0]) > 0.19
    chart[arm & (p[:, 0] > 0)] = 1
    chart[arm & (p[:, 0] < 0)] = 2
    leg = ~arm & (p[:, 1] < -0.52)
    chart[leg & (p[:, 0] > 0)] = 3
    chart[leg & (p[:, 0] < 0)] = 4
    return chart


def _cylinder_coords(p: np.ndarray, chart: int) -> tuple[np.ndarray, np.ndarray]:
    """(angle in [0, 1), height in [0, 1]) of points in a chart's own cylinder."""
    if chart == 0:
        angle, height = np.arctan2(p[:, 0], p[:, 2]), (p[:, 1] + 0.55) / 1.10
    elif chart in (1, 2):
        angle, height = np.arctan2(p[:, 2], p[:, 1]), (np.abs(p[:, 0]) - 0.15) / 0.80
    else:
        cx = 0.105 if chart == 3 else -0.105
        angle, height = np.arctan2(p[:, 0] - cx, p[:, 2]), (p[:, 1] + 1.22) / 0.75
    return (angle / (2 * np.pi) + 0.5) % 1.0, np.clip(height, 0.0, 1.0)


def body_uv(
    vertices: np.ndarray, faces: np.ndarray, rigid_parts: list[np.ndarray] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(vt [T, 2], ft [F, 3]) for a body mesh; `rigid_parts` (eyeballs) get charts 5, 6, ..."""
    parts = rigid_parts or []
    vertex_chart = _chart_of_points(vertices)
    for k, part in enumerate(parts):
        vertex_chart[part] = 5 + k
    # a face belongs to the chart most of its corners are in (the first corner's on a three-way tie)
    fc = vertex_chart[faces]
    face_chart = np.where(fc[:, 1] == fc[:, 2], fc[:, 1], fc[:, 0])
    corner_chart = np.repeat(face_chart, 3)
    corner_vertex = faces.ravel()
    u = np.empty(len(corner_vertex))
    w = np.empty(len(corner_vertex))
    wrapped = np.zeros(len(corner_vertex), dtype=bool)
    for chart, (u0, v0, u1, v1) in _ATLAS.items():
        sel = corner_chart == chart
        if not sel.any():
            continue
        p = vertices[corner_vertex[sel]]
        if chart >= 5:
            centre = vertices[parts[chart - 5]].mean(axis=0)
            d = p - centre
            d /= np.linalg.norm(d, axis=1, keepdims=True)
            a, h = (np.arctan2(d[:, 0], d[:, 2]) / (2 * np.pi) + 0.5), (d[:, 1] + 1) / 2
        else:
            a, h = _cylinder_coords(p, chart)
            # faces across the seam: their low-angle corners move past 1 so the face stays small
            fa = a.reshape(-1, 3)
            seam = (fa.max(axis=1) - fa.min(axis=1)) > 0.5
            low = seam[:, None] & (fa < 0.5)
            fa[low] += 1.0
            a = fa.ravel() / 1.1
            wrapped[np.flatnonzero(sel)] = low.ravel()
        u[sel] = u0 + (u1 - u0) * np.clip(a, 0.0, 1.0)
        w[sel] = v0 + (v1 - v0) * np.clip(h, 0.0, 1.0)
    # one texture coordinate per distinct (vertex, chart, wrapped) triple
    key = np.stack([corner_vertex, corner_chart, wrapped.astype(np.int64)], axis=1)
    _, first, inverse = np.unique(key, axis=0, return_index=True, return_inverse=True)
    vt = np.stack([u[first], w[first]], axis=1)
    return vt, inverse.reshape(-1, 3).astype(np.int64)
