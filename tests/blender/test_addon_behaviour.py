"""The add-on in real Blender (headless bpy), installed the legacy way, against a stand-in server whose answers the
test controls (fake_server.py; the `addon` and `server` fixtures are in conftest.py): inputs and their messages, how results are built (upright photo, moved photo,
renamed or deleted sources, modifiers, in-place objects, scene camera, run names), Check Server, and cancelling a
job nobody waits for. The journey against the real server is in test_addon.py.
"""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

bpy = pytest.importorskip("bpy")
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
import fake_server
import recording_layout

MAIN_PYTHON = ROOT / ".venv" / "bin" / "python"


def _png(path: Path, width: int = 64, height: int = 48) -> Path:
    image = bpy.data.images.new(path.stem, width, height)
    image.filepath_raw = str(path)
    image.file_format = "PNG"
    image.save()
    bpy.data.images.remove(image)
    return path


def _photo_empty(path: Path) -> bpy.types.Object:
    photo = bpy.data.objects.new("photo", None)
    photo.empty_display_type = "IMAGE"
    photo.data = bpy.data.images.load(str(path))
    bpy.context.scene.collection.objects.link(photo)
    return photo


def _mesh(name: str, kind: str = "cube", subdivide: int = 0) -> bpy.types.Object:
    if kind == "cube":
        bpy.ops.mesh.primitive_cube_add(size=0.3)
    else:
        bpy.ops.mesh.primitive_uv_sphere_add(radius=0.1, segments=12, ring_count=6)
    obj = bpy.context.active_object
    obj.name = name
    if subdivide:
        modifier = obj.modifiers.new("Subdivision", "SUBSURF")
        modifier.levels = subdivide
    return obj


def _select(*objects: bpy.types.Object) -> None:
    for obj in bpy.context.view_layer.objects:
        obj.select_set(obj in objects)
    bpy.context.view_layer.objects.active = objects[0] if objects else None


def _scene(tmp_path: Path, *objects: tuple[str, str, int]) -> list[bpy.types.Object]:
    """An empty file with a PNG photo as an Image Empty and the given (name, kind, subdivision) meshes, selected."""
    bpy.ops.wm.read_homefile(use_empty=True)
    _photo_empty(_png(tmp_path / "photo.png"))
    made = [_mesh(*spec) for spec in objects]
    _select(*made)
    return made


def _runs() -> list[bpy.types.Collection]:
    parent = bpy.data.collections.get("InteractVLM")
    return list(parent.children) if parent else []


def _ids() -> dict[str, int]:
    return {kind: len(getattr(bpy.data, kind)) for kind in ("objects", "meshes", "cameras", "collections", "images")}


def _group_weights(obj: bpy.types.Object, group: str) -> dict[int, float]:
    index = obj.vertex_groups[group].index
    return {v.index: g.weight for v in obj.data.vertices for g in v.groups if g.group == index}


def _estimate(*args: Any) -> set[str]:
    """Estimate Contact run synchronously. An operator that reports an error raises RuntimeError when called from
    Python; the UI shows that text (window state `last_error`), which the tests read."""
    try:
        return bpy.ops.ivlm.estimate_contact("EXEC_DEFAULT", *args)
    except RuntimeError:
        return {"CANCELLED"}


def _state() -> Any:
    return bpy.context.window_manager.ivlm


def _assert_sentences(text: str) -> None:
    """Whole sentences: no fragment glued after a full stop ("... address. nothing listens ...")."""
    assert text and text[0].isupper() and text.endswith("."), text
    assert not re.search(r"\. [a-z]", text), text


# -- inputs ------------------------------------------------------------------------------------------------------


def test_a_moved_photo_file_is_reported_and_never_sent(addon: SimpleNamespace, tmp_path: Path) -> None:
    _scene(tmp_path, ("cup", "cube", 0))
    (tmp_path / "photo.png").rename(tmp_path / "moved.png")
    photo, reason = addon.gather.find_image(bpy.context)  # what the panel shows
    assert photo is None and "missing" in reason and str(tmp_path / "photo.png") in reason
    _assert_sentences(reason)
    assert not bpy.ops.ivlm.estimate_contact.poll()  # the button is disabled, with the reason as its tooltip
    with pytest.raises(addon.operators.InputError) as info:  # called past the poll, it is a clear error too
        addon.operators._estimate_body(bpy.context)
    assert info.value.user_text() == reason


