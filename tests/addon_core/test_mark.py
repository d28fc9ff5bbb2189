"""Mark Contact's maths (blender_addon/core/mark.py) in plain Python: the falloff, distances along the surface
(against scipy's Dijkstra on a real mesh), the disc on a flat grid and on a thin slab (where a straight-line sphere
would leak to the other side), and how a click combines with the weights already there."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import trimesh
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import dijkstra

from blender_addon.core import mark

TOLERANCE = 1e-9


def _grid(n: int, spacing: float, z: float = 0.0) -> tuple[list[float], list[list[int]]]:
    """An n x n vertex grid in the plane z, centred on the origin, and its triangles (each square cut along the
    same diagonal)."""
    positions: list[float] = []
    for row in range(n):
        for column in range(n):
            positions += [(column - (n - 1) / 2) * spacing, (row - (n - 1) / 2) * spacing, z]
    faces: list[list[int]] = []
    for row in range(n - 1):
        for column in range(n - 1):
            i = row * n + column
            faces += [[i, i + 1, i + n + 1], [i, i + n + 1, i + n]]
    return positions, faces


def test_smooth_falloff() -> None:
    assert mark.smooth_falloff(-0.1) == 1.0 and mark.smooth_falloff(0.0) == 1.0
    assert mark.smooth_falloff(1.0) == 0.0 and mark.smooth_falloff(3.0) == 0.0
    assert mark.smooth_falloff(0.5) == pytest.approx(0.5, abs=TOLERANCE)
    samples = [mark.smooth_falloff(i / 100) for i in range(101)]
    assert all(a >= b for a, b in itertools.pairwise(samples))  # never rises
    step = 1e-4  # flat at the centre and at the rim: no crease where the disc starts or ends
    assert (1.0 - mark.smooth_falloff(step)) / step < 1e-3 and mark.smooth_falloff(1 - step) / step < 1e-3


def test_face_graph() -> None:
    assert mark.face_graph(4, [[0, 1, 2]]) == [[1, 2], [0, 2], [0, 1], []]
    assert mark.face_graph(4, [[0, 1, 2, 3]])[0] == [1, 2, 3]  # a quad: its edges and both diagonals
    with pytest.raises(ValueError, match="outside 0..2"):
        mark.face_graph(3, [[0, 1, 3]])


def test_distances_along_the_edges_match_scipy_on_a_real_mesh() -> None:
    sphere = trimesh.creation.icosphere(subdivisions=3, radius=0.2)
    positions = [float(v) for v in sphere.vertices.ravel()]
    graph = mark.face_graph(len(sphere.vertices), sphere.faces.tolist())  # triangles: the graph is the edges
    limit = 0.15
    ours = mark.surface_distances(positions, graph, [(0, 0.0)], limit)
    lengths = sphere.edges_unique_length
    n = len(sphere.vertices)
    matrix = coo_matrix((lengths, (sphere.edges_unique[:, 0], sphere.edges_unique[:, 1])), shape=(n, n))
    reference = dijkstra(matrix, directed=False, indices=0)
    expected = {i: d for i, d in enumerate(reference) if d < limit}
    assert set(ours) == set(expected)
    assert all(abs(ours[i] - expected[i]) < 1e-9 for i in expected)


def test_a_disc_on_a_flat_grid() -> None:
    spacing, radius = 0.01, 0.05
    positions, faces = _grid(21, spacing)
    graph = mark.face_graph(21 * 21, faces)
    centre = 10 * 21 + 10
    new = mark.mark(positions, graph, (0.0, 0.0, 0.0), None, {}, radius)  # no face: the nearest vertex seeds
    assert new[centre] == pytest.approx(1.0, abs=TOLERANCE)
    for index, weight in new.items():  # inside the rim, falling off with distance
        assert math.dist(mark.vertex(positions, index), (0, 0, 0)) < radius and 0.0 < weight <= 1.0
    along_x = [new.get(centre + k, 0.0) for k in range(6)]
    assert all(a > b for a, b in itertools.pairwise(along_x)) and along_x[5] == 0.0
    assert new[centre + 2] == pytest.approx(mark.smooth_falloff(0.4), abs=1e-6)  # straight along an edge: exact
    within = {i for i in range(21 * 21) if math.dist(mark.vertex(positions, i), (0, 0, 0)) < 0.03}
    assert within <= set(new)  # every vertex well inside the disc is marked


def test_the_clicked_face_seeds_the_distances() -> None:
    positions, faces = _grid(3, 0.1)
    graph = mark.face_graph(9, faces)
    point = (0.05, 0.05, 0.0)  # inside the square of vertices 4, 5, 7, 8 (the grid's upper-right quarter)
    new = mark.mark(positions, graph, point, [4, 5, 8], {}, radius=0.08)
    corner = math.dist(mark.vertex(positions, 4), point)
    assert new == pytest.approx({i: mark.smooth_falloff(corner / 0.08) for i in (4, 5, 8)}, abs=1e-9)
    assert mark.mark(positions, graph, point, [4, 5, 8], {}, radius=0.05) == {}  # every corner past the rim


def test_a_disc_stays_on_the_clicked_side_of_a_thin_slab() -> None:
    """Two 1 cm apart grids joined at their rim: a 5 cm disc on top never reaches the bottom (a sphere would)."""
    n, spacing = 21, 0.01
    top, top_faces = _grid(n, spacing, 0.005)
    bottom, bottom_faces = _grid(n, spacing, -0.005)
    positions = top + bottom
    faces = top_faces + [[i + n * n for i in face] for face in bottom_faces]
    rim = [(i, i + 1) for i in range(n - 1)] + [(i * n, (i + 1) * n) for i in range(n - 1)]  # two sides ...
    rim += [(i + n * (n - 1), i + 1 + n * (n - 1)) for i in range(n - 1)]
    rim += [(i * n + n - 1, (i + 1) * n + n - 1) for i in range(n - 1)]  # ... and the other two
    faces += [[a, b, b + n * n, a + n * n] for a, b in rim]  # quads joining top and bottom around the rim
    graph = mark.face_graph(2 * n * n, faces)
    new = mark.mark(positions, graph, (0.0, 0.0, 0.005), None, {}, radius=0.05)
    assert new and all(i < n * n for i in new)
    straight = [i for i in range(n * n, 2 * n * n) if math.dist(mark.vertex(positions, i), (0, 0, 0.005)) < 0.05]
    assert straight  # what a straight-line sphere would have caught


def test_adding_keeps_the_larger_weight_and_removing_subtracts_clamped() -> None:
    disc = {0: 1.0, 1: 0.5, 2: 0.2}
    assert mark.combine({0: 0.3, 1: 0.9}, disc, remove=False) == {0: 1.0, 1: 0.9, 2: 0.2}
    assert mark.combine({0: 0.3, 1: 0.9}, disc, remove=True) == pytest.approx({0: 0.0, 1: 0.4, 2: 0.0})
    assert mark.combine({}, {0: 1.7}, remove=False) == {0: 1.0}
    with pytest.raises(ValueError, match="positive"):
        mark.disc_weights({0: 0.0}, 0.0)


def test_nearest_vertex() -> None:
    positions = [0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 2.0, 0.0]
    assert mark.nearest_vertex(positions, (0.9, 0.2, 0.0)) == 1
    with pytest.raises(ValueError, match="without vertices"):
        mark.nearest_vertex([], (0.0, 0.0, 0.0))


def test_the_disc_is_measured_in_the_frame_given() -> None:
    """The caller passes world positions; a mesh scaled 2x in the world gives half as many grid steps per radius."""
    positions, faces = _grid(21, 0.01)
    graph = mark.face_graph(21 * 21, faces)
    scaled = list(np.asarray(positions) * 2.0)
    small = mark.mark(scaled, graph, (0.0, 0.0, 0.0), None, {}, 0.05)
    large = mark.mark(positions, graph, (0.0, 0.0, 0.0), None, {}, 0.05)
    assert len(small) < len(large)
