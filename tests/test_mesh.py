"""Bad meshes get clear errors; awkward but usable meshes get documented, tested behaviour."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from ivlm_core.demo.objects import mug
from ivlm_core.demo.primitives import cube, cylinder, plane
from ivlm_core.errors import MeshError
from ivlm_core.mesh import TriangleMesh, read_obj, review_object_mesh, validate_mesh

TRI = np.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0]])


@pytest.mark.parametrize(
    "vertices, faces, phrase",
    [
        (np.zeros((0, 3)), np.zeros((0, 3), int), "no vertices"),
        (TRI, np.zeros((0, 3), int), "no faces"),
        (TRI[:, :2], [[0, 1, 2]], "shape [N, 3]"),
        (
            np.array([[0, 0, 0], [1, np.nan, 0], [0, 1, 0]]),
            [[0, 1, 2]],
            "NaN or infinite coordinates (first: vertex 1)",
        ),
        (np.array([[0, 0, 0], [1, 0, np.inf], [0, 1, 0]]), [[0, 1, 2]], "NaN or infinite"),
        (TRI, [[0, 1, 4]], "refers to vertex 4, but the mesh has 4 vertices"),
        (TRI, [[0, -1, 2]], "refers to vertex -1"),
        (TRI, np.array([[0.0, 1.5, 2.0]]), "whole numbers"),
        (TRI, np.array([[0, 1]]), "2 corners"),
        (TRI, [[0, 1, 2], [2, 3]], "fewer than 3 corners"),
        (TRI, [[0, 0, 1], [1, 1, 2]], "every face has zero area"),
        (np.array([[0.0, 0, 0], [1, 0, 0], [2, 0, 0]]), [[0, 1, 2]], "zero area"),
        ("not numbers", [[0, 1, 2]], "numeric"),
    ],
)
def test_bad_meshes_raise_specific_errors(vertices, faces, phrase):
    with pytest.raises(MeshError) as info:
        validate_mesh(vertices, faces, name="chair")
    assert phrase in info.value.message
    assert info.value.message.startswith("chair:")  # the error names the mesh
    assert info.value.hint  # and says how to fix it
    assert info.value.code == "BAD_INPUT"


def test_quads_and_polygons_are_fan_triangulated_in_order():
    mesh = validate_mesh(TRI, [[0, 1, 3, 2]])
    assert mesh.faces.tolist() == [[0, 1, 3], [0, 3, 2]]
    ragged = validate_mesh(np.vstack([TRI, [[2.0, 0.5, 0]]]), [[0, 1, 2], [1, 4, 3, 2]])
    assert ragged.num_faces == 3
    assert ragged.num_vertices == 5  # vertex order and count untouched


def test_degenerate_faces_and_unused_vertices_are_kept():
    mesh = validate_mesh(np.vstack([TRI, [[5.0, 5, 5]]]), [[0, 1, 2], [1, 1, 3]])
    assert mesh.num_faces == 2 and mesh.num_vertices == 5
    assert mesh.degenerate_face_mask().tolist() == [False, True]


def test_face_limit_names_the_count_and_the_fix():
    faces = np.tile([[0, 1, 2]], (11, 1))
    with pytest.raises(MeshError) as info:
        validate_mesh(TRI, faces, max_faces=10)
    assert "11 triangles is more than the limit of 10" in info.value.message
    assert "Decimate" in info.value.hint


def test_default_limit_rejects_six_million_faces():
    faces = np.zeros((6_000_000, 3), dtype=np.int64)
    faces[:, 1], faces[:, 2] = 1, 2
    with pytest.raises(MeshError, match="6,000,000 triangles"):
        validate_mesh(TRI, faces)


@pytest.mark.slow
def test_two_million_faces_render_in_bounded_memory():
    # A 2M-triangle grid renders in 4 views within a fixed memory budget. Measured on this machine: the
    # process peaks at about 0.77 GB with the default chunking, and at 2.3 GB with 16x larger chunks.
    script = textwrap.dedent(
        r"""
        import re
        import numpy as np, torch
        from ivlm_core.mesh import validate_mesh
        from ivlm_core.render.renderer import render_mesh
        from ivlm_core.render.shading import position_colors
        from ivlm_core.render.views import OBJECT_VIEWS, normalize_object_vertices
        n = 1000
        g = np.linspace(-0.5, 0.5, n + 1)
        x, y = np.meshgrid(g, g)
        verts = np.stack([x.ravel(), y.ravel(), 0.1 * np.sin(8 * x.ravel())], -1)
        i = (np.arange(n)[:, None] * (n + 1) + np.arange(n)[None]).ravel()
        faces = np.concatenate([np.stack([i, i + 1, i + n + 2], -1), np.stack([i, i + n + 2, i + n + 1], -1)])
        mesh = validate_mesh(verts, faces)
        v = torch.tensor(normalize_object_vertices(mesh.vertices)[0], dtype=torch.float32)
        r = render_mesh(v, torch.tensor(mesh.faces), OBJECT_VIEWS.cameras(256), position_colors(v),
                        OBJECT_VIEWS.light_positions())
        # VmHWM is this process's own peak; ru_maxrss would include the parent's size at fork.
        peak_mb = int(re.search(r"VmHWM:\s+(\d+) kB", open("/proc/self/status").read()).group(1)) / 1024
        print(mesh.num_faces, float(r.mask.float().mean()), peak_mb)
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.split()
    assert int(out[0]) == 2_000_000
    assert float(out[1]) > 0.05  # the grid is visible
    assert float(out[2]) < 1100  # MB, whole process


