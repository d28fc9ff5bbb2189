"""The panel an artist reads and the manual-contact workflow, in real Blender (headless bpy) against the stand-in
server (fake_server.py): the panel drawn into a recording layout checked against this Blender's real UILayout
(recording_layout.py); run settings in the panel reaching the request and the build; the Label field's greyed
default; export formats; paint buttons by label; View Through Photo Camera; a result without contacts giving empty
groups; Mark Contact (the world-ray function, the operator, and the modal's event handling, fed events by hand since
headless Blender delivers none); Refit from marked weights.
"""

from __future__ import annotations

import array
import math
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

bpy = pytest.importorskip("bpy")
import fake_server
import recording_layout
from bpy_extras import view3d_utils
from mathutils import Vector
from test_addon_behaviour import _estimate, _group_weights, _photo_empty, _png, _runs, _scene, _select, _state


def _module(addon: SimpleNamespace, name: str) -> Any:
    return sys.modules[f"{addon.module}.{name}"]


def _draw(addon: SimpleNamespace) -> recording_layout.Recording:
    return recording_layout.draw(_module(addon, "blender.ui").IVLM_PT_main, bpy.context)


def _placed(run: bpy.types.Collection) -> bpy.types.Object:
    return next(o for o in run.objects if o.get("ivlm_role") == "object")


def _body(run: bpy.types.Collection) -> bpy.types.Object:
    return next(o for o in run.objects if o.get("ivlm_role") == "body")


def _view3d() -> tuple[bpy.types.Area, bpy.types.Region]:
    area = next(a for a in bpy.context.window.screen.areas if a.type == "VIEW_3D")
    return area, next(r for r in area.regions if r.type == "WINDOW")


# -- the panel -----------------------------------------------------------------------------------------------------


def test_the_panel_brings_the_run_settings_and_they_reach_the_run(
    addon: SimpleNamespace, server: fake_server.FakeServer, tmp_path: Path
) -> None:
    (cup,) = _scene(tmp_path, ("cup.001", "cube", 0))
    drawn = _draw(addon)
    label = drawn.field("ivlm_label")
    assert label.data == cup and label.text == "" and label.kwargs["placeholder"] == "cup"  # the greyed default
    for prop in ("body_threshold", "object_threshold", "object_mode", "rig_body", "set_scene_camera"):
        assert drawn.field(prop).data == addon.prefs, prop
    assert drawn.field("object_mode").kwargs["expand"]  # Duplicate | In place, side by side
    assert drawn.field("apply_modifiers").data == bpy.context.scene.ivlm
    assert "Settings" in drawn.labels and drawn.panels == ["ivlm_settings"]  # no run yet: no Export

    fields = {f.prop: f for f in drawn.fields}
    # what the artist changes in the panel is what the next run sends and builds with
    for prop, value in (
        ("body_threshold", 0.3),
        ("object_threshold", 0.4),
        ("object_mode", "IN_PLACE"),
        ("rig_body", False),
        ("set_scene_camera", False),
    ):
        setattr(fields[prop].data, prop, value)
    body, info = addon.operators._estimate_body(bpy.context)
    assert body["options"] == pytest.approx({"body_contact_threshold": 0.3, "object_contact_threshold": 0.4})
    assert info["options"] == addon.build.BuildOptions("IN_PLACE", rig_body=False, set_scene_camera=False)
    assert _estimate() == {"FINISHED"}, _state().last_error
    assert _placed(_runs()[-1]) is cup  # in place


