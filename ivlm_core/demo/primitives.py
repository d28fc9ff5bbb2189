"""Meshes as artists bring them, generated here (no downloads): Blender primitives, low-poly and CAD props, a scan.

The demo objects in `objects.py` are dense and evenly triangulated; real assets mostly are not. These
generators reproduce the triangle shapes of the usual sources, for benchmarks and tests of the object path:

* Blender primitives with Blender's default sizes and segment counts (`cube`, `plane`, `uv_sphere`,
  `cylinder`, `cone`, `torus`). Side quads are split into 2 long triangles and n-gon caps are fanned from
  one corner, as an n-gon becomes triangles on export (the slivers that make rendering cost depend on shape).
* `lowpoly_chair`: a game-style chair of long boxes (240 triangles), the demo chair's size and frame.
* `cad_part`: a drilled bracket with a boss, faces triangulated as CAD exporters do (fans of long triangles).
* `scan_like`: a noisy, dense, closed stone-like surface of about 1.3 M triangles.

Conventions as in `objects.py`: metres, Y up, each mesh in its own local frame. Blender's Z-up axes map to
Y-up (a Blender cylinder along Z is along Y here). Every closed mesh has outward normals.
"""

from __future__ import annotations

import itertools

import numpy as np

from ivlm_core.mesh import TriangleMesh, validate_mesh


def _quads_to_triangles(quads: np.ndarray) -> np.ndarray:
    """[Q, 4] quads (a, b, c, d) -> [2Q, 3] triangles (a, b, c), (a, c, d), as an exporter splits them."""
    return np.concatenate([quads[:, [0, 1, 2]], quads[:, [0, 2, 3]]])


def _fan(polygon: np.ndarray) -> np.ndarray:
    """An n-gon [n] (vertex indices, counter-clockwise seen from outside) -> [n - 2, 3] triangles fanned from corner 0."""
    k = np.arange(1, len(polygon) - 1)
    return np.stack([np.full_like(k, polygon[0]), polygon[k], polygon[k + 1]], -1)


def _ring(sections: int, radius: float, y: float) -> np.ndarray:
    """`sections` points on a circle in the XZ plane at height y, counter-clockwise seen from +Y."""
    angle = np.linspace(0.0, 2 * np.pi, sections, endpoint=False)
    return np.stack([radius * np.cos(angle), np.full(sections, y), -radius * np.sin(angle)], -1)


def _side_quads(bottom: np.ndarray, top: np.ndarray) -> np.ndarray:
    """Quads joining two rings of vertex indices (same count), wound to face away from the axis."""
    nxt = np.roll(bottom, -1)
    return np.stack([bottom, nxt, np.roll(top, -1), top], -1)


def cube(size: float = 2.0) -> TriangleMesh:
    """Blender's default cube: edge `size` (2 m), centred on the origin, 12 triangles."""
    corners = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], dtype=np.float64) * size / 2
    # Index = 4 * (x > 0) + 2 * (y > 0) + (z > 0); quads counter-clockwise seen from outside.
    quads = np.array(
        [[0, 1, 3, 2], [4, 6, 7, 5], [0, 4, 5, 1], [2, 3, 7, 6], [0, 2, 6, 4], [1, 5, 7, 3]], dtype=np.int64
    )
    return validate_mesh(corners, _quads_to_triangles(quads), name="cube")


def plane(size: float = 2.0) -> TriangleMesh:
    """Blender's default plane: `size` x `size` (2 m) in the XZ plane facing +Y, 2 triangles, no thickness."""
    h = size / 2
    vertices = np.array([[-h, 0.0, h], [h, 0.0, h], [h, 0.0, -h], [-h, 0.0, -h]])
    return validate_mesh(vertices, _quads_to_triangles(np.array([[0, 1, 2, 3]])), name="plane")


