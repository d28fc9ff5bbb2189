"""The Blender test environment: bpy runs headless and keeps what the add-on will build.

These run in each Blender environment (`.venv-blender`, `-oldest`, `-newest`), separately from the pipeline tests. They check the
facts later add-on code relies on: mesh building from arrays at SMPL-X size, vertex groups with
weights, and a USD round trip that keeps vertex order and contact weights.
"""

from pathlib import Path

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")


def _grid_mesh(name: str, n: int):
    g = np.linspace(-1.0, 1.0, n)
    x, y = np.meshgrid(g, g)
    verts = np.stack([x.ravel(), y.ravel(), np.zeros(n * n)], -1).astype(np.float32)
    i = (np.arange(n - 1)[:, None] * n + np.arange(n - 1)[None]).ravel()
    faces = np.concatenate([np.stack([i, i + 1, i + n + 1], -1), np.stack([i, i + n + 1, i + n], -1)]).astype(np.int32)
    mesh = bpy.data.meshes.new(name)
    mesh.vertices.add(len(verts))
    mesh.vertices.foreach_set("co", verts.ravel())
    mesh.loops.add(faces.size)
    mesh.loops.foreach_set("vertex_index", faces.ravel())
    mesh.polygons.add(len(faces))
    mesh.polygons.foreach_set("loop_start", np.arange(0, faces.size, 3, dtype=np.int32))
    mesh.update(calc_edges=True)
    obj = bpy.data.objects.new(name, mesh)
    bpy.context.scene.collection.objects.link(obj)
    return obj, verts, faces


def test_headless_bpy_version_is_one_the_manifest_claims():
    manifest = (Path(__file__).resolve().parents[2] / "blender_addon" / "blender_manifest.toml").read_text()
    oldest = next(line for line in manifest.splitlines() if line.startswith("blender_version_min"))
    minimum = tuple(int(part) for part in oldest.split('"')[1].split("."))
    assert bpy.app.background
    assert tuple(bpy.app.version) >= minimum


def test_mesh_and_contact_group_survive_usd_round_trip(tmp_path):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    obj, verts, faces = _grid_mesh("contact_grid", 102)  # 10,404 vertices, about SMPL-X's size
    assert len(obj.data.vertices) == 102 * 102 and len(obj.data.polygons) == len(faces)
    group = obj.vertex_groups.new(name="contact_chair")
    weights = np.linspace(0.0, 1.0, len(verts))
    touched = np.flatnonzero(weights > 0.5)
    for w in np.unique(np.round(weights[touched], 3)):  # one add() per distinct weight is the fast path
        group.add(touched[np.round(weights[touched], 3) == w].tolist(), float(w), "REPLACE")
    path = tmp_path / "scene.usdc"
    bpy.ops.wm.usd_export(filepath=str(path))
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.wm.usd_import(filepath=str(path))
    imported = [o for o in bpy.data.objects if o.type == "MESH"]
    assert len(imported) == 1
    mesh = imported[0].data
    co = np.zeros(len(mesh.vertices) * 3, dtype=np.float32)
    mesh.vertices.foreach_get("co", co)
    # USD keeps vertex order; Blender's Z-up/Y-up handling may rotate the object, not the mesh data.
    assert np.allclose(co.reshape(-1, 3), verts, atol=1e-6)
    # Plain vertex groups come back from USD as float attributes with the same name.
    attribute = mesh.attributes["contact_chair"]
    values = np.zeros(len(mesh.vertices), dtype=np.float32)
    attribute.data.foreach_get("value", values)
    assert np.allclose(values[touched], np.round(weights[touched], 3), atol=1e-6)
    assert np.all(values[weights <= 0.5] == 0)
