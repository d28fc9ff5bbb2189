"""Rigging the synthetic body: skinning weights, the joint regressor and pose-corrective blend shapes.

- Skinning weights diffuse each bone's region over the surface ("bone heat", Baran and Popovic 2007):
  smooth, summing to one, and bending only where two regions meet, so a knee bends at the knee.
  They are then cut to the few largest per vertex, as in SMPL.
- The joint regressor expresses every designed joint centre as a sparse, non-negative, sum-to-one
  mix of nearby surface vertices (staying close to an even mix), so J_regressor @ v_template gives
  the designed joints and joints follow the surface when the shape changes.
- Pose correctives push the skin slightly outward where a joint bends, growing with the bend angle.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.optimize import lsq_linear
from scipy.sparse.linalg import splu

from ivlm_core.demo.geometry import cotangent_laplacian, point_segment_distance
from ivlm_core.demo.skeleton import Bone

MAX_INFLUENCES = 4


def nearest_bone_joint(
    vertices: np.ndarray, bones: list[Bone], names: tuple[str, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """For each vertex: the joint owning its nearest bone, and the distance to it."""
    starts = np.stack([b.start for b in bones])
    ends = np.stack([b.end for b in bones])
    owner = np.array([names.index(b.joint) for b in bones])
    dist = point_segment_distance(vertices, starts, ends)
    nearest = dist.argmin(axis=1)
    return owner[nearest], dist[np.arange(len(vertices)), nearest]


def bone_heat_weights(
    vertices: np.ndarray,
    faces: np.ndarray,
    bones: list[Bone],
    names: tuple[str, ...],
    fixed: dict[int, np.ndarray] | None = None,
) -> np.ndarray:
    """LBS weights [V, J]: each joint's weight solves (L + M H) w = M H p, where p marks the vertices
    whose nearest bone the joint owns and H = 1 / distance^2 (closer vertices are held more firmly).

    `fixed` maps a joint index to vertices bound to it alone (eyeballs); they are left out of the solve.
    Every row sums to one and has at most MAX_INFLUENCES non-zeros.
    """
    n, n_joints = len(vertices), len(names)
    fixed = fixed or {}
    bound = np.zeros(n, dtype=bool)
    for idx in fixed.values():
        bound[idx] = True
    free = np.flatnonzero(~bound)
    remap = np.full(n, -1)
    remap[free] = np.arange(len(free))
    free_faces = faces[np.all(~bound[faces], axis=1)]
    lap, mass = cotangent_laplacian(vertices[free], remap[free_faces])
    owner, dist = nearest_bone_joint(vertices[free], bones, names)
    heat = mass / np.maximum(dist, 1e-3) ** 2
    solve = splu((lap + sp.diags(heat)).tocsc())
    rhs = np.zeros((len(free), n_joints))
    rhs[np.arange(len(free)), owner] = heat
    weights = np.zeros((n, n_joints))
    weights[free] = solve.solve(rhs)
    for joint, idx in fixed.items():
        weights[idx, joint] = 1.0
    return sparsify_weights(weights)


def sparsify_weights(weights: np.ndarray, keep: int = MAX_INFLUENCES, floor: float = 0.01) -> np.ndarray:
    """Keeps the `keep` largest weights per row (dropping those under `floor`) and renormalises."""
    w = np.clip(weights, 0.0, None)
    order = np.argsort(-w, axis=1)
    out = np.zeros_like(w)
    rows = np.arange(len(w))[:, None]
    top = order[:, :keep]
    out[rows, top] = w[rows, top]
    out[out < floor] = 0.0
    return out / out.sum(axis=1, keepdims=True)


def fit_joint_regressor(
    vertices: np.ndarray, joints: np.ndarray, candidates: list[np.ndarray], tolerance: float = 1e-5
) -> np.ndarray:
    """J_regressor [J, V]: row j mixes vertices among candidates[j] (nearest first) to reproduce joints[j].

    Starting from the 16 nearest candidates and doubling until the joint lies inside their convex hull,
    it solves min |w - uniform|^2 subject to sum(w) = 1, V^T w = joint (weighted heavily), w >= 0.
    """
    regressor = np.zeros((len(joints), len(vertices)))
    for j, (joint, cand) in enumerate(zip(joints, candidates)):
        order = cand[np.argsort(np.linalg.norm(vertices[cand] - joint, axis=1))]
        k = 16
        while True:
            idx = order[:k]
            w = _constrained_mix(vertices[idx], joint)
            if np.linalg.norm(w @ vertices[idx] - joint) < tolerance:
                break
            if k >= len(order):
                raise RuntimeError(f"joint {j} is not inside the hull of its candidate vertices")
            k *= 2
        regressor[j, idx] = w
    return regressor


def _constrained_mix(points: np.ndarray, target: np.ndarray, stiffness: float = 1e4) -> np.ndarray:
    k = len(points)
    a = np.vstack([stiffness * points.T, stiffness * np.ones((1, k)), np.eye(k)])
    b = np.concatenate([stiffness * target, [stiffness], np.full(k, 1.0 / k)])
    w = lsq_linear(a, b, bounds=(0.0, 1.0), method="bvls").x
    w[w < 1e-6] = 0.0
    return w / w.sum()


def regressor_candidates(labels: np.ndarray, parents: np.ndarray) -> list[np.ndarray]:
    """Vertices that may help place joint j: those whose region belongs to j, its parent or children."""
    out = []
    for j in range(len(parents)):
        family = {j, int(parents[j])} | set(np.flatnonzero(parents == j).tolist())
        out.append(np.flatnonzero(np.isin(labels, list(family - {-1}))))
    return out


def pose_correctives(
    vertices: np.ndarray, normals: np.ndarray, weights: np.ndarray, parents: np.ndarray, amplitude: float = 0.004
) -> np.ndarray:
    """posedirs [V, 3, 9 (J - 1)]: where joint j and its parent share a vertex, the diagonal entries of
    (R_j - I) push it along its normal, so bending by theta moves the skin out by
    amplitude * s * (2 - 2 cos theta) with s = 4 w_j w_parent in [0, 1]."""
    n, n_joints = weights.shape
    posedirs = np.zeros((n, 3, 9 * (n_joints - 1)), dtype=np.float32)
    for j in range(1, n_joints):
        share = np.clip(4.0 * weights[:, j] * weights[:, parents[j]], 0.0, 1.0)
        if not share.any():
            continue
        push = (-amplitude * share[:, None] * normals).astype(np.float32)
        for diag in (0, 4, 8):
            posedirs[:, :, 9 * (j - 1) + diag] = push
    return posedirs