def uv_sphere(segments: int = 32, rings: int = 16, radius: float = 1.0) -> TriangleMesh:
    """Blender's UV sphere (32 segments, 16 rings, radius 1 m): triangle fans at the poles, split quads between."""
    polar = np.linspace(0.0, np.pi, rings + 1)[1:-1]  # the rings - 1 latitude circles between the poles
    vertices = [np.array([[0.0, radius, 0.0]])]
    for theta in polar:
        vertices.append(_ring(segments, radius * np.sin(theta), radius * np.cos(theta)))
    vertices.append(np.array([[0.0, -radius, 0.0]]))
    ring = [1 + i * segments + np.arange(segments) for i in range(rings - 1)]
    top, bottom = 0, 1 + (rings - 1) * segments
    faces = [np.stack([np.full(segments, top), ring[0], np.roll(ring[0], -1)], -1)]
    for upper, lower in itertools.pairwise(ring):
        faces.append(_quads_to_triangles(_side_quads(lower, upper)))
    faces.append(np.stack([np.full(segments, bottom), np.roll(ring[-1], -1), ring[-1]], -1))
    return validate_mesh(np.concatenate(vertices), np.concatenate(faces), name="uv_sphere")


def cylinder(sections: int = 32, radius: float = 1.0, height: float = 2.0) -> TriangleMesh:
    """Blender's cylinder (default 32 sections, radius 1 m, depth 2 m) along Y, centred on the origin.

    The side is `sections` quads split into 2 long triangles each; both caps are n-gons fanned from one
    corner, so a cylinder has 4 * sections - 4 triangles. A 10 cm mug: `cylinder(32, 0.042, 0.10)`.
    """
    if sections < 3:
        raise ValueError("a cylinder needs at least 3 sections")
    vertices = np.concatenate([_ring(sections, radius, -height / 2), _ring(sections, radius, height / 2)])
    bottom, top = np.arange(sections), sections + np.arange(sections)
    faces = [_quads_to_triangles(_side_quads(bottom, top)), _fan(top), _fan(bottom[::-1])]
    return validate_mesh(vertices, np.concatenate(faces), name=f"cylinder_{sections}")


def cone(sections: int = 32, radius: float = 1.0, height: float = 2.0) -> TriangleMesh:
    """Blender's cone (32 vertices, radius 1 m, depth 2 m) along Y, centred: long side triangles to the apex
    and a fanned n-gon base (2 * sections - 2 triangles)."""
    vertices = np.concatenate([_ring(sections, radius, -height / 2), [[0.0, height / 2, 0.0]]])
    base = np.arange(sections)
    side = np.stack([base, np.roll(base, -1), np.full(sections, sections)], -1)
    return validate_mesh(vertices, np.concatenate([side, _fan(base[::-1])]), name="cone")


def torus(
    major_segments: int = 48, minor_segments: int = 12, major_radius: float = 1.0, minor_radius: float = 0.25
) -> TriangleMesh:
    """Blender's torus (48 x 12 segments, radii 1 m and 0.25 m) around Y, centred: 1152 triangles."""
    around = np.linspace(0.0, 2 * np.pi, major_segments, endpoint=False)[:, None]
    tube = np.linspace(0.0, 2 * np.pi, minor_segments, endpoint=False)[None, :]
    r = major_radius + minor_radius * np.cos(tube) + 0 * around  # [major, minor]
    height = minor_radius * np.sin(tube) + 0 * around
    vertices = np.stack([r * np.cos(around), height, -r * np.sin(around)], -1).reshape(-1, 3)
    i = np.arange(major_segments)[:, None]
    j = np.arange(minor_segments)[None, :]
    a = i * minor_segments + j
    b = ((i + 1) % major_segments) * minor_segments + j
    c = ((i + 1) % major_segments) * minor_segments + (j + 1) % minor_segments
    d = i * minor_segments + (j + 1) % minor_segments
    quads = np.stack([a, b, c, d], -1).reshape(-1, 4)
    return validate_mesh(vertices, _quads_to_triangles(quads), name="torus")


def _boxes(boxes: list[tuple[tuple[float, float, float], tuple[float, float, float]]]) -> tuple[np.ndarray, np.ndarray]:
    """Separate (size, centre) boxes as one vertex/face list, 12 triangles each (Blender cubes scaled long)."""
    unit = cube(1.0)
    vertices = [unit.vertices * np.array(size) + np.array(centre) for size, centre in boxes]
    faces = [unit.faces + 8 * k for k in range(len(boxes))]
    return np.concatenate(vertices), np.concatenate(faces)


