"""Vectorised geometry on triangle meshes: closest points, ray hits, the cotangent Laplacian.

Used to attach landmarks and the SMPL -> SMPL-X mapping to surfaces (barycentric coordinates) and to
diffuse skinning weights over the body.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.spatial import cKDTree

from ivlm_core.mesh import face_areas


def closest_point_on_triangles(p: np.ndarray, tri: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Closest points of triangles tri [N, 3, 3] to points p [N, 3], pairwise.

    Returns (points [N, 3], barycentric coordinates [N, 3]); the region tests follow Ericson,
    "Real-Time Collision Detection", 5.1.5.
    """
    a, b, c = tri[:, 0], tri[:, 1], tri[:, 2]
    ab, ac, ap = b - a, c - a, p - a
    d1, d2 = _dot(ab, ap), _dot(ac, ap)
    bp = p - b
    d3, d4 = _dot(ab, bp), _dot(ac, bp)
    cp = p - c
    d5, d6 = _dot(ab, cp), _dot(ac, cp)
    va = d3 * d6 - d5 * d4
    vb = d5 * d2 - d1 * d6
    vc = d1 * d4 - d3 * d2
    bary = np.zeros((len(p), 3))
    done = np.zeros(len(p), dtype=bool)

    def take(mask: np.ndarray, w: np.ndarray) -> None:
        nonlocal done
        m = mask & ~done
        bary[m] = w[m]
        done |= m

    one = np.ones(len(p))
    zero = np.zeros(len(p))
    take((d1 <= 0) & (d2 <= 0), np.stack([one, zero, zero], 1))
    take((d3 >= 0) & (d4 <= d3), np.stack([zero, one, zero], 1))
    take((d6 >= 0) & (d5 <= d6), np.stack([zero, zero, one], 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        t = d1 / (d1 - d3)
        take((vc <= 0) & (d1 >= 0) & (d3 <= 0), np.stack([1 - t, t, zero], 1))
        t = d2 / (d2 - d6)
        take((vb <= 0) & (d2 >= 0) & (d6 <= 0), np.stack([1 - t, zero, t], 1))
        t = (d4 - d3) / ((d4 - d3) + (d5 - d6))
        take((va <= 0) & ((d4 - d3) >= 0) & ((d5 - d6) >= 0), np.stack([zero, 1 - t, t], 1))
        denom = 1.0 / (va + vb + vc)
        v, w = vb * denom, vc * denom
        take(np.ones(len(p), dtype=bool), np.stack([1 - v - w, v, w], 1))
    points = np.einsum("ni,nij->nj", bary, tri)
    return points, bary


def _dot(u: np.ndarray, w: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", u, w)


def closest_points_on_mesh(
    p: np.ndarray, vertices: np.ndarray, faces: np.ndarray, candidates: int = 24
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each point, the closest point on the mesh: (face index, barycentric coords, distance).

    Candidate faces are those whose centroid is among the `candidates` nearest; on meshes with even
    triangles that always contains the true closest face.
    """
    centroids = vertices[faces].mean(axis=1)
    _, near = cKDTree(centroids).query(p, k=min(candidates, len(faces)))
    n, k = near.shape
    tri = vertices[faces[near.ravel()]]
    q, bary = closest_point_on_triangles(np.repeat(p, k, axis=0), tri)
    dist = np.linalg.norm(q - np.repeat(p, k, axis=0), axis=1).reshape(n, k)
    best = dist.argmin(axis=1)
    rows = np.arange(n)
    return near[rows, best], bary.reshape(n, k, 3)[rows, best], dist[rows, best]


def ray_hits(
    origins: np.ndarray, directions: np.ndarray, vertices: np.ndarray, faces: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """First hit (t > 0) of each ray on the mesh (Moller-Trumbore): (t [R], face [R]); t = inf on a miss."""
    tri = vertices[faces]
    e1, e2 = tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]
    t_best = np.full(len(origins), np.inf)
    f_best = np.full(len(origins), -1, dtype=np.int64)
    for start in range(0, len(origins), 64):
        o, d = origins[start : start + 64, None], directions[start : start + 64, None]
        pvec = np.cross(d, e2[None])
        det = np.einsum("rfi,fi->rf", pvec, e1)
        with np.errstate(divide="ignore", invalid="ignore"):
            inv = 1.0 / det
            tvec = o - tri[None, :, 0]
            u = np.einsum("rfi,rfi->rf", tvec, pvec) * inv
            qvec = np.cross(tvec, e1[None])
            w = np.einsum("rfi,rfi->rf", np.broadcast_to(d, qvec.shape), qvec) * inv
            t = np.einsum("rfi,fi->rf", qvec, e2) * inv
            hit = (np.abs(det) > 1e-14) & (u >= 0) & (w >= 0) & (u + w <= 1) & (t > 1e-9)
        t = np.where(hit, t, np.inf)
        idx = t.argmin(axis=1)
        rows = np.arange(len(idx))
        t_best[start : start + 64] = t[rows, idx]
        f_best[start : start + 64] = np.where(np.isfinite(t[rows, idx]), idx, -1)
    return t_best, f_best


def cotangent_laplacian(vertices: np.ndarray, faces: np.ndarray) -> tuple[sp.csr_matrix, np.ndarray]:
    """(L, mass): L is the positive semi-definite cotangent Laplacian (rows sum to 0), mass the
    lumped (one third of incident face areas) vertex areas."""
    n = len(vertices)
    tri = vertices[faces]
    rows, cols, vals = [], [], []
    for k in range(3):
        i, j, o = faces[:, (k + 1) % 3], faces[:, (k + 2) % 3], k  # edge (i, j) faces corner o
        u = tri[:, (k + 1) % 3] - tri[:, o]
        w = tri[:, (k + 2) % 3] - tri[:, o]
        cot = _dot(u, w) / np.maximum(np.linalg.norm(np.cross(u, w), axis=1), 1e-20)
        cot = np.clip(cot, -1e3, 1e3)
        rows += [i, j]
        cols += [j, i]
        vals += [-0.5 * cot, -0.5 * cot]
    off = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))
    lap = off - sp.diags(np.asarray(off.sum(axis=1)).ravel())
    area = face_areas(vertices, faces)
    mass = np.bincount(faces.ravel(), weights=np.repeat(area / 3.0, 3), minlength=n)
    return lap.tocsr(), mass


def point_segment_distance(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distances [N, S] from points [N, 3] to segments a[S] -> b[S]."""
    ab = b - a
    t = np.einsum("nsi,si->ns", p[:, None] - a[None], ab) / np.maximum((ab * ab).sum(axis=1), 1e-20)
    t = np.clip(t, 0.0, 1.0)
    closest = a[None] + t[..., None] * ab[None]
    return np.linalg.norm(p[:, None] - closest, axis=2)
