"""Demo object meshes the project generates itself (no downloads): chair, mug, ball, bench, and a 200k-face knot.

Each is Y-up in metres, in its own local frame (the frame a client sends), and tessellated finely
enough (edges of a few cm at most) that per-vertex contact can outline a contact patch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import trimesh

from ivlm_core.mesh import TriangleMesh, validate_mesh


@dataclass(frozen=True)
class DemoObject:
    """A generated object: `label` is the word used in prompts (InteractVLM uses COCO-style names)."""

    name: str
    label: str
    mesh: TriangleMesh


def _combine(parts: list[trimesh.Trimesh], max_edge: float) -> tuple[np.ndarray, np.ndarray]:
    vertices, faces, offset = [], [], 0
    for part in parts:
        v, f = trimesh.remesh.subdivide_to_size(part.vertices, part.faces, max_edge=max_edge, max_iter=12)
        vertices.append(v)
        faces.append(f + offset)
        offset += len(v)
    return np.concatenate(vertices), np.concatenate(faces)


def _box(size: tuple[float, float, float], centre: tuple[float, float, float]) -> trimesh.Trimesh:
    return trimesh.creation.box(extents=size, transform=trimesh.transformations.translation_matrix(centre))


def _tube(path: np.ndarray, radius: float, around: int, closed: bool) -> tuple[np.ndarray, np.ndarray]:
    """A tube of `around` sides swept along a polyline [S, 3]; open tubes get flat end caps."""
    segments = len(path)
    if closed:
        tangent = np.roll(path, -1, axis=0) - np.roll(path, 1, axis=0)
    else:
        tangent = np.gradient(path, axis=0)
    tangent /= np.linalg.norm(tangent, axis=1, keepdims=True)
    side = np.cross(tangent, [0.0, 1.0, 0.0])
    side = np.where(np.linalg.norm(side, axis=1, keepdims=True) > 1e-6, side, np.cross(tangent, [1.0, 0.0, 0.0]))
    side /= np.linalg.norm(side, axis=1, keepdims=True)
    up = np.cross(tangent, side)
    angle = np.linspace(0.0, 2 * np.pi, around, endpoint=False)
    ring = np.cos(angle)[None, :, None] * side[:, None, :] + np.sin(angle)[None, :, None] * up[:, None, :]
    vertices = (path[:, None, :] + radius * ring).reshape(-1, 3)
    rings = segments if closed else segments - 1
    i = np.arange(rings)[:, None]
    j = np.arange(around)[None, :]
    a = i * around + j
    b = ((i + 1) % segments) * around + j
    c = ((i + 1) % segments) * around + (j + 1) % around
    d = i * around + (j + 1) % around
    # Wound so normals point away from the path (checked by a positive volume in the tests).
    faces = np.concatenate([np.stack([a, c, b], -1).reshape(-1, 3), np.stack([a, d, c], -1).reshape(-1, 3)])
    if not closed:  # fan caps around a centre vertex at each end, wound to face outwards
        start, end = len(vertices), len(vertices) + 1
        vertices = np.concatenate([vertices, path[:1], path[-1:]])
        ring0 = np.arange(around)
        ring1 = (segments - 1) * around + ring0
        caps = [
            np.stack([np.full(around, start), np.roll(ring0, -1), ring0], -1),
            np.stack([np.full(around, end), ring1, np.roll(ring1, -1)], -1),
        ]
        faces = np.concatenate([faces, *caps])
    return vertices, faces


def chair() -> DemoObject:
    """A dining chair, 0.45 m seat height, facing +Z (the backrest is at -Z). Origin on the floor."""
    seat_h, seat, thick, leg = 0.45, 0.46, 0.04, 0.04
    half = seat / 2 - leg / 2
    parts = [_box((seat, thick, seat), (0.0, seat_h - thick / 2, 0.0))]
    for x in (-half, half):
        for z in (-half, half):
            parts.append(_box((leg, seat_h - thick, leg), (x, (seat_h - thick) / 2, z)))
    back_h = 0.45
    parts.append(_box((seat, back_h, thick), (0.0, seat_h + back_h / 2, -seat / 2 + thick / 2)))
    vertices, faces = _combine(parts, max_edge=0.025)
    return DemoObject("demo_chair", "chair", validate_mesh(vertices, faces, name="demo_chair"))


def mug() -> DemoObject:
    """A 10 cm mug with a handle on its +X side. Origin at the centre of its base."""
    radius, height, wall = 0.042, 0.10, 0.005
    # Closed profile (r, y) revolved about Y: outer wall up, rim, inner wall down, inner floor.
    profile = np.array(
        [[0.0, 0.0], [radius, 0.0], [radius, height], [radius - wall, height], [radius - wall, wall], [0.0, wall]]
    )
    body = trimesh.creation.revolve(profile, sections=64)  # trimesh revolves about +Z ...
    body.apply_transform(trimesh.transformations.rotation_matrix(-np.pi / 2, [1, 0, 0]))  # ... so turn Z to Y
    # A C-shaped handle in the XY plane whose capped ends sit inside the wall, clear of the cavity.
    arc = np.radians(np.linspace(-105.0, 105.0, 48))
    arc_radius = 0.032
    path = np.stack([radius + arc_radius * np.cos(arc) - 0.002, height / 2 + arc_radius * np.sin(arc), 0 * arc], -1)
    handle = trimesh.Trimesh(*_tube(path, 0.007, 16, closed=False), process=False)
    vertices, faces = _combine([body, handle], max_edge=0.01)
    return DemoObject("demo_mug", "cup", validate_mesh(vertices, faces, name="demo_mug"))


def ball() -> DemoObject:
    """A football-sized ball, radius 0.11 m, centred on the origin."""
    sphere = trimesh.creation.icosphere(subdivisions=4, radius=0.11)
    return DemoObject("demo_ball", "sports_ball", validate_mesh(sphere.vertices, sphere.faces, name="demo_ball"))


def bench() -> DemoObject:
    """A 1.5 m long, 0.4 m wide bench with a 0.45 m high seat, long along X. Origin on the floor."""
    seat_h, length, width, thick, leg = 0.45, 1.5, 0.40, 0.05, 0.05
    parts = [_box((length, thick, width), (0.0, seat_h - thick / 2, 0.0))]
    for x in (-length / 2 + 0.08, length / 2 - 0.08):
        for z in (-width / 2 + leg, width / 2 - leg):
            parts.append(_box((leg, seat_h - thick, leg), (x, (seat_h - thick) / 2, z)))
    vertices, faces = _combine(parts, max_edge=0.03)
    return DemoObject("demo_bench", "bench", validate_mesh(vertices, faces, name="demo_bench"))


def knot_200k() -> DemoObject:
    """A (2, 3) torus knot tube with exactly 200,000 triangles: a dense, self-occluding stress test."""
    segments, around = 1000, 100
    t = np.linspace(0.0, 2 * np.pi, segments, endpoint=False)
    p, q, big_r, small_r, tube = 2, 3, 0.22, 0.09, 0.045
    centre = np.stack(
        [
            (big_r + small_r * np.cos(q * t)) * np.cos(p * t),
            small_r * np.sin(q * t),
            (big_r + small_r * np.cos(q * t)) * np.sin(p * t),
        ],
        axis=-1,
    )
    vertices, faces = _tube(centre, tube, around, closed=True)
    return DemoObject("demo_knot_200k", "knot", validate_mesh(vertices, faces, name="demo_knot_200k"))


DEMO_OBJECTS: dict[str, Callable[[], DemoObject]] = {
    "chair": chair,
    "mug": mug,
    "ball": ball,
    "bench": bench,
    "knot_200k": knot_200k,
}