def lowpoly_chair() -> TriangleMesh:
    """A low-poly dining chair of 20 long boxes (240 triangles): the demo chair's size and frame.

    0.45 m seat height, 0.46 m square seat, backrest to 0.9 m at -Z (the chair faces +Z), origin on the floor.
    Parts overlap where they join, as in game assets (no boolean union).
    """
    seat_h, seat, thick, leg = 0.45, 0.46, 0.03, 0.035
    half = seat / 2 - leg / 2
    top = 0.9
    parts: list[tuple[tuple[float, float, float], tuple[float, float, float]]] = []
    for x in (-half, half):
        parts.append(((leg, seat_h - thick, leg), (x, (seat_h - thick) / 2, half)))  # front legs
        parts.append(((leg, top, leg), (x, top / 2, -half)))  # back legs run up as the backrest posts
    parts.append(((seat, thick, seat), (0.0, seat_h - thick / 2, 0.0)))  # seat board
    apron_y, apron_h, span = seat_h - thick - 0.035, 0.07, seat - 2 * leg
    for z in (-half, half):
        parts.append(((span, apron_h, 0.02), (0.0, apron_y, z)))
    for x in (-half, half):
        parts.append(((0.02, apron_h, span), (x, apron_y, 0.0)))
    for x in (-half, half):  # side stretchers low down
        parts.append(((0.02, 0.025, span), (x, 0.12, 0.0)))
    for z in (-half, half):  # front and back stretchers
        parts.append(((span, 0.025, 0.02), (0.0, 0.16, z)))
    parts.append(((span, 0.08, 0.025), (0.0, top - 0.05, -half)))  # top rail
    parts.append(((span, 0.04, 0.025), (0.0, seat_h + 0.12, -half)))  # lower back rail
    spindle_y0, spindle_y1 = seat_h + 0.14, top - 0.09
    for x in np.linspace(-span / 3, span / 3, 5):  # back spindles
        parts.append(((0.018, spindle_y1 - spindle_y0, 0.018), (float(x), (spindle_y0 + spindle_y1) / 2, -half)))
    vertices, faces = _boxes(parts)
    return validate_mesh(vertices, faces, name="lowpoly_chair")


