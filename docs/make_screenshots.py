"""Renders the README's pictures of a DEMO run in real Blender (bpy, headless, Workbench engine).

    .venv-blender/bin/python docs/make_screenshots.py [--out docs/images]

Writes the generated demo assets (`ivlm assets`), starts the DEMO server, sets up the walkthrough's scene (the
chair photo as a reference image, the chair mesh selected), runs Estimate Contact through the add-on, and renders
the result twice: from the photo's camera (over the photo), and from the side. Every picture is stamped DEMO: the
models have random weights, so the contacts and placement are not meaningful.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import bpy
import numpy as np
from mathutils import Vector

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from server.process import launch  # noqa: E402

MAIN_PYTHON = ROOT / ".venv" / "bin" / "python"
SCENE = "chair__demo_sit_chair_000"
STAMP = "DEMO result: random-weight models, contacts and placement not meaningful"


def _scene(assets: Path) -> None:
    bpy.ops.wm.read_homefile(use_empty=True)
    photo = bpy.data.objects.new("photo", None)
    photo.empty_display_type = "IMAGE"
    photo.data = bpy.data.images.load(str(assets / "scenes" / SCENE / f"{SCENE}.png"))
    bpy.context.scene.collection.objects.link(photo)
    bpy.ops.wm.obj_import(filepath=str(assets / "objects" / "demo_chair.obj"))
    chair = bpy.context.selected_objects[0]
    chair.name = "chair"
    for obj in bpy.context.view_layer.objects:
        obj.select_set(obj is chair)
    bpy.context.view_layer.objects.active = chair


def _render(
    camera: bpy.types.Object, path: Path, size: tuple[int, int], background: bpy.types.Image | None = None
) -> None:
    """Renders with Workbench; over `background` (the photo) when given, since renders leave camera backgrounds out."""
    scene = bpy.context.scene
    scene.camera = camera
    scene.render.engine = "BLENDER_WORKBENCH"
    scene.display.shading.light = "STUDIO"
    scene.display.shading.color_type = "VERTEX"  # the active colour attribute: ivlm_contact_color
    scene.display.shading.show_xray = False
    scene.render.resolution_x, scene.render.resolution_y = size
    scene.render.resolution_percentage = 100
    scene.render.use_stamp = True
    for flag in ("date", "time", "render_time", "frame", "camera", "lens", "scene", "filename", "memory", "marker"):
        setattr(scene.render, f"use_stamp_{flag}", False)
    scene.render.use_stamp_note = True
    scene.render.stamp_note_text = STAMP
    scene.render.stamp_font_size = 14
    scene.render.stamp_background = (0.0, 0.0, 0.0, 0.85)
    scene.render.stamp_foreground = (1.0, 1.0, 1.0, 1.0)
    scene.render.film_transparent = background is not None
    scene.render.filepath = str(path)
    bpy.ops.render.render(write_still=True)
    if background is not None:
        _over(path, background)
    print(f"wrote {path}")


def _over(path: Path, background: bpy.types.Image) -> None:
    """Puts the rendered PNG over the photo (same size), the scene at 85 % so the photo shows through a little."""
    render = bpy.data.images.load(str(path))
    width, height = render.size
    if tuple(background.size) != (width, height):
        background.scale(width, height)
    front = np.empty(width * height * 4, np.float32)
    render.pixels.foreach_get(front)
    back = np.empty_like(front)
    background.pixels.foreach_get(back)
    front, back = front.reshape(-1, 4), back.reshape(-1, 4)
    alpha = 0.85 * front[:, 3:4]
    out = np.concatenate([front[:, :3] * alpha + back[:, :3] * (1 - alpha), np.ones_like(alpha)], axis=1)
    render.pixels.foreach_set(out.ravel())
    render.filepath_raw = str(path)
    render.file_format = "PNG"
    render.save()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    import addon_utils

    addon_utils.enable("blender_addon", default_set=True)
    prefs = bpy.context.preferences.addons["blender_addon"].preferences
    with tempfile.TemporaryDirectory() as tmp, tempfile.TemporaryDirectory() as no_models:
        assets = Path(tmp) / "assets"
        subprocess.run([str(MAIN_PYTHON), "-m", "ivlm_core.cli", "assets", "--out", str(assets), "--scenes", "1"],
                       check=True, cwd=ROOT)  # fmt: skip
        server = launch(Path(tmp) / "data", ["--demo"], {"IVLM_MODELS_DIR": no_models}, python=str(MAIN_PYTHON))
        try:
            prefs.server_url, prefs.read_timeout, prefs.rig_body = server.url, 120.0, True
            _scene(assets)
            result = bpy.ops.ivlm.estimate_contact("EXEC_DEFAULT")
            if result != {"FINISHED"}:
                raise SystemExit(f"Estimate Contact failed: {bpy.context.window_manager.ivlm.last_error}")
        finally:
            server.stop()
        run = bpy.data.collections["InteractVLM"].children[-1]
        photo_camera = next(o for o in run.objects if o.get("ivlm_role") == "camera")
        bpy.data.objects["photo"].hide_render = True
        bpy.data.objects["chair"].hide_render = True  # the original; the run holds the placed copy
        photo = bpy.data.objects["photo"].data
        size = (bpy.context.scene.render.resolution_x, bpy.context.scene.render.resolution_y)
        background = bpy.data.images.load(photo.filepath, check_existing=False)
        _render(photo_camera, args.out / "demo_photo_view.png", size, background=background)

        body = next(o for o in run.objects if o.get("ivlm_role") == "body")
        centre = sum((body.matrix_world @ Vector(c) for c in body.bound_box), Vector()) / 8
        side = bpy.data.objects.new("side view", bpy.data.cameras.new("side view"))
        bpy.context.scene.collection.objects.link(side)
        side.location = centre + Vector((2.6, -1.2, 0.4))
        direction = centre - side.location
        side.rotation_euler = direction.to_track_quat("-Z", "Y").to_euler()
        side.data.lens = 40
        _render(side, args.out / "demo_side_view.png", (640, 640))


if __name__ == "__main__":
    main()