def test_the_addons_own_errors_are_whole_sentences_without_a_server_prefix(
    addon: SimpleNamespace, server: fake_server.FakeServer, tmp_path: Path
) -> None:
    _, second = _scene(tmp_path, ("cup", "cube", 0), ("cup.001", "cube", 0))
    assert _estimate() == {"CANCELLED"}
    assert _state().last_error == (
        "Two selected objects have the same label (cup, cup). Give each object its own Label in the panel."
    )
    assert server.requests == []  # nothing was sent
    second.ivlm_label = "box"
    addon.prefs.server_url = "http://127.0.0.1:9"  # nothing listens on the discard port
    assert _estimate() == {"CANCELLED"}
    _assert_sentences(_state().last_error)
    assert _state().last_error.startswith("The InteractVLM server is not running at this address. Nothing listens")
    addon.prefs.server_url = "http://example.com:8765"  # a remote host without "Allow remote server"
    assert _estimate() == {"CANCELLED"}
    _assert_sentences(_state().last_error)
    assert "not this machine" in _state().last_error and not _state().last_error.startswith("The server could not")


def test_the_photo_fallbacks_send_the_right_file(
    addon: SimpleNamespace, server: fake_server.FakeServer, tmp_path: Path
) -> None:
    """No Image Empty: the active camera's background image, else the Image Editor's image, else the file picked in
    the panel; the photo sent is that file, byte for byte."""
    bpy.ops.wm.read_homefile(use_empty=True)
    files = {name: _png(tmp_path / f"{name}.png", 40 + i, 30) for i, name in enumerate(("camera", "editor", "picked"))}
    cup = _mesh("cup")
    camera = bpy.data.objects.new("user camera", bpy.data.cameras.new("user camera"))
    bpy.context.scene.collection.objects.link(camera)
    bpy.context.scene.camera = camera
    background = camera.data.background_images.new()
    background.image = bpy.data.images.load(str(files["camera"]))
    area = next(a for a in bpy.context.window.screen.areas if a.type == "DOPESHEET_EDITOR")
    area.type = "IMAGE_EDITOR"
    area.spaces.active.image = bpy.data.images.load(str(files["editor"]))
    bpy.context.scene.ivlm.image_path = str(files["picked"])
    _select(cup)
    for source in ("camera", "editor", "picked"):
        photo, reason = addon.gather.find_image(bpy.context)
        assert photo is not None and photo.path == str(files[source]), (source, reason)
        assert _estimate() == {"FINISHED"}, _state().last_error
        assert base64.b64decode(server.estimates[-1]["image"]) == files[source].read_bytes(), source
        assert _runs()[-1].name == f"{source}-{len(_runs())}"
        bpy.context.scene.camera = camera  # the run made its photo camera the scene camera: take the user's back
        if source == "camera":
            camera.data.background_images.clear()
        elif source == "editor":
            area.spaces.active.image = None


# -- building results --------------------------------------------------------------------------------------------


def _jpeg_with_orientation_6(folder: Path) -> tuple[Path, bytes]:
    """A 64x32 JPEG (left half red, right half blue as stored) tagged EXIF orientation 6 (shown turned 90 degrees
    clockwise), and the upright JPEG a server that applies the orientation analyses (32x64: red on top). Made with
    PIL in the main environment (the Blender one has no PIL)."""
    if not MAIN_PYTHON.exists():
        pytest.skip("the main environment (.venv) is not built; ./test.sh builds it")
    script = textwrap.dedent(f"""
        import numpy as np
        from PIL import Image, ImageOps
        pixels = np.zeros((32, 64, 3), np.uint8)
        pixels[:, :32] = (255, 0, 0)
        pixels[:, 32:] = (0, 0, 255)
        exif = Image.Exif()
        exif[0x0112] = 6
        Image.fromarray(pixels).save({str(folder / "tilted.jpg")!r}, quality=95, exif=exif.tobytes())
        ImageOps.exif_transpose(Image.open({str(folder / "tilted.jpg")!r})).save({str(folder / "up.jpg")!r}, quality=95)
    """)
    subprocess.run([str(MAIN_PYTHON), "-c", script], check=True, timeout=120)
    return folder / "tilted.jpg", (folder / "up.jpg").read_bytes()


