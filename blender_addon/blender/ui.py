"""The sidebar panel (View3D > Sidebar > InteractVLM)."""

from __future__ import annotations

import bpy

from . import build, gather, operators, props
from .labels import wrapped_label


class IVLM_PT_main(bpy.types.Panel):
    bl_label = "InteractVLM"
    bl_idname = "IVLM_PT_main"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "InteractVLM"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        assert layout is not None  # Blender sets it before calling draw
        state = props.window_state(context)
        settings = props.scene_settings(context)
        row = layout.row()
        row.operator("ivlm.check_server", icon="URL")
        if state.server_status:
            box = layout.box()
            for line in state.server_status.split("\n"):
                wrapped_label(box, context, line, icon="ERROR" if "DEMO" in line else "NONE")

        box = layout.box()
        photo, reason = gather.find_image(context)
        if photo is not None:
            wrapped_label(box, context, f"Photo: {photo.image_name or photo.path}", icon="CHECKMARK")
        else:
            wrapped_label(box, context, reason, icon="CANCEL")
            box.prop(settings, "image_path")
        objects, reason = gather.find_objects(context)
        if objects:
            for obj in objects:
                split = box.split(factor=0.45)
                split.label(text=obj.name, icon="MESH_DATA")
                split.prop(obj, "ivlm_label", text="")
        else:
            wrapped_label(box, context, reason, icon="CANCEL")
        box.prop(settings, "apply_modifiers")

        if state.running:
            layout.progress(factor=state.progress, type="BAR", text=f"{state.stage}: {state.message}")
            layout.operator("ivlm.cancel", icon="CANCEL")
        else:
            layout.operator("ivlm.estimate_contact", icon="PLAY")
            if state.last_error:
                wrapped_label(layout, context, state.last_error, icon="ERROR")

        run = operators.active_run(context)
        if run is not None:
            box = layout.box()
            box.label(text=f"Run: {run.name}")
            if run.get("ivlm_demo"):
                wrapped_label(
                    box, context, "DEMO results: made by generated models, they are not meaningful.", icon="ERROR"
                )
            body, objects = build.run_objects(run)
            for obj in ([body] if body else []) + objects:
                for group in build.contact_groups(obj):
                    op = box.operator("ivlm.paint_contact", text=f"Paint {obj.name}: {group}", icon="BRUSH_DATA")
                    op.object_name, op.group = obj.name, group
            row = box.row()
            row.operator("ivlm.refit", icon="FILE_REFRESH")
            row.operator("ivlm.reset_contact", icon="LOOP_BACK")
            row = box.row()
            for preset in ("fbx", "gltf", "usd"):
                row.operator("ivlm.export", text=preset.upper()).preset = preset


CLASSES = (IVLM_PT_main,)
