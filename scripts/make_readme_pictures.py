"""Renders the README's pictures of a DEMO run in real Blender (bpy, headless, Workbench engine, CPU only).

    .venv-blender/bin/python scripts/make_readme_pictures.py [--out docs/images]

Writes the generated demo assets (`ivlm assets`), starts the DEMO server, sets up the walkthrough's scene (the demo
chair photo as a reference image, the chair mesh selected) and runs Estimate Contact through the add-on. The photo
is the generated demo chair scene, so the DEMO server feeds its ground truth (keypoints, masks, contacts) to the
real body fit and placement (see ivlm_core/demo/scene_truth.py). Pictures:

- demo_photo_view.png, demo_side_view.png: the result from the photo's camera (over the photo) and from the side,
  contact regions in red (the add-on's `ivlm_contact_color` attribute);
- demo_manual_contact.png: the manual-contact workflow on that result: the chair's contact groups are emptied and
  contact is marked with the add-on's Mark Contact code (clicks on the buttocks and on the seat, as a user would),
  the chair dragged aside as if it had been placed wrong; then Refit places it from the marked contact.

Every picture is stamped DEMO. Takes a few minutes on a laptop CPU (most of it the server's body fit).
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
from server.process import launch

MAIN_PYTHON = ROOT / ".venv" / "bin" / "python"
SCENE = "chair__demo_sit_chair_000"
STAMP = "DEMO: generated scene; keypoints, masks, contacts from its ground truth; body fit and placement ran"
MARK_RADIUS_M = 0.09
CLICKS = 6  # Mark Contact clicks on each side
SIDE_OFFSET = Vector((2.6, -0.9, 0.35))  # from the body's centre: the camera looks along +Y with +Z up


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
    camera: bpy.types.Object,
    path: Path,
    size: tuple[int, int],
    stamp: str = STAMP,
    background: bpy.types.Image | None = None,
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
    scene.render.stamp_note_text = stamp
    scene.render.stamp_font_size = 12
    scene.render.stamp_background = (0.0, 0.0, 0.0, 0.85)
    scene.render.stamp_foreground = (1.0, 1.0, 1.0, 1.0)
    scene.render.film_transparent = background is not None
    scene.render.filepath = str(path)
    bpy.ops.render.render(write_still=True)
    if background is not None:
        _over(path, background)
    print(f"wrote {path}")


def _pixels(image: bpy.types.Image) -> np.ndarray:
    """RGBA float [H, W, 4], bottom row first (Blender's order)."""
    width, height = image.size
    out = np.empty(width * height * 4, np.float32)
    image.pixels.foreach_get(out)
    return out.reshape(height, width, 4)


def _save(pixels: np.ndarray, path: Path) -> None:
    height, width = pixels.shape[:2]
    image = bpy.data.images.new(path.stem, width, height, alpha=True)
    image.pixels.foreach_set(pixels.ravel())
    image.filepath_raw = str(path)
    image.file_format = "PNG"
    image.save()


def _over(path: Path, background: bpy.types.Image) -> None:
    """Puts the rendered PNG over the photo (same size), the scene at 85 % so the photo shows through a little."""
    render = bpy.data.images.load(str(path))
    width, height = render.size
    if tuple(background.size) != (width, height):
        background.scale(width, height)
    front, back = _pixels(render), _pixels(background)
    alpha = 0.85 * front[..., 3:4]
    _save(np.concatenate([front[..., :3] * alpha + back[..., :3] * (1 - alpha), np.ones_like(alpha)], axis=-1), path)


def _side_camera(body: bpy.types.Object) -> bpy.types.Object:
    centre = sum((body.matrix_world @ Vector(c) for c in body.bound_box), Vector()) / 8
    side = bpy.data.objects.new("side view", bpy.data.cameras.new("side view"))
    bpy.context.scene.collection.objects.link(side)
    side.location = centre + SIDE_OFFSET
    side.rotation_euler = (centre - side.location).to_track_quat("-Z", "Y").to_euler()
    side.data.lens = 40
    return side


def _run_operator(name: str) -> None:
    result = getattr(bpy.ops.ivlm, name)("EXEC_DEFAULT")
    if result != {"FINISHED"}:
        raise SystemExit(f"{name} failed: {bpy.context.window_manager.ivlm.last_error}")


def _mark(targets, obj: bpy.types.Object, local_points: list[Vector], normals: list[Vector]) -> None:
    """Mark Contact clicks: a ray onto each point along its inward normal (the add-on's own `mark_along_ray`)."""
    from blender_addon.blender import mark

    target = [t for t in targets if t.obj is obj]
    for point, normal in zip(local_points, normals, strict=True):
        world = obj.matrix_world @ point
        direction = -(obj.matrix_world.to_3x3() @ normal).normalized()
        if mark.mark_along_ray(bpy.context, target, world - 0.05 * direction, direction, MARK_RADIUS_M) is None:
            raise SystemExit(f"a Mark Contact click missed {obj.name}")


def _contact_clicks(obj: bpy.types.Object, group: str, count: int) -> tuple[list[Vector], list[Vector]]:
    """`count` spread-out vertices of the group (where a user would click: farthest-point picks), with normals."""
    from blender_addon.blender import build

    weights = np.asarray(build.group_weights(obj, group))
    chosen = np.flatnonzero(weights > 0.5)
    mesh = obj.data
    points = np.array([mesh.vertices[i].co for i in chosen])
    picks = [int(np.argmin(np.linalg.norm(points - points.mean(0), axis=1)))]
    distance = np.linalg.norm(points - points[picks[0]], axis=1)
    while len(picks) < min(count, len(points)):
        picks.append(int(np.argmax(distance)))
        distance = np.minimum(distance, np.linalg.norm(points - points[picks[-1]], axis=1))
    return [Vector(points[i]) for i in picks], [Vector(mesh.vertices[chosen[i]].normal) for i in picks]


def _manual_contact(run: bpy.types.Collection, side: bpy.types.Object, out: Path) -> None:
    """Empties the chair's contact, marks it again by clicks, drags the chair aside, renders; Refit; renders."""
    from blender_addon.blender import build, mark

    body, (chair, *_) = build.run_objects(run)
    group = f"contact_{chair['ivlm_label']}"
    clicks = {obj: _contact_clicks(obj, group, CLICKS) for obj in (body, chair)}  # where the contact is, seen by a user
    for obj in (body, chair):
        build.set_contact(obj, group, np.zeros(len(obj.data.vertices), np.float32).tolist(), 1.0)
    targets = mark.pair_targets(chair)
    for obj, (points, normals) in clicks.items():
        _mark(targets, obj, points, normals)
    placed = chair.matrix_world.copy()
    chair.location.y -= 0.9  # dragged aside (towards the photo camera), as if placed wrong: both marked regions show
    bpy.context.view_layer.update()
    before, after = out.with_name("manual_before.png"), out.with_name("manual_after.png")
    _render(side, before, (480, 480), "DEMO 1/2: contact marked by clicks on body and chair; chair dragged aside")
    chair.select_set(True)
    bpy.context.view_layer.objects.active = chair
    _run_operator("refit")
    moved = (chair.matrix_world.translation - placed.translation).length
    print(f"Refit put the chair {moved * 100:.1f} cm from where Estimate Contact had placed it")
    _render(side, after, (480, 480), "DEMO 2/2: Refit placed the chair from the marked contact")
    left, right = (_pixels(bpy.data.images.load(str(p))) for p in (before, after))
    _save(np.concatenate([left, np.ones((left.shape[0], 6, 4), np.float32), right], axis=1), out)
    before.unlink()
    after.unlink()
    print(f"wrote {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    import addon_utils

    addon_utils.enable("blender_addon", default_set=True)
    from blender_addon.blender import build

    prefs = bpy.context.preferences.addons["blender_addon"].preferences
    with tempfile.TemporaryDirectory() as tmp, tempfile.TemporaryDirectory() as no_models:
        assets = Path(tmp) / "assets"
        command = [str(MAIN_PYTHON), "-m", "ivlm_core.cli", "assets", "--out", str(assets), "--scenes", "1"]
        subprocess.run(command, check=True, cwd=ROOT)
        server = launch(Path(tmp) / "data", ["--demo"], {"IVLM_MODELS_DIR": no_models}, python=str(MAIN_PYTHON))
        try:
            prefs.server_url, prefs.read_timeout, prefs.rig_body = server.url, 600.0, False
            _scene(assets)
            _run_operator("estimate_contact")
            run = bpy.data.collections["InteractVLM"].children[-1]
            photo_camera = next(o for o in run.objects if o.get("ivlm_role") == "camera")
            bpy.data.objects["photo"].hide_render = True
            bpy.data.objects["chair"].hide_render = True  # the original; the run holds the placed copy
            photo = bpy.data.objects["photo"].data
            size = (bpy.context.scene.render.resolution_x, bpy.context.scene.render.resolution_y)
            background = bpy.data.images.load(photo.filepath, check_existing=False)
            _render(photo_camera, args.out / "demo_photo_view.png", size, background=background)
            body, _ = build.run_objects(run)
            side = _side_camera(body)
            _render(side, args.out / "demo_side_view.png", (480, 480))
            _manual_contact(run, side, args.out / "demo_manual_contact.png")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
