"""Smooth signed-distance shapes: a few primitives combined by smooth union/subtraction.

Negative inside, positive outside, metres. Each node knows a bounding box, so a union only evaluates a
child near that child: far from it the child cannot change the surface (only the value of points that
are far outside anyway), which keeps a dense grid of a whole body cheap to sample.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

FAR = 1.0  # value of points that no primitive is near: outside, far from every surface
_MARGIN = 0.02  # evaluate a child this far beyond its box, so near-surface values are exact


class Shape:
    """A node of the shape tree: `lo`/`hi` bound the region where it is negative (plus blending)."""

    lo: np.ndarray
    hi: np.ndarray

    def __call__(self, p: np.ndarray) -> np.ndarray:
        raise NotImplementedError


@dataclass
class RoundCone(Shape):
    """A capsule from a to b whose radius goes linearly from ra to rb (limbs, fingers, neck)."""

    a: np.ndarray
    b: np.ndarray
    ra: float
    rb: float

    def __post_init__(self) -> None:
        self.a, self.b = np.asarray(self.a, float), np.asarray(self.b, float)
        r = max(self.ra, self.rb)
        self.lo = np.minimum(self.a, self.b) - r
        self.hi = np.maximum(self.a, self.b) + r

    def __call__(self, p: np.ndarray) -> np.ndarray:
        ab = self.b - self.a
        t = np.clip(((p - self.a) @ ab) / (ab @ ab), 0.0, 1.0)
        closest = self.a + t[:, None] * ab
        return np.linalg.norm(p - closest, axis=1) - (self.ra + (self.rb - self.ra) * t)


@dataclass
class Sphere(Shape):
    """A ball (heel, chin, eyeball sockets)."""

    centre: np.ndarray
    radius: float

    def __post_init__(self) -> None:
        self.centre = np.asarray(self.centre, float)
        self.lo, self.hi = self.centre - self.radius, self.centre + self.radius

    def __call__(self, p: np.ndarray) -> np.ndarray:
        return np.linalg.norm(p - self.centre, axis=1) - self.radius


@dataclass
class Ellipsoid(Shape):
    """An axis-aligned ellipsoid (approximate distance, exact zero set): head, torso masses, muscles."""

    centre: np.ndarray
    radii: np.ndarray

    def __post_init__(self) -> None:
        self.centre, self.radii = np.asarray(self.centre, float), np.asarray(self.radii, float)
        self.lo, self.hi = self.centre - self.radii, self.centre + self.radii

    def __call__(self, p: np.ndarray) -> np.ndarray:
        q = p - self.centre
        k0 = np.linalg.norm(q / self.radii, axis=1)
        k1 = np.linalg.norm(q / self.radii**2, axis=1)
        return k0 * (k0 - 1.0) / np.maximum(k1, 1e-12)


@dataclass
class RoundBox(Shape):
    """An axis-aligned box with rounded edges: `half` is the inner half-size, `rounding` is added on."""

    centre: np.ndarray
    half: np.ndarray
    rounding: float

    def __post_init__(self) -> None:
        self.centre, self.half = np.asarray(self.centre, float), np.asarray(self.half, float)
        self.lo = self.centre - self.half - self.rounding
        self.hi = self.centre + self.half + self.rounding

    def __call__(self, p: np.ndarray) -> np.ndarray:
        q = np.abs(p - self.centre) - self.half
        outside = np.linalg.norm(np.maximum(q, 0.0), axis=1)
        inside = np.minimum(q.max(axis=1), 0.0)
        return outside + inside - self.rounding


def _inside_box(p: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    inside = (p[:, 0] >= lo[0]) & (p[:, 0] <= hi[0])
    for i in (1, 2):
        inside &= (p[:, i] >= lo[i]) & (p[:, i] <= hi[i])
    return inside


def smooth_min(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """Polynomial smooth minimum: equals min(a, b) where |a - b| >= k, blends (a fillet) within k."""
    if k <= 0:
        return np.minimum(a, b)
    h = np.maximum(k - np.abs(a - b), 0.0) / k
    return np.minimum(a, b) - h * h * k * 0.25


@dataclass
class Union(Shape):
    """Smooth union of children, each blended in with its own radius k (a fillet where they meet)."""

    children: list[tuple[Shape, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.lo = np.min([c.lo - k for c, k in self.children], axis=0)
        self.hi = np.max([c.hi + k for c, k in self.children], axis=0)
        self._box_lo = np.stack([c.lo - _MARGIN - k for c, k in self.children])
        self._box_hi = np.stack([c.hi + _MARGIN + k for c, k in self.children])

    def __call__(self, p: np.ndarray) -> np.ndarray:
        d = np.full(len(p), FAR)
        near_all = (p[:, :1] >= self._box_lo[:, 0]) & (p[:, :1] <= self._box_hi[:, 0])
        for axis in (1, 2):
            near_all &= (p[:, axis : axis + 1] >= self._box_lo[:, axis]) & (
                p[:, axis : axis + 1] <= self._box_hi[:, axis]
            )
        for i, (child, k) in enumerate(self.children):
            near = near_all[:, i]
            if near.any():
                d[near] = smooth_min(d[near], child(p[near]), k)
        return d


@dataclass
class Subtract(Shape):
    """`base` with `cutter` carved out, blended with radius k (sockets, dents)."""

    base: Shape
    cutter: Shape
    k: float

    def __post_init__(self) -> None:
        self.lo, self.hi = self.base.lo, self.base.hi

    def __call__(self, p: np.ndarray) -> np.ndarray:
        d = self.base(p)
        c = self.cutter
        near = _inside_box(p, c.lo - _MARGIN - self.k, c.hi + _MARGIN + self.k)
        if near.any():
            d[near] = -smooth_min(-d[near], c(p[near]), self.k)
        return d


def sample_grid(shape: Union, xs: np.ndarray, ys: np.ndarray, zs: np.ndarray, step: int = 3) -> np.ndarray:
    """Samples a top-level union on the tensor grid xs x ys x zs ([nx, ny, nz], float32), with correct
    values near the surface and correct signs elsewhere (all marching cubes needs).

    Two levels: every `step`-th sample first, interpolated to the full grid, then exact values only where
    the estimate is within one coarse cell of zero. A 1-Lipschitz distance cannot change sign further out.
    """
    axes = (xs, ys, zs)
    picks = [np.unique(np.r_[np.arange(0, len(ax), step), len(ax) - 1]) for ax in axes]
    volume = _sample_blocks(shape, *(ax[p] for ax, p in zip(axes, picks))).astype(np.float32)
    band = np.zeros((1, 1, 1), dtype=np.float32)
    for axis, (ax, pick) in enumerate(zip(axes, picks)):
        weights = _linear_upsampling(len(ax), pick)
        moved = np.moveaxis(volume, axis, 0)
        flat = weights @ moved.reshape(len(pick), -1)
        volume = np.moveaxis(flat.reshape(len(ax), *moved.shape[1:]), 0, axis)
        cell = np.diff(ax[pick])[np.clip(np.searchsorted(pick, np.arange(len(ax)), side="right") - 1, 0, len(pick) - 2)]
        band = band + (cell**2).astype(np.float32).reshape([-1 if a == axis else 1 for a in range(3)])
    near = np.abs(volume) < np.sqrt(band)
    idx = np.nonzero(near)
    points = np.stack([xs[idx[0]], ys[idx[1]], zs[idx[2]]], axis=1)
    volume[idx] = shape(points)
    return volume


def _linear_upsampling(n: int, picks: np.ndarray):
    """Sparse [n, len(picks)] matrix that linearly interpolates samples taken at indices `picks`."""
    import scipy.sparse as sp

    i = np.arange(n)
    seg = np.clip(np.searchsorted(picks, i, side="right") - 1, 0, len(picks) - 2)
    t = (i - picks[seg]) / (picks[seg + 1] - picks[seg])
    rows = np.r_[i, i]
    cols = np.r_[seg, seg + 1]
    return sp.csr_matrix((np.r_[1 - t, t].astype(np.float32), (rows, cols)), shape=(n, len(picks)))


def _sample_blocks(shape: Union, xs: np.ndarray, ys: np.ndarray, zs: np.ndarray) -> np.ndarray:
    """Dense sampling of a top-level union, each child only on the grid block around its box."""
    volume = np.full((len(xs), len(ys), len(zs)), FAR, dtype=np.float64)
    for child, k in shape.children:
        lo, hi = child.lo - _MARGIN - k, child.hi + _MARGIN + k
        sl = tuple(
            slice(np.searchsorted(ax, lo[i]), np.searchsorted(ax, hi[i], side="right"))
            for i, ax in enumerate((xs, ys, zs))
        )
        gx, gy, gz = np.meshgrid(xs[sl[0]], ys[sl[1]], zs[sl[2]], indexing="ij")
        points = np.stack([gx.ravel(), gy.ravel(), gz.ravel()], axis=1)
        block = volume[sl]
        volume[sl] = smooth_min(block, child(points).reshape(block.shape), k)
    return volume


def gradient(shape: Shape, p: np.ndarray, d: np.ndarray | None = None, eps: float = 1e-6) -> np.ndarray:
    """Forward-difference gradient of the distance [N, 3] (`d` = shape(p) if already known)."""
    d = shape(p) if d is None else d
    g = np.empty_like(p)
    for i in range(3):
        q = p.copy()
        q[:, i] += eps
        g[:, i] = (shape(q) - d) / eps
    return g


def project_along(shape: Shape, p: np.ndarray, directions: np.ndarray, iterations: int = 2) -> np.ndarray:
    """Moves points near the zero set onto it along given unit directions (close to the gradient, e.g.
    mesh normals): cheaper than `project_to_surface`, as it needs no gradient."""
    for _ in range(iterations):
        p = p - shape(p)[:, None] * directions
    return p


def project_to_surface(shape: Shape, p: np.ndarray, iterations: int = 2) -> np.ndarray:
    """Moves points that start near the zero set onto it: Newton steps along one gradient direction."""
    if len(p) == 0:
        return p.copy()
    d = shape(p)
    g = gradient(shape, p, d)
    g /= np.maximum((g * g).sum(axis=1), 1e-12)[:, None]
    p = p - d[:, None] * g
    for _ in range(iterations - 1):
        p = p - shape(p)[:, None] * g
    return p