def test_the_panel_names_contacts_by_label_and_exports_by_format_name(
    addon: SimpleNamespace, server: fake_server.FakeServer, tmp_path: Path
) -> None:
    (cup,) = _scene(tmp_path, ("cup", "cube", 0))
    cup.ivlm_label = "Mug"
    assert _estimate() == {"FINISHED"}, _state().last_error
    run = _runs()[-1]
    body, placed = _body(run), _placed(run)
    drawn = _draw(addon)
    assert "Contact: body ↔ Mug" in drawn.labels
    paint = [b for b in drawn.buttons if b.idname == "ivlm.paint_contact"]
    assert [b.shown for b in paint] == ["Paint body", "Paint Mug"]
    assert [b.properties for b in paint] == [
        {"object_name": body.name, "group": "contact_Mug"},
        {"object_name": placed.name, "group": "contact_Mug"},
    ]
    assert drawn.button("Mark").properties == {"object_name": placed.name}
    assert not [t for t in drawn.order if "contact_" in t]  # no internal group name anywhere
    assert drawn.button("View Through Photo Camera").idname == "ivlm.view_photo_camera"
    assert drawn.panels == ["ivlm_settings", "ivlm_export"] and "Export" in drawn.labels
    exports = [b for b in drawn.buttons if b.idname == "ivlm.export"]
    assert [(b.shown, b.properties["preset"]) for b in exports] == [("FBX", "fbx"), ("glTF", "gltf"), ("USD", "usd")]
    assert [i.name for i in bpy.ops.ivlm.export.get_rna_type().properties["preset"].enum_items] == [
        "FBX",
        "glTF",
        "USD",
    ]
    order = drawn.order  # top to bottom: server, inputs, settings, Estimate, the run, Export
    assert order.index("Check Server") < order.index("Settings") < order.index("Estimate Contact")
    assert order.index("Estimate Contact") < order.index("Contact: body ↔ Mug") < order.index("Export")


def test_the_panel_wraps_every_message(addon: SimpleNamespace, server: fake_server.FakeServer, tmp_path: Path) -> None:
    """The server's status, the last error, a run's notes and why an object was not placed: wrapped to the
    sidebar's width, every word shown in order."""
    _scene(tmp_path, ("cup", "cube", 0))
    server.edit_result = lambda result: result.update(
        notes=["body contact with 'cup': the human-contact model is a generated stand-in, so no contact is predicted"]
    )
    assert _estimate() == {"FINISHED"}, _state().last_error
    placed = _placed(_runs()[-1])
    placed["ivlm_status"] = "skipped"
    placed["ivlm_reason"] = "no body vertex has contact above 0.5: nothing says where the object touches the body"
    _state().last_error = (
        "The InteractVLM server is not running at this address. Nothing listens on 127.0.0.1:8765. Start the "
        "server (./run.sh) or check the URL in the add-on preferences."
    )
    _state().server_status = "DEMO mode. Started with --demo: generated assets and random-weight models."
    try:
        drawn = _draw(addon)
    finally:
        _state().last_error = _state().server_status = ""
    width = _module(addon, "core.messages").chars_for_width(300)  # no region in a test: the panel assumes 300 px
    assert all(len(line) <= width for line in drawn.labels), [line for line in drawn.labels if len(line) > width]
    text = " ".join(drawn.labels)
    for message in (
        "Nothing listens on 127.0.0.1:8765. Start the server (./run.sh) or check the URL in the add-on preferences.",
        "DEMO mode. Started with --demo: generated assets and random-weight models.",
        "Body contact with 'cup': the human-contact model is a generated stand-in, so no contact is predicted.",
        "Cup was not placed: no body vertex has contact above 0.5: nothing says where the object touches the body.",
    ):
        assert message in text, message


@pytest.mark.parametrize("make_scene_camera", [True, False])
def test_view_through_the_photo_camera(
    addon: SimpleNamespace, server: fake_server.FakeServer, tmp_path: Path, make_scene_camera: bool
) -> None:
    """The 3D view looks through the photo camera, the photo behind the scene. When the preference keeps the
    user's scene camera, the view uses the photo camera as its local camera and the scene camera stays."""
    _scene(tmp_path, ("cup", "cube", 0))
    photo = bpy.data.objects["photo"]
    user_camera = bpy.data.objects.new("user camera", bpy.data.cameras.new("user camera"))
    bpy.context.scene.collection.objects.link(user_camera)
    bpy.context.scene.camera = user_camera
    addon.prefs.set_scene_camera = make_scene_camera
    assert _estimate() == {"FINISHED"}, _state().last_error
    camera = next(o for o in _runs()[-1].objects if o.get("ivlm_role") == "camera")
    area, _ = _view3d()
    space = area.spaces.active
    space.region_3d.view_perspective = "PERSP"
    with bpy.context.temp_override(area=area):
        assert bpy.ops.ivlm.view_photo_camera() == {"FINISHED"}
    assert space.region_3d.view_perspective == "CAMERA"
    if make_scene_camera:
        assert bpy.context.scene.camera == camera and not space.use_local_camera
    else:
        assert bpy.context.scene.camera == user_camera
        assert space.use_local_camera and space.camera == camera
    assert camera.data.show_background_images and camera.data.background_images[0].image == photo.data


