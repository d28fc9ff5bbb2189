"""The generated artist-style assets: Blender's triangle counts, closed with outward normals, sized as stated."""

import numpy as np
import pytest
import trimesh

from ivlm_core.demo import primitives


def as_trimesh(mesh) -> trimesh.Trimesh:
    return trimesh.Trimesh(mesh.vertices, mesh.faces, process=False)


@pytest.mark.parametrize(
    ("make", "faces"),
    [
        (primitives.cube, 12),
        (primitives.uv_sphere, 960),
        (lambda: primitives.cylinder(32), 124),
        (lambda: primitives.cylinder(128), 508),
        (primitives.cone, 62),
        (primitives.torus, 1152),
        (primitives.lowpoly_chair, 240),
        (primitives.cad_part, 524),
        (lambda: primitives.scan_like(20_000), 6 * 2 * 41**2),
    ],
)
def test_closed_assets_have_outward_normals(make, faces):
    mesh = make()
    tm = as_trimesh(mesh)
    assert mesh.num_faces == faces
    assert tm.is_watertight and tm.is_winding_consistent
    assert tm.volume > 0  # outward normals
    assert not mesh.degenerate_face_mask().any()


def test_blender_sizes_and_the_mug_cylinder():
    assert np.allclose(np.ptp(primitives.cube().vertices, axis=0), 2.0)
    plane = primitives.plane()
    assert plane.num_faces == 2 and np.allclose(np.ptp(plane.vertices, axis=0), [2.0, 0.0, 2.0])
    mug = primitives.cylinder(32, radius=0.042, height=0.10)
    assert np.allclose(np.ptp(mug.vertices, axis=0), [0.084, 0.10, 0.084], atol=1e-3)
    # The caps are fanned n-gons: most cap triangles are slivers far longer than they are wide.
    cap = mug.faces[64:]
    tri = mug.vertices[cap]
    longest = np.linalg.norm(tri - np.roll(tri, 1, axis=1), axis=-1).max(1)
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    assert np.median(2 * area / longest**2) < 0.2


def test_lowpoly_chair_matches_the_demo_chair_frame():
    from ivlm_core.demo.objects import chair

    low, demo = primitives.lowpoly_chair(), chair().mesh
    assert 100 <= low.num_faces <= 500
    assert np.allclose(low.vertices.min(0), demo.vertices.min(0), atol=0.01)
    assert np.allclose(low.vertices.max(0), demo.vertices.max(0), atol=0.01)
    # The backrest is at -Z: points above the seat lie behind the centre.
    assert low.vertices[low.vertices[:, 1] > 0.6, 2].max() < 0


def test_scan_like_is_dense_noisy_and_about_the_requested_size():
    mesh = primitives.scan_like(50_000, seed=3)
    assert abs(mesh.num_faces - 50_000) / 50_000 < 0.02
    assert np.array_equal(mesh.faces, primitives.scan_like(50_000, seed=3).faces)
    edges = np.linalg.norm(mesh.vertices[mesh.faces] - mesh.vertices[np.roll(mesh.faces, 1, axis=1)], axis=-1)
    assert edges.std() / edges.mean() > 0.1  # uneven triangles, as from a scanner