def test_obj_reader_keeps_file_vertex_order(tmp_path):
    path = tmp_path / "quad.obj"
    path.write_text(
        "# a quad with UVs and normals, which general loaders split at seams\n"
        "v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\n"
        "vt 0 0\nvt 1 0\nvt 1 1\nvt 0 1\nvn 0 0 1\n"
        "f 1/1/1 2/2/1 3/3/1 4/4/1\n"
        "f -4 -2 -1\n"
    )
    mesh = read_obj(path)
    assert mesh.vertices.tolist() == [[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]]
    assert mesh.faces.tolist() == [[0, 1, 2], [0, 2, 3], [0, 2, 3]]
    assert mesh.name == "quad"


def test_obj_reader_errors(tmp_path):
    with pytest.raises(MeshError, match="file not found"):
        read_obj(tmp_path / "missing.obj")
    bad = tmp_path / "bad.obj"
    bad.write_text("v 0 0 0\nv 1 0 zero\n")
    with pytest.raises(MeshError, match="line 2"):
        read_obj(bad)
    only_points = tmp_path / "points.obj"
    only_points.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\n")
    with pytest.raises(MeshError, match="no faces"):
        read_obj(only_points)


def scaled(mesh: TriangleMesh, factor: float) -> TriangleMesh:
    return TriangleMesh(mesh.vertices * factor, mesh.faces, mesh.name)


def test_object_in_the_wrong_unit_is_not_placed_and_the_fix_is_named():
    ok = review_object_mesh(mug().mesh, "cup")
    assert ok.placement_blocker is None and ok.notes == ()
    in_cm = review_object_mesh(scaled(mug().mesh, 100), "cup")  # a 12 cm mug modelled in centimetres
    assert "12.1 m across" in in_cm.placement_blocker and "centimetres" in in_cm.placement_blocker
    assert (
        "apply the object's scale" in in_cm.placement_blocker
        and "contacts are still computed" in in_cm.placement_blocker
    )
    in_mm = review_object_mesh(scaled(mug().mesh, 500), "cup")  # the "50 m mug"
    assert "60.5 m across" in in_mm.placement_blocker
    shrunk = review_object_mesh(scaled(mug().mesh, 0.01), "cup")
    assert "kilometres, or scaled down" in shrunk.placement_blocker
    floor = review_object_mesh(plane(10.0), "floor")  # 2 huge triangles: not something placed against a body
    assert "10 m across" in floor.placement_blocker
    with pytest.raises(MeshError, match="a point, not a shape") as info:
        review_object_mesh(scaled(mug().mesh, 1e-5), "cup")
    assert "Ctrl+A" in info.value.hint


def test_inside_out_closed_mesh_is_rewound_and_an_open_one_is_left_as_sent():
    original = mug().mesh
    flipped = TriangleMesh(original.vertices, original.faces[:, ::-1].copy(), "mug")
    review = review_object_mesh(flipped, "cup")
    assert np.array_equal(review.mesh.faces, original.faces)  # re-wound, same vertices in the same order
    assert np.array_equal(review.mesh.vertices, original.vertices)
    assert any("inside out" in n and "Recalculate Outside" in n for n in review.notes)
    assert review.placement_blocker is None
    # A tube without caps has no inside: whichever way it is wound, it is left alone.
    tube = cylinder(64, 0.04, 0.1)
    sides = TriangleMesh(tube.vertices, tube.faces[:128][:, ::-1].copy(), "tube")
    open_review = review_object_mesh(sides, "cup")
    assert np.array_equal(open_review.mesh.faces, sides.faces)
    assert not any("inside out" in n for n in open_review.notes)


def test_zero_area_and_coarse_faces_are_noted_with_the_fix():
    original = mug().mesh
    repeated = np.repeat(original.faces[:300, :1], 3, axis=1)  # 300 faces with one corner three times
    degenerate = TriangleMesh(original.vertices, np.concatenate([original.faces, repeated]), "mug")
    notes = review_object_mesh(degenerate, "cup").notes
    assert any("300 of" in n and "zero area" in n and "Degenerate Dissolve" in n for n in notes)
    coarse = review_object_mesh(scaled(cube(), 0.2), "box").notes  # 8 vertices: contact can only be that fine
    assert any("per vertex" in n and "Subdivide" in n for n in coarse)


def test_closed_orientation_needs_a_closed_mesh_wound_one_way_in_every_part():
    from ivlm_core.mesh import closed_orientation

    box = cube(1.0)
    assert closed_orientation(box.vertices, box.faces) == 1
    assert closed_orientation(box.vertices, box.faces[:, ::-1]) == -1  # inside out: every face re-wound
    sheet = plane()
    assert closed_orientation(sheet.vertices, sheet.faces) == 0  # open: no inside
    assert closed_orientation(box.vertices, box.faces[1:]) == 0  # a face missing
    # Two parts wound opposite ways: neither side may be dropped everywhere.
    other = box.vertices + [3.0, 0.0, 0.0]
    vertices, faces = np.concatenate([box.vertices, other]), np.concatenate([box.faces, box.faces[:, ::-1] + 8])
    assert closed_orientation(vertices, faces) == 0
    assert closed_orientation(vertices, np.concatenate([box.faces, box.faces + 8])) == 1
    # Flat and closed (a double-sided sheet): zero volume, so no winding to trust.
    assert closed_orientation(sheet.vertices, np.concatenate([sheet.faces, sheet.faces[:, ::-1]])) == 0
    assert TriangleMesh(box.vertices, box.faces).orientation == 1
