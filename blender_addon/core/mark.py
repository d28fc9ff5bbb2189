"""Mark Contact's maths: a soft disc of weight around a clicked point of a mesh, added to a contact group (or taken
away from it), without bpy.

Distances are measured along the mesh's faces from the vertices of the clicked face ("geodesic-ish": shortest
paths between vertices that share a face), not in a straight line: a disc clicked on a thin seat or on a palm stays on the side that was clicked, where a sphere would
also catch the underside or the back of the hand. Standard library only (the add-on ships no numpy); a disc touches
a few hundred vertices, so plain Python is fast enough, and the graph is built once per mesh.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

Point = tuple[float, float, float]


class Positions(Protocol):
    """Flat xyz of a mesh's vertices, vertex i at [3i], [3i+1], [3i+2]: a list, an array.array, or a view that
    computes them when read (the add-on's world positions)."""

    def __getitem__(self, index: int, /) -> float: ...

    def __len__(self) -> int: ...


MIN_WEIGHT = 1e-4  # below this a weight is no contact (float32 vertex-group weights: rounding residue)


def smooth_falloff(t: float) -> float:
    """Weight at `t` = distance / radius: 1 at the centre, 0 from the rim on, smooth at both ends (1 - smoothstep,
    Blender's "Smooth" brush falloff)."""
    if t <= 0.0:
        return 1.0
    if t >= 1.0:
        return 0.0
    return 1.0 - t * t * (3.0 - 2.0 * t)


def face_graph(vertex_count: int, faces: Iterable[Sequence[int]]) -> list[list[int]]:
    """Each vertex's neighbours: every vertex it shares a face with (a triangle's edges; a quad's edges and both
    its diagonals, so distances across a quad grid are not measured in city blocks). Raises ValueError for an
    index out of range."""
    neighbours: list[set[int]] = [set() for _ in range(vertex_count)]
    for face in faces:
        for a in face:
            if not 0 <= a < vertex_count:
                raise ValueError(f"a face names vertex {a}, outside 0..{vertex_count - 1}")
            neighbours[a].update(b for b in face if b != a)
    return [sorted(n) for n in neighbours]


def vertex(positions: Positions, index: int) -> Point:
    """Vertex `index` of flat xyz `positions`."""
    return positions[3 * index], positions[3 * index + 1], positions[3 * index + 2]


def nearest_vertex(positions: Positions, point: Point) -> int:
    """The index of the vertex closest to `point` (flat xyz `positions`, at least one vertex)."""
    if len(positions) < 3:
        raise ValueError("a mesh without vertices has no nearest vertex")
    return min(range(len(positions) // 3), key=lambda i: math.dist(vertex(positions, i), point))


def seeds_around(positions: Positions, point: Point, face: Iterable[int] | None) -> list[tuple[int, float]]:
    """Where the distances start: the clicked face's vertices at their straight-line distance from the clicked
    point, or the nearest vertex when the face is not known (e.g. the ray hit a subdivided copy of the mesh)."""
    corners = list(face) if face is not None else [nearest_vertex(positions, point)]
    return [(i, math.dist(vertex(positions, i), point)) for i in corners]


def surface_distances(
    positions: Positions, graph: Sequence[Sequence[int]], seeds: Iterable[tuple[int, float]], limit: float
) -> dict[int, float]:
    """Shortest distances through the graph (straight segments between neighbours) from the seeds ((vertex, starting distance) pairs), for every vertex
    closer than `limit` (Dijkstra, stopped at the limit, so the cost is that of the disc, not of the mesh)."""
    best: dict[int, float] = {}
    queue = [(distance, index) for index, distance in seeds if distance < limit]
    heapq.heapify(queue)
    while queue:
        distance, index = heapq.heappop(queue)
        if index in best:
            continue
        best[index] = distance
        here = vertex(positions, index)
        for other in graph[index]:
            if other not in best:
                further = distance + math.dist(here, vertex(positions, other))
                if further < limit:
                    heapq.heappush(queue, (further, other))
    return best


def disc_weights(distances: Mapping[int, float], radius: float, strength: float = 1.0) -> dict[int, float]:
    """{vertex: weight} of the soft disc: `strength` times the smooth falloff of distance / radius; zeros left out."""
    if radius <= 0.0:
        raise ValueError(f"the radius must be positive, got {radius}")
    weights = {i: strength * smooth_falloff(d / radius) for i, d in distances.items()}
    return {i: w for i, w in weights.items() if w > 0.0}


def combine(current: Mapping[int, float], disc: Mapping[int, float], remove: bool) -> dict[int, float]:
    """The new weights of the disc's vertices: the larger of the two when adding (marking twice never stacks up
    past the disc), the current weight minus the disc's when removing; clamped to 0..1, and what is left under
    MIN_WEIGHT is 0 (removing a disc from where it was added leaves no float dust). `current` holds the group's
    weights (a vertex missing from it has weight 0)."""
    result = {}
    for index, weight in disc.items():
        old = current.get(index, 0.0)
        new = min(max(old - weight if remove else max(old, weight), 0.0), 1.0)
        result[index] = new if new >= MIN_WEIGHT else 0.0
    return result


def mark(
    positions: Positions,
    graph: Sequence[Sequence[int]],
    point: Point,
    face: Iterable[int] | None,
    current: Mapping[int, float],
    radius: float,
    remove: bool = False,
) -> dict[int, float]:
    """One click: the new weights of the vertices within `radius` (along the surface) of `point` on the mesh.

    positions: flat xyz of the mesh's vertices in the frame `point` and `radius` are in (world, metres);
    face: the clicked face's vertex indices, or None; current: the group's weights now."""
    distances = surface_distances(positions, graph, seeds_around(positions, point, face), radius)
    return combine(current, disc_weights(distances, radius), remove)
