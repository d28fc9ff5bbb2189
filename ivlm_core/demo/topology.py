"""Triangle-mesh topology: edges, adjacency, and the checks the demo bodies must pass.

A body file is only usable if its surface is what it claims: every edge shared by one or two faces,
one fan of faces around every vertex, and the expected number of pieces and holes. These checks run
when the bodies are generated and again in the tests.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components


@dataclass(frozen=True)
class Edges:
    """Undirected edges of a triangle mesh and the half-edges (3 * face + corner) on each side.

    Half-edge h runs from faces[h // 3, h % 3] to the next corner. `half[:, 1]` is -1 on boundary edges.
    """

    vertices: np.ndarray  # [E, 2], smaller index first
    half: np.ndarray  # [E, 2]
    half_to_edge: np.ndarray  # [3F]


def edges_of(faces: np.ndarray) -> Edges:
    """Builds the edge table; raises ValueError if an edge has more than two faces."""
    start = faces.ravel()
    end = faces[:, [1, 2, 0]].ravel()
    lo, hi = np.minimum(start, end), np.maximum(start, end)
    key = lo.astype(np.int64) * (int(faces.max()) + 1) + hi
    order = np.argsort(key, kind="stable")
    uniq, first, counts = np.unique(key[order], return_index=True, return_counts=True)
    if counts.max(initial=0) > 2:
        raise ValueError(f"{int((counts > 2).sum())} edges have more than two faces")
    half = np.full((len(uniq), 2), -1, dtype=np.int64)
    half[:, 0] = order[first]
    two = counts == 2
    half[two, 1] = order[first[two] + 1]
    half_to_edge = np.empty(len(key), dtype=np.int64)
    half_to_edge[order] = np.repeat(np.arange(len(uniq)), counts)
    vertices = np.stack([lo[half[:, 0]], hi[half[:, 0]]], axis=1)
    return Edges(vertices=vertices, half=half, half_to_edge=half_to_edge)


def adjacency(faces: np.ndarray, n_vertices: int) -> sp.csr_matrix:
    """Symmetric vertex adjacency (1 where an edge joins two vertices)."""
    a = faces.ravel()
    b = faces[:, [1, 2, 0]].ravel()
    m = sp.csr_matrix((np.ones(2 * len(a)), (np.r_[a, b], np.r_[b, a])), shape=(n_vertices, n_vertices))
    m.data[:] = 1.0
    return m


@dataclass(frozen=True)
class SurfaceReport:
    """What the checks found: counts plus anything that breaks 2-manifoldness."""

    n_vertices: int
    n_faces: int
    n_edges: int
    n_boundary_edges: int
    n_boundary_loops: int
    n_components: int
    euler_characteristic: int
    unused_vertices: int
    degenerate_faces: int
    nonmanifold_vertices: int

    @property
    def is_manifold(self) -> bool:
        return self.nonmanifold_vertices == 0 and self.degenerate_faces == 0

    def genus_total(self) -> int:
        """Sum of genera over components, for orientable surfaces: chi = sum(2 - 2g - b)."""
        return (2 * self.n_components - self.n_boundary_loops - self.euler_characteristic) // 2


def inspect_surface(faces: np.ndarray, n_vertices: int) -> SurfaceReport:
    """Counts and manifold checks (raises ValueError if an edge has more than two faces)."""
    faces = np.asarray(faces, dtype=np.int64)
    edges = edges_of(faces)
    boundary = edges.half[:, 1] < 0
    degenerate = int(((faces[:, 0] == faces[:, 1]) | (faces[:, 1] == faces[:, 2]) | (faces[:, 0] == faces[:, 2])).sum())
    used = np.zeros(n_vertices, dtype=bool)
    used[faces.ravel()] = True
    n_comp, _ = connected_components(adjacency(faces, n_vertices), directed=False)
    n_comp -= int((~used).sum())  # unused vertices count as components of their own
    return SurfaceReport(
        n_vertices=n_vertices,
        n_faces=len(faces),
        n_edges=len(edges.vertices),
        n_boundary_edges=int(boundary.sum()),
        n_boundary_loops=_count_loops(edges.vertices[boundary], n_vertices),
        n_components=n_comp,
        euler_characteristic=int(used.sum()) - len(edges.vertices) + len(faces),
        unused_vertices=int((~used).sum()),
        degenerate_faces=degenerate,
        nonmanifold_vertices=_count_vertices_with_several_fans(faces, edges, n_vertices),
    )


def _count_loops(boundary_edges: np.ndarray, n_vertices: int) -> int:
    if len(boundary_edges) == 0:
        return 0
    graph = sp.csr_matrix(
        (np.ones(len(boundary_edges)), (boundary_edges[:, 0], boundary_edges[:, 1])), shape=(n_vertices, n_vertices)
    )
    _, labels = connected_components(graph, directed=False)
    return len(np.unique(labels[np.unique(boundary_edges)]))


def _count_vertices_with_several_fans(faces: np.ndarray, edges: Edges, n_vertices: int) -> int:
    """Vertices whose incident faces form more than one fan (pinch points), via corner connectivity."""
    n_corners = 3 * len(faces)
    # corner c sits at vertex faces[c // 3, c % 3] and half-edge c leaves it
    twin = np.full(n_corners, -1, dtype=np.int64)
    inner = edges.half[:, 1] >= 0
    twin[edges.half[inner, 0]] = edges.half[inner, 1]
    twin[edges.half[inner, 1]] = edges.half[inner, 0]
    # across the outgoing edge (v -> w) lies half-edge (w -> v); the corner at v in that face is its next
    other = twin[np.arange(n_corners)]
    ok = other >= 0
    across = 3 * (other[ok] // 3) + (other[ok] + 1) % 3
    graph = sp.csr_matrix((np.ones(ok.sum()), (np.arange(n_corners)[ok], across)), shape=(n_corners, n_corners))
    _, labels = connected_components(graph, directed=False)
    corner_vertex = faces.ravel()
    fans = np.unique(np.stack([corner_vertex, labels], axis=1), axis=0)
    return int((np.bincount(fans[:, 0], minlength=n_vertices) > 1).sum())
