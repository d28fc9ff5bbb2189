"""The sidebar panel (View3D > Sidebar > InteractVLM), top to bottom in the order an artist works: the server, the
inputs (photo, objects and their labels), the settings of the next run, Estimate Contact, then the active run's
contacts (paint, mark, refit, reset, look through the photo camera) and its export.

Every message is drawn with `wrapped_label`, so nothing is cut at the sidebar's edge; drawing never changes data
and never waits on the network.
"""

from __future__ import annotations

import json

import bpy

from ..core import contact
from ..core.messages import join_sentences, sentence
from . import build, export, gather, operators, prefs, props
from .labels import wrapped_label


def _draw_server(layout: bpy.types.UILayout, context: bpy.types.Context) -> None:
    layout.operator("ivlm.check_server", icon="URL")
    status = props.window_state(context).server_status
    if status:
        box = layout.box()
        for line in status.split("\n"):
            wrapped_label(box, context, line, icon="ERROR" if "DEMO" in line else "NONE")


def _draw_inputs(layout: bpy.types.UILayout, context: bpy.types.Context) -> None:
    box = layout.box()
    photo, reason = gather.find_image(context)
    if photo is not None:
        wrapped_label(box, context, f"Photo: {photo.image_name or photo.path}", icon="CHECKMARK")
    else:
        wrapped_label(box, context, reason, icon="CANCEL")
        box.prop(props.scene_settings(context), "image_path")
    objects, reason = gather.find_objects(context)
    if not objects:
        wrapped_label(box, context, reason, icon="CANCEL")
        return
    for obj in objects:  # the Label field shows, greyed, the label used while it is empty
        split = box.split(factor=0.45)
        split.label(text=obj.name, icon="MESH_DATA")
        split.prop(obj, "ivlm_label", text="", placeholder=gather.default_label(obj))


def _draw_settings(layout: bpy.types.UILayout, context: bpy.types.Context) -> None:
    """What an artist changes from one run to the next (kept in the add-on's preferences, shown here)."""
    header, body = layout.panel("ivlm_settings", default_closed=False)
    header.label(text="Settings", icon="PREFERENCES")
    if body is None:
        return
    p = prefs.preferences(context)
    column = body.column()
    column.label(text="Contact thresholds")
    row = column.row(align=True)
    row.prop(p, "body_threshold", text="Body", slider=True)
    row.prop(p, "object_threshold", text="Object", slider=True)
    column.label(text="Placed object")
    column.row().prop(p, "object_mode", expand=True)
    column.prop(p, "rig_body")
    column.prop(props.scene_settings(context), "apply_modifiers")
    column.prop(p, "set_scene_camera", text="Photo camera as scene camera")


def _draw_job(layout: bpy.types.UILayout, context: bpy.types.Context) -> None:
    state = props.window_state(context)
    if state.running:
        layout.progress(factor=state.progress, type="BAR", text=state.stage.capitalize())
        wrapped_label(layout, context, sentence(state.message))
        layout.operator("ivlm.cancel", icon="CANCEL")
        return
    layout.operator("ivlm.estimate_contact", icon="PLAY")
    if state.last_error:
        wrapped_label(layout, context, state.last_error, icon="ERROR")


def _run_notes(run: bpy.types.Collection) -> list[str]:
    try:
        notes = json.loads(str(run.get("ivlm_notes", "[]")))
    except ValueError:
        return []
    return [sentence(str(note)) for note in notes if str(note).strip()] if isinstance(notes, list) else []


def _draw_pair(
    layout: bpy.types.UILayout, context: bpy.types.Context, body: bpy.types.Object | None, obj: bpy.types.Object
) -> None:
    """One object of the run: where it touches the body, how to paint or mark that, and why it was not placed."""
    label = str(obj.get("ivlm_label", obj.name))
    group = contact.group_name(label)
    column = layout.column()
    wrapped_label(
        column,
        context,
        f"Contact: body ↔ {label}" if body is not None else f"Contact: {label}",
        icon="MOD_VERTEX_WEIGHT",
    )
    if obj.get("ivlm_status") == "skipped":
        why = str(obj.get("ivlm_reason", "")) or "no reason was given"
        wrapped_label(column, context, join_sentences(f"{label} was not placed: {why}"), icon="ERROR")
    if not obj.get("ivlm_contact_predicted", True):
        wrapped_label(
            column,
            context,
            join_sentences(
                f"No contact was predicted for {label}",
                "Paint or mark where it touches the body, on both, then press Refit",
            ),
            icon="INFO",
        )
    row = column.row(align=True)
    for target, name in ((body, "body"), (obj, label)):
        if target is not None and group in target.vertex_groups:
            paint = row.operator("ivlm.paint_contact", text=f"Paint {name}", icon="BRUSH_DATA")
            paint.object_name, paint.group = target.name, group
    row.operator("ivlm.mark_contact", text="Mark", icon="RESTRICT_SELECT_OFF").object_name = obj.name


def _draw_run(layout: bpy.types.UILayout, context: bpy.types.Context, run: bpy.types.Collection) -> None:
    box = layout.box()
    wrapped_label(box, context, f"Run: {run.name}", icon="OUTLINER_COLLECTION")
    if run.get("ivlm_demo"):
        wrapped_label(box, context, "DEMO results: made by generated models, they are not meaningful.", icon="ERROR")
    for note in _run_notes(run):
        wrapped_label(box, context, note, icon="INFO")
    body, objects = build.run_objects(run)
    for obj in objects:
        _draw_pair(box, context, body, obj)
    box.prop(props.scene_settings(context), "mark_radius", text="Mark radius")
    row = box.row()
    row.operator("ivlm.refit", icon="FILE_REFRESH")
    row.operator("ivlm.reset_contact", icon="LOOP_BACK")
    box.operator("ivlm.view_photo_camera", icon="VIEW_CAMERA")


def _draw_export(layout: bpy.types.UILayout) -> None:
    header, body = layout.panel("ivlm_export", default_closed=False)
    header.label(text="Export", icon="EXPORT")
    if body is None:
        return
    row = body.row(align=True)
    for preset, spec in export.PRESETS.items():
        row.operator("ivlm.export", text=spec["label"]).preset = preset


class IVLM_PT_main(bpy.types.Panel):
    bl_label = "InteractVLM"
    bl_idname = "IVLM_PT_main"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "InteractVLM"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        assert layout is not None  # Blender sets it before calling draw
        _draw_server(layout, context)
        _draw_inputs(layout, context)
        _draw_settings(layout, context)
        _draw_job(layout, context)
        run = operators.active_run(context)
        if run is not None:
            _draw_run(layout, context, run)
            _draw_export(layout)


CLASSES = (IVLM_PT_main,)