def _pixel(image: bpy.types.Image, x: int, y: int) -> tuple[float, float, float]:
    """The colour at column x, row y counted from the bottom (Blender's pixel order)."""
    width = image.size[0]
    pixels = list(image.pixels)
    start = 4 * (y * width + x)
    return tuple(round(v, 1) for v in pixels[start : start + 3])  # type: ignore[return-value]


@pytest.mark.parametrize("saved", [True, False], ids=["saved-blend", "unsaved"])
def test_an_upright_photo_from_the_server_is_the_camera_background(
    addon: SimpleNamespace,
    server: fake_server.FakeServer,
    tmp_path: Path,
    saved: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Blender shows a JPEG's stored pixels and ignores its EXIF orientation; a server that analyses the upright
    photo sends it back, and the add-on puts exactly that picture behind the camera, at its size."""
    tilted, upright = _jpeg_with_orientation_6(tmp_path)
    bpy.ops.wm.read_homefile(use_empty=True)
    photo = _photo_empty(tilted)
    assert tuple(photo.data.size) == (64, 32)  # Blender: the stored pixels, as is
    assert _pixel(photo.data, 4, 16) == (1.0, 0.0, 0.0) and _pixel(photo.data, 60, 16) == (0.0, 0.0, 1.0)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "system-temp"))  # where an unsaved file's photo goes
    (tmp_path / "system-temp").mkdir()
    if saved:
        bpy.ops.wm.save_as_mainfile(filepath=str(tmp_path / "scene.blend"))
    _select(_mesh("cup"))

    def upright_answer(result: dict[str, Any]) -> None:
        result["camera"].update(exif_orientation=6, image_size_hw=[64, 32])
        result["upright_photo"] = base64.b64encode(upright).decode()

    server.edit_result = upright_answer
    assert _estimate() == {"FINISHED"}, _state().last_error
    run = _runs()[-1]
    camera = next(o for o in run.objects if o.get("ivlm_role") == "camera")
    background = camera.data.background_images[0].image
    assert background != photo.data and background.packed_file is not None
    assert tuple(background.size) == (32, 64)  # upright: 32 wide, 64 high
    assert _pixel(background, 16, 60) == (1.0, 0.0, 0.0) and _pixel(background, 16, 4) == (0.0, 0.0, 1.0)
    scene = bpy.context.scene
    assert scene.camera == camera and (scene.render.resolution_x, scene.render.resolution_y) == (32, 64)
    assert run["ivlm_exif_orientation"] == 6
    written = Path(bpy.path.abspath(background.filepath))
    assert written.read_bytes() == upright and written.name == "tilted-upright.jpg"
    assert written.parent == (tmp_path if saved else tmp_path / "system-temp" / "interactvlm")


def test_an_older_servers_result_uses_the_photo_itself(
    addon: SimpleNamespace, server: fake_server.FakeServer, tmp_path: Path
) -> None:
    _scene(tmp_path, ("cup", "cube", 0))
    photo = bpy.data.objects["photo"]
    assert _estimate() == {"FINISHED"}, _state().last_error
    camera = next(o for o in _runs()[-1].objects if o.get("ivlm_role") == "camera")
    assert camera.data.background_images[0].image == photo.data
    assert _runs()[-1]["ivlm_exif_orientation"] == 1


@pytest.mark.parametrize("mode", ["DUPLICATE", "IN_PLACE"])
def test_renaming_and_deleting_sources_while_the_job_runs(
    addon: SimpleNamespace, server: fake_server.FakeServer, tmp_path: Path, mode: str
) -> None:
    """The result is built from what was captured at submit: a renamed object is found again, a deleted one is
    rebuilt from the mesh as sent, and the build says so."""
    addon.prefs.object_mode = mode
    cup, box = _scene(tmp_path, ("cup", "sphere", 0), ("box", "cube", 0))
    box_vertices = len(box.data.vertices)
    server.finish.clear()  # the job runs until the test says so
    body, info = addon.operators._estimate_body(bpy.context)
    job = addon.operators._start(bpy.context, "estimate", body, info)
    cup.name = "mug"
    bpy.data.objects.remove(box)
    server.finish.set()
    job.join(timeout=60)
    reports: list[tuple[set[str], str]] = []
    assert addon.operators._finish(
        SimpleNamespace(report=lambda kind, text: reports.append((kind, text))), bpy.context
    ) == {"FINISHED"}, reports
    run = _runs()[-1]
    placed = {o["ivlm_label"]: o for o in run.objects if o.get("ivlm_role") == "object"}
    assert set(placed) == {"cup", "box"}
    assert (placed["cup"] is cup) == (mode == "IN_PLACE") and placed["cup"].name.startswith("mug")
    assert len(placed["box"].data.vertices) == box_vertices and placed["box"].name == "box (IVLM)"
    assert "deleted while the job ran" in placed["box"]["ivlm_reason"]
    for obj in placed.values():
        weights = _group_weights(obj, "contact_" + obj["ivlm_label"])
        assert set(weights) == {i for i in range(len(obj.data.vertices)) if i % 3 == 0}
    ((kind, text),) = reports
    assert kind == {"INFO"}
    _assert_sentences(text)
    assert "The object box was deleted while the job ran" in text


@pytest.mark.parametrize("mode", ["DUPLICATE", "IN_PLACE"])
def test_applied_modifiers_keep_the_contact_group(
    addon: SimpleNamespace, server: fake_server.FakeServer, tmp_path: Path, mode: str
) -> None:
    """Apply modifiers is on by default: the evaluated mesh (here subdivided) is sent, and the placed object gets
    that mesh, so its contact group fits it (it used to be dropped without a word)."""
    addon.prefs.object_mode = mode
    (cup,) = _scene(tmp_path, ("cup", "sphere", 1))
    assert bpy.context.scene.ivlm.apply_modifiers  # the default: send what the user sees
    own = len(cup.data.vertices)
    assert _estimate() == {"FINISHED"}, _state().last_error
    sent = fake_server.decode_count(server.estimates[-1]["objects"][0]["vertices"])
    assert sent > own  # subdivided
    placed = next(o for o in _runs()[-1].objects if o.get("ivlm_role") == "object")
    assert (placed is cup) == (mode == "IN_PLACE")
    assert len(placed.data.vertices) == sent and not placed.modifiers
    assert set(_group_weights(placed, "contact_cup")) == {i for i in range(sent) if i % 3 == 0}


def test_placed_objects_and_their_copies_can_be_sent_again(
    addon: SimpleNamespace, server: fake_server.FakeServer, tmp_path: Path
) -> None:
    addon.prefs.object_mode = "IN_PLACE"
    (cup,) = _scene(tmp_path, ("cup", "cube", 0))
    assert _estimate() == {"FINISHED"}, _state().last_error
    first = _runs()[-1]
    assert cup["ivlm_role"] == "object" and cup.name in first.objects
    _select(cup)
    assert addon.gather.find_objects(bpy.context) == ([cup], "")
    assert bpy.ops.ivlm.estimate_contact.poll()
    assert _estimate() == {"FINISHED"}, _state().last_error
    second = _runs()[-1]
    assert second != first and cup.name in second.objects and cup.name not in first.objects  # one run per object
    copy = cup.copy()
    copy.data = cup.data.copy()
    copy.name = "cup (IVLM) copy"
    bpy.context.scene.collection.objects.link(copy)
    _select(copy)
    assert addon.gather.find_objects(bpy.context) == ([copy], "") and bpy.ops.ivlm.estimate_contact.poll()
    assert addon.gather.label_of(copy) == "cup"  # the label it was placed under, not its name
    body = next(o for o in second.objects if o.get("ivlm_role") == "body")
    _select(body)
    objects, reason = addon.gather.find_objects(bpy.context)
    assert objects == [] and "body of an earlier run" in reason


def test_a_result_that_does_not_fit_leaves_nothing_half_built(
    addon: SimpleNamespace, server: fake_server.FakeServer, tmp_path: Path
) -> None:
    _scene(tmp_path, ("cup", "cube", 0), ("box", "cube", 0))
    user_camera = bpy.data.objects.new("user camera", bpy.data.cameras.new("user camera"))
    bpy.context.scene.collection.objects.link(user_camera)
    bpy.context.scene.camera = user_camera
    before = _ids()

    def short_contact(result: dict[str, Any]) -> None:
        result["objects"][1]["object_contact"] = fake_server.encode([0.5, 0.5], "float32", [2])

    server.edit_result = short_contact
    assert _estimate() == {"CANCELLED"}
    _assert_sentences(_state().last_error)
    assert "2 contact values for box, which has 8 vertices" in _state().last_error
    assert _ids() == before and not _runs()

    server.edit_result = lambda result: None
    original = addon.build.build_camera

    def failing_camera(*args: Any, **kwargs: Any) -> Any:
        original(*args, **kwargs)
        raise RuntimeError("planted failure after the camera was made")

    addon.build.build_camera = failing_camera
    try:
        assert _estimate() == {"CANCELLED"}
    finally:
        addon.build.build_camera = original
    assert "failed unexpectedly" in _state().last_error and "Traceback" not in _state().last_error
    assert _ids() == before and not _runs() and bpy.context.scene.camera == user_camera


@pytest.mark.parametrize("make_scene_camera", [True, False])
def test_the_photo_camera_becomes_the_scene_camera_unless_the_user_keeps_theirs(
    addon: SimpleNamespace, server: fake_server.FakeServer, tmp_path: Path, make_scene_camera: bool
) -> None:
    _scene(tmp_path, ("cup", "cube", 0))
    user_camera = bpy.data.objects.new("user camera", bpy.data.cameras.new("user camera"))
    bpy.context.scene.collection.objects.link(user_camera)
    scene = bpy.context.scene
    scene.camera, scene.render.resolution_x, scene.render.resolution_y = user_camera, 1000, 700
    addon.prefs.set_scene_camera = make_scene_camera
    assert _estimate() == {"FINISHED"}, _state().last_error
    camera = next(o for o in _runs()[-1].objects if o.get("ivlm_role") == "camera")
    if make_scene_camera:
        assert scene.camera == camera and (scene.render.resolution_x, scene.render.resolution_y) == (64, 48)
    else:
        assert scene.camera == user_camera and (scene.render.resolution_x, scene.render.resolution_y) == (1000, 700)


def test_run_names_drop_windows_and_posix_folders(addon: SimpleNamespace, tmp_path: Path) -> None:
    """A .blend made on Windows keeps its photo paths with backslashes; the run is named after the file alone."""
    bpy.ops.wm.read_homefile(use_empty=True)
    cup = _mesh("cup")
    gather, build = addon.gather, addon.build
    source = gather.capture_object(cup, bpy.context.evaluated_depsgraph_get(), True)
    request = {"objects": [source.request_entry()], "options": {}}
    data = _png(tmp_path / "p.png").read_bytes()
    for path, name in (("C:\\Users\\me\\Photos\\IMG_0001.JPG", "IMG_0001-1"), ("/home/me/chair.png", "chair-2")):
        submitted = gather.Submitted(gather.PhotoChoice(0, "", path, path), data, ".png", [source])
        collection, _ = build.build_result(bpy.context, fake_server.result_for(request, (48, 64)), submitted)
        assert collection.name == name


def test_reset_uses_the_runs_thresholds_and_a_run_is_one_undo_step_that_repeat_last_skips(
    addon: SimpleNamespace, server: fake_server.FakeServer, tmp_path: Path
) -> None:
    (cup,) = _scene(tmp_path, ("cup", "sphere", 0))
    bpy.ops.ed.undo_push(message="scene")  # headless Blender starts its undo system only when asked
    assert bpy.ops.object.select_all.poll()
    bpy.ops.object.select_all("EXEC_DEFAULT", True, action="SELECT")  # a REGISTER operator, run as from the UI
    _select(cup)
    assert _estimate(True) == {"FINISHED"}, _state().last_error  # undo=True: registered as if run from the UI
    run = _runs()[-1]
    placed = next(o for o in run.objects if o.get("ivlm_role") == "object")
    made = _group_weights(placed, "contact_cup")
    addon.prefs.object_threshold = addon.prefs.body_threshold = 0.95  # the preferences change after the run
    bpy.context.view_layer.objects.active = placed
    assert bpy.ops.ivlm.reset_contact() == {"FINISHED"}
    assert _group_weights(placed, "contact_cup") == made  # the run's 0.5, not today's 0.95

    jobs = server.jobs
    area = next(a for a in bpy.context.window.screen.areas if a.type == "VIEW_3D")
    with bpy.context.temp_override(area=area, region=area.regions[-1]):
        bpy.ops.screen.repeat_last()
    assert server.jobs == jobs and len(_runs()) == 1  # Repeat Last skipped Estimate (no REGISTER flag)
    for name in ("estimate_contact", "refit"):
        assert getattr(addon.operators, f"IVLM_OT_{name}").bl_options == {"UNDO"}
    bpy.ops.ed.undo()  # one step takes the whole run away (Reset above pushed no step of its own)
    assert not _runs() and [o.name for o in bpy.data.objects if o.type == "MESH"] == ["cup"]


def test_gltf_export_keeps_the_camera(addon: SimpleNamespace, server: fake_server.FakeServer, tmp_path: Path) -> None:
    _scene(tmp_path, ("cup", "cube", 0))
    assert _estimate() == {"FINISHED"}, _state().last_error
    assert bpy.ops.ivlm.export(filepath=str(tmp_path / "run.glb"), preset="gltf") == {"FINISHED"}
    bpy.ops.wm.read_homefile(use_empty=True)
    assert bpy.ops.import_scene.gltf(filepath=str(tmp_path / "run.glb")) == {"FINISHED"}
    assert [o.type for o in bpy.data.objects].count("CAMERA") == 1


# -- Check Server -------------------------------------------------------------------------------------------------


def test_check_server_never_blocks_and_follows_a_restart(
    addon: SimpleNamespace, server: fake_server.FakeServer
) -> None:
    operators = addon.operators
    health = operators.HEALTH
    now = [0.0]
    health.clock = lambda: now[0]
    health.join(timeout=30)
    server.gate.clear()  # the server holds every answer
    # what a click runs (invoke); from Python, headless bpy runs operators' execute (the synchronous check) instead
    assert operators.request_health_check(bpy.context)
    assert _state().server_status.startswith("Checking the server at 127.0.0.1:")
    deadline = time.monotonic() + 30
    while "GET /v1/health" not in server.requests and time.monotonic() < deadline:
        time.sleep(0.01)
    assert "GET /v1/health" in server.requests and not server.answered  # it returned before the answer
    server.gate.set()
    health.join(timeout=30)
    operators.health_tick()
    assert "DEMO mode" in _state().server_status
    for line in _state().server_status.split("\n"):
        _assert_sentences(line)

    server.health.update(demo=False, demo_reason="")  # the server restarted with its model files
    operators.health_tick()
    assert server.requests.count("GET /v1/health") == 1  # not due yet
    now[0] += health.refresh_s
    operators.health_tick()  # due: starts the next check on its thread
    health.join(timeout=30)
    operators.health_tick()
    assert "DEMO" not in _state().server_status and server.requests.count("GET /v1/health") == 2

    server.shutdown()  # the server stopped
    server.server_close()
    now[0] += health.refresh_s
    operators.health_tick()
    health.join(timeout=30)
    operators.health_tick()
    assert _state().server_status.startswith("The InteractVLM server is not running at this address.")


def test_the_token_preference_is_sent(addon: SimpleNamespace, server: fake_server.FakeServer) -> None:
    server.token = "a-token-of-sixteen-chars"
    with pytest.raises(RuntimeError):  # an error report
        bpy.ops.ivlm.check_server()
    assert _state().server_status.startswith("The server needs a token")
    addon.prefs.token = server.token
    assert bpy.ops.ivlm.check_server() == {"FINISHED"}


# -- cancelling a job nobody waits for ---------------------------------------------------------------------------


def _start_endless_job(addon: SimpleNamespace, server: fake_server.FakeServer) -> Any:
    server.finish.clear()
    job = addon.operators._start(bpy.context, "estimate", {"objects": []}, {})
    deadline = time.monotonic() + 30
    while job.runner.job_id is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert job.runner.job_id is not None
    return job


def test_a_job_is_cancelled_when_another_file_loads(addon: SimpleNamespace, server: fake_server.FakeServer) -> None:
    job = _start_endless_job(addon, server)
    bpy.ops.wm.read_homefile(use_empty=True)  # load_pre: the modal operator watching the job is gone
    assert f"POST /v1/jobs/{job.runner.job_id}/cancel" in server.requests
    assert not addon.operators._JOB


QUIT_SCRIPT = """
import sys, time
import bpy
import addon_utils
sys.path.insert(0, {root!r})
addon_utils.enable("blender_addon", default_set=True)
operators = sys.modules["blender_addon.blender.operators"]
prefs = bpy.context.preferences.addons["blender_addon"].preferences
prefs.server_url = {url!r}
job = operators._start(bpy.context, "estimate", {{"objects": []}}, {{}})
while job.runner.job_id is None:
    time.sleep(0.01)
if {how!r} == "disable":
    addon_utils.disable("blender_addon", default_set=True)
print("job", job.runner.job_id, flush=True)
"""


@pytest.mark.parametrize("how", ["quit", "disable"])
def test_a_job_is_cancelled_when_blender_quits_or_the_addon_is_disabled(
    server: fake_server.FakeServer, tmp_path: Path, how: str
) -> None:
    """A separate Blender process starts a job, then exits (or disables the add-on) without waiting for it."""
    server.finish.clear()
    env = {**os.environ, "BLENDER_USER_RESOURCES": str(tmp_path / "user")}
    script = QUIT_SCRIPT.format(root=str(ROOT), url=server.url, how=how)
    run = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert run.returncode == 0, run.stdout + run.stderr
    job_id = run.stdout.split("job ", 1)[1].split()[0]
    assert f"POST /v1/jobs/{job_id}/cancel" in server.requests, server.requests


def test_the_panel_wraps_long_messages(addon: SimpleNamespace, tmp_path: Path) -> None:
    _scene(tmp_path, ("cup", "cube", 0))
    ui = sys.modules[f"{addon.module}.blender.ui"]
    messages = sys.modules[f"{addon.module}.core.messages"]
    long_error = (
        "The InteractVLM server is not running at this address. Nothing listens on 127.0.0.1:8765. Start the "
        "server (./run.sh) or check the URL in the add-on preferences."
    )
    _state().last_error = long_error
    _state().server_status = (
        "DEMO mode. Started with --demo: generated assets and random-weight models. Results are not meaningful."
    )
    labels = recording_layout.draw(ui.IVLM_PT_main, bpy.context).labels
    width = messages.chars_for_width(300)  # no region in a test's context: the panel assumes 300 px
    assert all(len(line) <= width for line in labels), [line for line in labels if len(line) > width]
    text = " ".join(labels)
    assert long_error in text and _state().server_status in text  # every word is shown, in order
    _state().last_error = _state().server_status = ""