def _annulus_fans(rect: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """Triangles filling between a rectangle [4] and a central hole ring [M] (M divisible by 4), CAD style.

    Both are vertex indices, counter-clockwise seen from the side the face looks to; rect[k] is the corner
    in angular quadrant k and hole[0] sits at angle 0. Each corner fans to a quarter of the hole, and each
    rectangle edge closes with one triangle to the hole vertex facing it: long thin triangles throughout.
    """
    quarter = len(hole) // 4
    faces = []
    for k in range(4):
        arc = hole[np.arange(k * quarter, (k + 1) * quarter + 1) % len(hole)]
        faces.append(np.stack([np.full(quarter, rect[k]), arc[1:], arc[:-1]], -1))
        faces.append(np.array([[rect[k - 1], rect[k], arc[0]]]))
    return np.concatenate(faces)


def cad_part(hole_sections: int = 96) -> TriangleMesh:
    """A drilled bracket (16 x 10 x 1.2 cm plate, 5 cm hole) with a 3 cm boss, as a CAD package exports it.

    Plate faces are fans of long triangles from the 4 corners to the hole's arc; the hole and boss walls are
    long thin quads split in two; the boss top is a fanned n-gon. Closed, outward normals, 16 cm long.
    """
    if hole_sections % 4:
        raise ValueError("hole_sections must be divisible by 4")
    length, width, thick, hole_r = 0.16, 0.10, 0.012, 0.025
    # Corner k lies in the angular quadrant k of _ring (x = cos a, z = -sin a), counter-clockwise from +Y.
    rect_xz = np.array(
        [[length / 2, -width / 2], [-length / 2, -width / 2], [-length / 2, width / 2], [length / 2, width / 2]]
    )
    parts_v, parts_f, offset = [], [], 0

    def add(vertices: np.ndarray, faces: np.ndarray) -> None:
        nonlocal offset
        parts_v.append(vertices)
        parts_f.append(faces + offset)
        offset += len(vertices)

    # Plate: top ring + corners at y = thick, bottom at 0.
    m = hole_sections
    top_hole, bottom_hole = _ring(m, hole_r, thick), _ring(m, hole_r, 0.0)
    corners_top = np.stack([rect_xz[:, 0], np.full(4, thick), rect_xz[:, 1]], -1)
    corners_bottom = corners_top * [1, 0, 1]
    plate_v = np.concatenate([top_hole, bottom_hole, corners_top, corners_bottom])
    th, bh = np.arange(m), m + np.arange(m)
    ct, cb = 2 * m + np.arange(4), 2 * m + 4 + np.arange(4)
    plate_f = [
        _annulus_fans(ct, th),  # top face, seen from +Y: counter-clockwise as built
        _annulus_fans(cb, bh)[:, ::-1],  # bottom face looks down: reversed
        _quads_to_triangles(_side_quads(cb, ct)),  # outer walls
        _quads_to_triangles(_side_quads(bh, th))[:, ::-1],  # hole wall faces the axis
    ]
    add(plate_v, np.concatenate(plate_f))
    # Boss: a closed cylinder standing on the plate's +X end (its base buried in the plate).
    boss = cylinder(32, radius=0.015, height=0.03)
    add(boss.vertices + [0.055, thick + 0.015 - 0.002, 0.0], boss.faces)
    return validate_mesh(np.concatenate(parts_v), np.concatenate(parts_f), name="cad_part")


def scan_like(faces: int = 1_300_000, seed: int = 0) -> TriangleMesh:
    """A scanned stone: a closed, noisy, dense surface of about `faces` triangles (1.3 M), 0.3 m across.

    A cube-sphere grid (6 * 2 * n^2 triangles for the n nearest to the request, welded at the seams) pushed
    out into a lumpy shape, with tangential jitter (uneven triangles) and 0.4 mm of radial noise.
    """
    n = max(2, round(np.sqrt(faces / 12)))
    rng = np.random.default_rng(seed)
    grid = np.arange(n + 1)
    gu, gw = np.meshgrid(grid, grid, indexing="ij")
    lattice, quads = [], []
    for axis in range(3):
        for side in (0, n):
            coords = np.zeros((n + 1, n + 1, 3), np.int64)
            coords[..., axis] = side
            coords[..., (axis + 1) % 3] = gu
            coords[..., (axis + 2) % 3] = gw
            base = sum(len(p) for p in lattice)
            idx = base + np.arange((n + 1) ** 2).reshape(n + 1, n + 1)
            quads.append(np.stack([idx[:-1, :-1], idx[1:, :-1], idx[1:, 1:], idx[:-1, 1:]], -1).reshape(-1, 4))
            lattice.append(coords.reshape(-1, 3))
    # Weld the shared cube edges: equal integer lattice points are one vertex.
    lattice_points = np.concatenate(lattice)
    _keys, first, inverse = np.unique(lattice_points @ [(n + 1) ** 2, n + 1, 1], return_index=True, return_inverse=True)
    tris = inverse.reshape(-1)[_quads_to_triangles(np.concatenate(quads))]
    direction = lattice_points[first] / n - 0.5
    # Tangential jitter within a quarter of the grid spacing: uneven triangles, none folded over.
    direction += rng.uniform(-0.25 / n, 0.25 / n, size=direction.shape) * (np.abs(direction) < 0.5 - 1e-9)
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    lumps = rng.normal(size=(6, 3))
    lumps /= np.linalg.norm(lumps, axis=1, keepdims=True)
    radius = 0.15 * (1 + 0.12 * np.sin(3.0 * direction @ lumps.T + rng.uniform(0, 2 * np.pi, 6)).sum(1) / 3)
    radius += rng.normal(scale=0.0004, size=radius.shape)
    vertices = direction * radius[:, None] * [1.0, 0.8, 1.1]
    # The shape stays star-shaped around the origin, so a face is outward when its normal points away from it.
    a, b, c = (vertices[tris[:, k]] for k in range(3))
    inward = np.einsum("ij,ij->i", np.cross(b - a, c - a), a + b + c) < 0
    tris[inward] = tris[inward][:, ::-1]
    return validate_mesh(vertices, tris, name="scan_like")
