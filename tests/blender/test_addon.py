"""The add-on in real Blender (bpy 5.0.1, headless) against the real server on a random loopback port (DEMO).

Built with build_addon.py, installed as an extension, then: Estimate Contact on a scene with a reference image
and a mesh; the results (body, groups, weights, placed object, camera, provenance); Weight Paint entry; Refit;
Reset; exports with the sidecar, re-imported.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

bpy = pytest.importorskip("bpy")
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
import build_addon  # noqa: E402
from server.process import launch  # noqa: E402

MAIN_PYTHON = ROOT / ".venv" / "bin" / "python"
ADDON = "bl_ext.user_default.interactvlm_contact"


@pytest.fixture(scope="module")
def server(tmp_path_factory):  # noqa: ANN001, ANN201
    if not MAIN_PYTHON.exists():
        pytest.skip("the server environment (.venv) is not built; ./test.sh builds it")
    env = {"IVLM_MODELS_DIR": str(tmp_path_factory.mktemp("no-models"))}
    process = launch(tmp_path_factory.mktemp("server-data"), ["--demo"], env, python=str(MAIN_PYTHON))
    yield process
    process.stop()


@pytest.fixture(scope="module")
def addon(tmp_path_factory, server):  # noqa: ANN001, ANN201
    zip_path = build_addon.build(ROOT / "blender_addon", tmp_path_factory.mktemp("dist"))
    bpy.ops.wm.read_homefile(use_empty=True)
    result = bpy.ops.extensions.package_install_files(filepath=str(zip_path), repo="user_default",
                                                      enable_on_install=True)  # fmt: skip
    assert result == {"FINISHED"}
    prefs = bpy.context.preferences.addons[ADDON].preferences
    prefs.server_url = server.url
    prefs.read_timeout = 60.0
    return prefs


def _scene(tmp_path: Path) -> tuple[bpy.types.Object, bpy.types.Object]:
    """An empty file with a reference photo (an Image Empty) and a ball-sized sphere, selected."""
    bpy.ops.wm.read_homefile(use_empty=True)
    image = bpy.data.images.new("photo", 320, 240)
    pixels = [0.0] * (320 * 240 * 4)
    for i in range(320 * 240):
        x, y = i % 320, i // 320
        pixels[4 * i: 4 * i + 4] = [x / 320, y / 240, 0.5 if (x // 20 + y // 20) % 2 else 0.2, 1.0]
    image.pixels.foreach_set(pixels)
    path = tmp_path / "photo.png"
    image.filepath_raw = str(path)
    image.file_format = "PNG"
    image.save()
    photo = bpy.data.objects.new("photo", None)
    photo.empty_display_type = "IMAGE"
    photo.data = bpy.data.images.load(str(path))
    bpy.context.scene.collection.objects.link(photo)
    bpy.ops.mesh.primitive_uv_sphere_add(radius=0.11, segments=24, ring_count=12)
    ball = bpy.context.active_object
    ball.name = "sports_ball"
    for obj in bpy.context.view_layer.objects:
        obj.select_set(obj is ball)
    return photo, ball


def test_estimate_paint_refit_reset_export(addon, tmp_path) -> None:  # noqa: ANN001
    photo, ball = _scene(tmp_path)
    assert bpy.ops.ivlm.check_server() == {"FINISHED"}
    assert "DEMO" in bpy.context.window_manager.ivlm.server_status
    assert bpy.ops.ivlm.estimate_contact("EXEC_DEFAULT") == {"FINISHED"}, bpy.context.window_manager.ivlm.last_error

    run = bpy.data.collections["InteractVLM"].children[-1]
    assert run["ivlm_demo"] is True and len(run["ivlm_job_id"]) == 32
    body = next(o for o in run.objects if o.get("ivlm_role") == "body")
    placed = next(o for o in run.objects if o.get("ivlm_role") == "object")
    camera = next(o for o in run.objects if o.get("ivlm_role") == "camera")
    assert len(body.data.vertices) == 10475 and len(body.data.polygons) == 20908
    assert "DEMO" in body.name
    assert placed is not ball and placed.data is not ball.data and placed["ivlm_label"] == "sports ball"
    assert len(placed.data.vertices) == len(ball.data.vertices)
    group = "contact_sports_ball"
    assert group in body.vertex_groups and group in placed.vertex_groups
    prediction = body.data.attributes["ivlm_pred_" + group]
    values = [0.0] * len(body.data.vertices)
    prediction.data.foreach_get("value", values)
    member = [(v.index, g.weight) for v in body.data.vertices for g in v.groups if g.group == body.vertex_groups[group].index]
    assert member, "no body vertex is in the contact group"
    assert all(abs(w - values[i]) <= 1 / 255 + 1e-6 and values[i] > 0.5 for i, w in member)
    assert "ivlm_contact_color" in body.data.color_attributes
    assert camera.type == "CAMERA" and camera.data.background_images[0].image == photo.data
    assert (bpy.context.scene.render.resolution_x, bpy.context.scene.render.resolution_y) == (320, 240)
    if placed["ivlm_status"] == "placed":
        assert placed.matrix_world.translation.y > 0  # in front of the camera (+Y)

    # paint: one click enters Weight Paint on the group
    assert bpy.ops.ivlm.paint_contact(object_name=placed.name, group=group) == {"FINISHED"}
    assert bpy.context.object == placed and placed.mode == "WEIGHT_PAINT"
    assert placed.vertex_groups.active.name == group
    bpy.ops.object.mode_set(mode="OBJECT")

    # the user repaints: the object's contact becomes its top cap, the body's its lowest vertices (the feet)
    top = [v.index for v in placed.data.vertices if v.co.z > 0.08]
    placed.vertex_groups[group].remove(list(range(len(placed.data.vertices))))
    placed.vertex_groups[group].add(top, 1.0, "REPLACE")
    lowest = sorted(body.data.vertices, key=lambda v: v.co.z)[:200]
    body.vertex_groups[group].add([v.index for v in lowest], 1.0, "REPLACE")
    before = placed.matrix_world.copy()
    assert bpy.ops.ivlm.refit("EXEC_DEFAULT") == {"FINISHED"}, bpy.context.window_manager.ivlm.last_error
    assert len(run["ivlm_refit_job_id"]) == 32 and placed["ivlm_status"] == "placed"
    assert placed.matrix_world != before

    assert bpy.ops.ivlm.reset_contact() == {"FINISHED"}
    restored = [(v.index, g.weight) for v in body.data.vertices for g in v.groups if g.group == body.vertex_groups[group].index]
    assert {i for i, _ in restored} == {i for i, _ in member}

    for preset, name in (("gltf", "run.glb"), ("fbx", "run.fbx")):
        target = tmp_path / name
        assert bpy.ops.ivlm.export(filepath=str(target), preset=preset) == {"FINISHED"}
        sidecar = json.loads((tmp_path / "run.ivlm.json").read_text())
        assert target.is_file() and sidecar["schema"] == "ivlm-sidecar-1"
        assert sidecar["provenance"]["ivlm_job_id"] == run["ivlm_job_id"] and sidecar["provenance"]["ivlm_demo"]
        assert {i for i in sidecar["groups"][body.name][group]["indices"]} == {i for i, _ in member}
        assert sidecar["objects"][placed.name]["vertex_count"] == len(placed.data.vertices)

    bpy.ops.wm.read_homefile(use_empty=True)
    bpy.ops.import_scene.fbx(filepath=str(tmp_path / "run.fbx"))
    meshes = [o for o in bpy.data.objects if o.type == "MESH"]
    reimported_body = max(meshes, key=lambda o: len(o.data.vertices))
    assert len(reimported_body.data.vertices) == 10475  # FBX keeps vertex count and order
    assert reimported_body.data.color_attributes, "the baked contact colours were lost"


def test_missing_inputs_disable_the_button_with_a_reason(addon) -> None:  # noqa: ANN001
    bpy.ops.wm.read_homefile(use_empty=True)
    assert not bpy.ops.ivlm.estimate_contact.poll()
    bpy.ops.mesh.primitive_cube_add()
    assert not bpy.ops.ivlm.estimate_contact.poll()  # still no photo
