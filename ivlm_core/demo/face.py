"""The synthetic SMPL-X face: eyeballs, eye openings, and the facial landmarks smplx reads.

SMPL-X is not one closed surface (2V - F = 42), because its eyeballs are separate pieces and the face has
openings for them. The demo does the same: two eye openings of 17 boundary edges each (34 in all) plus
two closed eyeballs (4 each) give exactly 2V - F = 34 + 8 = 42.

Landmarks are points fixed to faces by barycentric coordinates: 51 static ones placed like the inner
iBUG-68 points (brows, nose, eyes, mouth; the order smplx names them in), and a jaw-line contour of 17
points for each of 79 head yaw angles, in the row order smplx's `find_dynamic_lmk_idx_and_bcoords`
indexes them (rows 0..39 for yaw 0..-39 degrees, rows 40..78 for yaw +1..+39 degrees).
"""

from __future__ import annotations

import numpy as np
import trimesh

from ivlm_core.demo.geometry import closest_points_on_mesh, ray_hits

HOLE_EDGES = 17  # boundary edges of each eye opening


def eyeball(centre: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """An icosphere (162 vertices, 320 faces) at `centre`, faces wound outward."""
    sphere = trimesh.creation.icosphere(subdivisions=2, radius=radius)
    return np.asarray(sphere.vertices) + centre, np.asarray(sphere.faces, dtype=np.int64)


def cut_eye_openings(v: np.ndarray, f: np.ndarray, centres: np.ndarray, radius: float) -> np.ndarray:
    """Removes the faces whose centroid lies inside an eyeball, leaving one opening per eye."""
    centroids = v[f].mean(axis=1)
    inside = np.zeros(len(f), dtype=bool)
    for c in centres:
        inside |= np.linalg.norm(centroids - c, axis=1) < radius
    return f[~inside]


# ---- static landmarks: (x, y) on the front of the face, in smplx's order ---------------------------


def _static_landmark_xy() -> np.ndarray:
    right_brow = [(-0.056, 0.414), (-0.046, 0.421), (-0.035, 0.424), (-0.024, 0.423), (-0.013, 0.419)]
    left_brow = [(-x, y) for x, y in reversed(right_brow)]
    nose_ridge = [(0.0, 0.402), (0.0, 0.390), (0.0, 0.378), (0.0, 0.367)]
    nostrils = [(-0.016, 0.357), (-0.008, 0.354), (0.0, 0.353), (0.008, 0.354), (0.016, 0.357)]
    right_eye = [(-0.048, 0.402), (-0.039, 0.407), (-0.027, 0.407), (-0.018, 0.402), (-0.027, 0.397), (-0.039, 0.397)]
    left_eye = [(0.018, 0.402), (0.027, 0.407), (0.039, 0.407), (0.048, 0.402), (0.039, 0.397), (0.027, 0.397)]
    outer_lips = [
        (-0.024, 0.333),
        (-0.016, 0.337),
        (-0.007, 0.339),
        (0.0, 0.338),
        (0.007, 0.339),
        (0.016, 0.337),
        (0.024, 0.333),
        (0.016, 0.328),
        (0.007, 0.326),
        (0.0, 0.325),
        (-0.007, 0.326),
        (-0.016, 0.328),
    ]
    inner_lips = [
        (-0.019, 0.333),
        (-0.007, 0.334),
        (0.0, 0.334),
        (0.007, 0.334),
        (0.019, 0.333),
        (0.007, 0.331),
        (0.0, 0.331),
        (-0.007, 0.331),
    ]
    xy = right_brow + left_brow + nose_ridge + nostrils + right_eye + left_eye + outer_lips + inner_lips
    return np.array(xy)


def static_landmarks(v: np.ndarray, f: np.ndarray, n_body_faces: int) -> tuple[np.ndarray, np.ndarray]:
    """(lmk_faces_idx [51], lmk_bary_coords [51, 3]): each point seen from the front (a ray along -Z
    onto the whole mesh), then attached to the nearest point of the body surface (not an eyeball)."""
    xy = _static_landmark_xy()
    origins = np.column_stack([xy, np.full(len(xy), 0.3)])
    head = np.flatnonzero(v[f].min(axis=1)[:, 1] > 0.25)
    t, _ = ray_hits(origins, np.tile([0.0, 0.0, -1.0], (len(xy), 1)), v, f[head])
    if not np.isfinite(t).all():
        raise RuntimeError("a face landmark missed the head")
    hits = origins + t[:, None] * np.array([0.0, 0.0, -1.0])
    body_head = head[head < n_body_faces]
    face_local, bary, _ = closest_points_on_mesh(hits, v, f[body_head])
    return body_head[face_local], bary


# ---- dynamic jaw-line contour ----------------------------------------------------------------------


def _yaw_of_row(row: int) -> float:
    """Head yaw (degrees about +Y) that selects `row` in smplx's look-up."""
    return -float(row) if row <= 39 else float(row - 39)


def _jaw_point_direction(phi_deg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ray origins and directions that exit the head through the jaw line at azimuth phi (0 = chin,
    +90 = under the left ear)."""
    phi = np.radians(phi_deg)
    height = 0.292 + 0.058 * np.clip(np.abs(phi_deg) / 90.0, 0.0, 1.0) ** 1.5
    targets = np.column_stack([0.08 * np.sin(phi), height, 0.08 * np.cos(phi) + 0.01])
    origin = np.array([0.0, 0.36, 0.005])
    d = targets - origin
    return np.tile(origin, (len(phi), 1)), d / np.linalg.norm(d, axis=1, keepdims=True)


def dynamic_contour(v: np.ndarray, f: np.ndarray, n_body_faces: int) -> tuple[np.ndarray, np.ndarray]:
    """(dynamic_lmk_faces_idx [79, 17], dynamic_lmk_bary_coords [79, 17, 3]).

    For a head turned by yaw theta, the outline seen from the front runs along the jaw from azimuth
    -90 - theta (the body's right) through the chin to 90 - theta, clamped to +/-100 degrees.
    """
    body = np.flatnonzero(v[f[:n_body_faces]].min(axis=1)[:, 1] > 0.25)
    angles = np.arange(-100, 101)  # one ray per degree, looked up below
    origins, dirs = _jaw_point_direction(angles.astype(float))
    t, _ = ray_hits(origins, dirs, v, f[body])
    if not np.isfinite(t).all():
        raise RuntimeError("a jaw-line ray missed the head")
    points = origins + t[:, None] * dirs
    face_local, bary, _ = closest_points_on_mesh(points, v, f[body])
    faces_by_angle, bary_by_angle = body[face_local], bary
    rows_f = np.zeros((79, 17), dtype=np.int64)
    rows_b = np.zeros((79, 17, 3))
    for row in range(79):
        theta = _yaw_of_row(row)
        right = max(-90.0 - theta, -100.0)
        left = min(90.0 - theta, 100.0)
        phis = np.concatenate([np.linspace(right, 0.0, 9), np.linspace(0.0, left, 9)[1:]])
        idx = np.rint(phis).astype(int) + 100
        rows_f[row], rows_b[row] = faces_by_angle[idx], bary_by_angle[idx]
    return rows_f, rows_b