# -- a result without contacts, Mark Contact, Refit ------------------------------------------------------------------

GRID_N, GRID_STEP = 21, 0.025  # the stand-in body: a 0.5 m square sheet of 21 x 21 vertices, 2 m from the camera


def _sheet_body(result: dict[str, Any]) -> None:
    vertices: list[float] = []
    for row in range(GRID_N):
        for column in range(GRID_N):
            vertices += [(column - 10) * GRID_STEP, (row - 10) * GRID_STEP, 2.0]  # OpenCV frame: depth 2 m
    faces: list[int] = []
    for row in range(GRID_N - 1):
        for column in range(GRID_N - 1):
            i = row * GRID_N + column
            faces += [i, i + 1, i + GRID_N + 1, i, i + GRID_N + 1, i + GRID_N]
    count = GRID_N * GRID_N
    result["body"].update(
        vertices=fake_server.encode(vertices, "float32", [count, 3]),
        faces=fake_server.encode(faces, "int32", [len(faces) // 3, 3]),
    )


def _no_contact_run(server: fake_server.FakeServer, tmp_path: Path, how: str) -> tuple[Any, Any]:
    """A run whose result has no contact (None, or all zeros), with a 0.3 m grid "mug" (31 x 31 vertices, 1 cm
    apart) placed 1.5 m in front of the camera, facing it, before the sheet body."""

    def without_contacts(result: dict[str, Any]) -> None:
        _sheet_body(result)
        for obj in result["objects"]:
            obj["camera_from_object"][2][3] = 1.5
            count = fake_server.decode_count(server.estimates[-1]["objects"][0]["vertices"])
            zeros = how == "zeros"
            obj["object_contact"] = fake_server.encode([0.0] * count, "float32", [count]) if zeros else None
            obj["body_contact"] = fake_server.encode([0.0] * GRID_N**2, "float32", [GRID_N**2]) if zeros else None

    bpy.ops.wm.read_homefile(use_empty=True)
    _photo_empty(_png(tmp_path / "photo.png"))
    bpy.ops.mesh.primitive_grid_add(x_subdivisions=30, y_subdivisions=30, size=0.3)
    mug = bpy.context.active_object
    mug.name = "mug"
    _select(mug)
    server.edit_result = without_contacts
    assert _estimate() == {"FINISHED"}, _state().last_error
    run = _runs()[-1]
    return _body(run), _placed(run)


def _decoded(addon: SimpleNamespace, payload: dict[str, Any]) -> list[float]:
    values, _ = _module(addon, "core.codec").decode(payload)
    return list(values)


def _dense(obj: bpy.types.Object, group: str) -> list[float]:
    members = _group_weights(obj, group)
    return [members.get(i, 0.0) for i in range(len(obj.data.vertices))]


@pytest.mark.parametrize("how", ["none", "zeros"])
def test_a_run_without_contacts_gets_empty_groups_to_mark_then_refit(
    addon: SimpleNamespace, server: fake_server.FakeServer, tmp_path: Path, how: str
) -> None:
    body, mug = _no_contact_run(server, tmp_path, how)
    group = "contact_mug"
    assert group in body.vertex_groups and group in mug.vertex_groups  # empty, for the user to paint or mark into
    assert _group_weights(body, group) == {} and _group_weights(mug, group) == {}
    assert mug["ivlm_contact_predicted"] is False
    hint = "No contact was predicted for mug. Paint or mark where it touches the body, on both, then press Refit."
    assert hint in " ".join(_draw(addon).labels)

    posts = len(server.requests)  # Refit with nothing marked: said at once, nothing sent
    with pytest.raises(RuntimeError):
        bpy.ops.ivlm.refit("EXEC_DEFAULT")
    assert _state().last_error == (
        "No contact is marked on both the body and mug above the contact thresholds (body 0.50, object 0.50). "
        "Paint or mark where they touch, on the body and on the object, then press Refit."
    )
    assert len(server.requests) == posts

    mark = _module(addon, "blender.mark")
    targets = mark.pair_targets(mug)
    centre = mug.matrix_world @ Vector((0.0, 0.0, 0.0))  # the mug's middle vertex, 1.5 m in front of the camera
    outcome = mark.mark_along_ray(bpy.context, targets, Vector((0, 0, 0)), centre, radius=0.05)  # from the camera
    assert outcome.target.obj == mug and outcome.changed > 0 and (outcome.location - centre).length < 1e-5
    _check_disc(mug, group, centre, 0.05)
    marked = _group_weights(mug, group)
    assert mark.mark_along_ray(bpy.context, targets, Vector((0, 0, 0)), centre, radius=0.02) is not None
    assert _group_weights(mug, group) == pytest.approx(marked, abs=1e-6)  # a smaller disc inside: max, unchanged
    mark.mark_along_ray(bpy.context, targets, Vector((0, 0, 0)), centre, radius=0.02, remove=True)
    after = _group_weights(mug, group)
    middle = min(
        range(len(mug.data.vertices)), key=lambda i: (mug.matrix_world @ mug.data.vertices[i].co - centre).length
    )
    assert middle not in after  # weight 1 - 1: left the group
    for index, weight in marked.items():
        distance = (mug.matrix_world @ mug.data.vertices[index].co - centre).length
        if distance >= 0.02 + 1e-6:
            assert after[index] == pytest.approx(weight, abs=1e-6)  # outside the smaller disc: untouched
        elif index in after and distance < 0.019:  # inside it (not on its rim, where the disc is ~0): less
            assert after[index] < weight
    colours = mug.data.color_attributes["ivlm_contact_color"]
    some = next(iter(after))
    assert colours.data[some].color[0] == pytest.approx(0.6 + 0.4 * after[some], abs=1e-6)
    assert tuple(colours.data[middle].color)[:3] == pytest.approx((0.6, 0.6, 0.6), abs=1e-6)  # no contact: grey

    mark.mark_along_ray(bpy.context, targets, Vector((0, 0, 0)), centre, radius=0.05)  # marked again, for Refit
    aim = Vector((-0.2, 2.0, 0.1))  # on the body sheet, past the mug's side: the body is hit
    with bpy.context.temp_override(area=_view3d()[0]):
        assert bpy.ops.ivlm.mark_contact(object_name=mug.name, ray_origin=(0, 0, 0), ray_direction=aim) == {"FINISHED"}
    _check_disc(body, group, aim, 0.05)

    assert bpy.ops.ivlm.refit("EXEC_DEFAULT") == {"FINISHED"}, _state().last_error
    request = server.bodies[-1]
    assert server.requests[posts] == "POST /v1/fit-jobs" and request["objects"][0]["label"] == "mug"
    assert _decoded(addon, request["objects"][0]["object_contact"]) == pytest.approx(_dense(mug, group), abs=1e-6)
    assert _decoded(addon, request["objects"][0]["body_contact"]) == pytest.approx(_dense(body, group), abs=1e-6)
    assert _state().last_error == "" and mug["ivlm_status"] == "placed"
    bpy.context.view_layer.objects.active = mug
    assert bpy.ops.ivlm.reset_contact() == {"FINISHED"}  # back to the prediction: none
    assert _group_weights(body, group) == {} and _group_weights(mug, group) == {}


def _check_disc(obj: bpy.types.Object, group: str, centre: Vector, radius: float) -> None:
    """The group holds a soft disc around `centre`: 1 at the middle, smooth falloff of the distance along the mesh
    (never more than that of the straight distance, equal along the grid's lines), nothing past the rim."""

    def smooth(t: float) -> float:  # the falloff the disc is specified with
        return 1.0 - t * t * (3.0 - 2.0 * t)

    weights = _group_weights(obj, group)
    world = [obj.matrix_world @ v.co for v in obj.data.vertices]
    middle = min(range(len(world)), key=lambda i: (world[i] - centre).length)
    assert weights[middle] == pytest.approx(smooth((world[middle] - centre).length / radius), abs=1e-3)
    for index, point in enumerate(world):
        distance = (point - centre).length
        if distance >= radius + 1e-5:  # float32 coordinates: a vertex on the rim may land either side
            assert index not in weights, (index, weights[index], distance)
        elif distance < 0.6 * radius:
            assert index in weights
        if index in weights:
            assert weights[index] <= smooth(distance / radius) + 1e-5
    step = next((world[n] - world[middle]).length for n in (middle + 1, middle - 1))
    assert weights[middle + 1] == pytest.approx(smooth((world[middle + 1] - centre).length / radius), abs=2e-3)
    assert step < radius


def _event(kind: str, x: float = 0, y: float = 0, ctrl: bool = False, value: str = "PRESS") -> SimpleNamespace:
    return SimpleNamespace(type=kind, value=value, mouse_x=round(x), mouse_y=round(y), ctrl=ctrl)


PROBE: dict[str, Any] = {}


@pytest.fixture()
def modal_probe(addon: SimpleNamespace) -> Iterator[str]:
    """An operator that is Mark Contact itself, started as invoke() starts it (less the modal handler) and fed
    PROBE["events"] through its own modal(), as Blender would deliver them: headless bpy cannot start an operator
    modally. After each event PROBE["observe"]() is recorded in PROBE["seen"] with modal()'s answer."""
    base = _module(addon, "blender.mark").MarkContactOperator  # not the registered class: see its docstring

    class IVLMTEST_OT_mark_probe(base):  # type: ignore[misc,valid-type]
        """Test only: Mark Contact's modal(), fed events from execute()"""

        bl_idname = "ivlm_test.mark_probe"
        bl_label = "Mark Contact probe"

        def execute(self, context: bpy.types.Context) -> set[str]:
            assert self.begin(context)
            PROBE["poll while marking"] = bpy.ops.ivlm.mark_contact.poll()
            for event in PROBE["events"]:
                PROBE["seen"].append((self.modal(context, event), PROBE["observe"]()))
            return {"FINISHED"}

    bpy.utils.register_class(IVLMTEST_OT_mark_probe)
    try:
        yield "mark_probe"
    finally:
        bpy.utils.unregister_class(IVLMTEST_OT_mark_probe)
        PROBE.clear()


def test_mark_contact_in_the_3d_view_clicks_ctrl_clicks_and_esc(
    addon: SimpleNamespace, server: fake_server.FakeServer, tmp_path: Path, modal_probe: str
) -> None:
    """Started from the sidebar: a click in the 3D view marks the mesh under the mouse, Ctrl+click removes, clicks
    outside the view and other keys pass through (navigation, the panel), Esc undoes the session's marks, Enter
    ends it and keeps them."""
    body, mug = _no_contact_run(server, tmp_path, "none")
    area, window = _view3d()
    ui = next(r for r in area.regions if r.type == "UI")
    header = next(r for r in area.regions if r.type == "HEADER")
    centre = mug.matrix_world @ Vector((0.0, 0.0, 0.0))
    pixel = view3d_utils.location_3d_to_region_2d(window, area.spaces.active.region_3d, centre)
    x, y = window.x + pixel.x, window.y + pixel.y
    click = _event("LEFTMOUSE", x, y)

    def observe() -> tuple[dict[int, float], dict[int, float]]:
        return _group_weights(mug, "contact_mug"), _group_weights(body, "contact_mug")

    PROBE.update(
        observe=observe,
        seen=[],
        events=[
            click,
            _event("LEFTMOUSE", x, y, ctrl=True),
            click,
            _event("LEFTMOUSE", header.x + 5, header.y + 5),
            _event("LEFTMOUSE", window.x - 5, window.y - 5),
            _event("MIDDLEMOUSE", x, y),
            _event("LEFTMOUSE", x, y, value="RELEASE"),
            _event("ESC"),
        ],
    )
    with bpy.context.temp_override(area=area, region=ui):  # pressed in the sidebar
        assert bpy.ops.ivlm_test.mark_probe(object_name=mug.name) == {"FINISHED"}
    assert PROBE["poll while marking"] is False  # one session at a time
    statuses = [status for status, _ in PROBE["seen"]]
    assert statuses == [{"RUNNING_MODAL"}] * 3 + [{"PASS_THROUGH"}] * 4 + [{"CANCELLED"}]
    (marked, body_marks), (removed, _), (again, _) = (weights for _, weights in PROBE["seen"][:3])
    assert marked and max(marked.values()) > 0.9 and body_marks == {}  # the mug was under the mouse, not the body
    assert removed == {}  # Ctrl+click took the same disc away
    assert again == pytest.approx(marked, abs=1e-6)
    assert all(weights == (again, {}) for _, weights in PROBE["seen"][3:7])  # passed through: nothing changed
    assert PROBE["seen"][-1][1] == ({}, {})  # Esc: as before the session
    assert bpy.ops.ivlm.mark_contact.poll()  # the session ended

    PROBE.update(seen=[], events=[click, _event("RET")])
    with bpy.context.temp_override(area=area, region=ui):
        assert bpy.ops.ivlm_test.mark_probe(object_name=mug.name) == {"FINISHED"}
    assert [status for status, _ in PROBE["seen"]] == [{"RUNNING_MODAL"}, {"FINISHED"}]
    assert _group_weights(mug, "contact_mug") == pytest.approx(marked, abs=1e-6)  # Enter keeps the marks
    assert bpy.ops.ivlm.mark_contact.poll()

    with pytest.raises(RuntimeError, match=r"IVLM body \(DEMO\) is not a placed object of a run. Use a Mark button"):
        bpy.ops.ivlm.mark_contact(object_name=body.name)


def test_mark_contact_measures_in_the_world_and_follows_a_deformed_mesh(
    addon: SimpleNamespace, server: fake_server.FakeServer, tmp_path: Path
) -> None:
    """The radius is in world metres (a mesh scaled 2x gets a disc of the same size in the world), and a mesh
    moved by a deforming modifier is marked where it is shown; a missed ray marks nothing."""
    body, mug = _no_contact_run(server, tmp_path, "none")
    mark = _module(addon, "blender.mark")
    mug.scale = (2.0, 2.0, 2.0)
    bpy.context.view_layer.update()
    targets = mark.pair_targets(mug)
    centre = mug.matrix_world @ Vector((0.0, 0.0, 0.0))
    mark.mark_along_ray(bpy.context, targets, Vector((0, 0, 0)), centre, radius=0.05)
    _check_disc(mug, "contact_mug", centre, 0.05)
    assert mark.mark_along_ray(bpy.context, targets, Vector((0, 0, 0)), Vector((0, -1, 0)), radius=0.05) is None

    mug.scale = (1.0, 1.0, 1.0)  # out of the way of the ray at the body
    wave = body.modifiers.new("lift", "DISPLACE")  # moves every vertex 0.3 m along its normal (towards the camera)
    wave.strength, wave.mid_level = 0.3, 0.0
    bpy.context.view_layer.update()
    aim = Vector((-0.2, 2.0, 0.1))
    outcome = mark.mark_along_ray(bpy.context, targets, Vector((0, 0, 0)), aim, radius=0.05)
    assert outcome is not None and outcome.target.obj == body
    assert math.isclose(abs(outcome.location.y - 2.0), 0.3, abs_tol=0.05)  # hit where the sheet is shown
    shown = array.array("f", [0.0]) * (3 * len(body.data.vertices))
    evaluated = body.evaluated_get(bpy.context.evaluated_depsgraph_get())
    mesh = evaluated.to_mesh()
    mesh.vertices.foreach_get("co", shown)
    evaluated.to_mesh_clear()
    weights = _group_weights(body, "contact_mug")
    assert weights
    for index in weights:  # every marked vertex is near the hit as shown, not as stored
        point = body.matrix_world @ Vector(shown[3 * index : 3 * index + 3])
        assert (point - outcome.location).length < 0.05
