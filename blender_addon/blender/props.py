"""UI state: per-window (not saved) job progress and server status; per-scene fallback photo path."""

from __future__ import annotations

import bpy
from bpy.props import BoolProperty, FloatProperty, PointerProperty, StringProperty


class IVLM_PG_window(bpy.types.PropertyGroup):
    running: BoolProperty(default=False)
    progress: FloatProperty(default=0.0, min=0.0, max=1.0)
    stage: StringProperty(default="")
    message: StringProperty(default="")
    server_status: StringProperty(default="")
    last_error: StringProperty(default="")


class IVLM_PG_scene(bpy.types.PropertyGroup):
    image_path: StringProperty(name="Photo", subtype="FILE_PATH",
                               description="The reference photo, when no Image Empty or camera background holds it")
    apply_modifiers: BoolProperty(name="Apply modifiers", default=False,
                                  description="Send the objects as evaluated (with modifiers)")


CLASSES = (IVLM_PG_window, IVLM_PG_scene)


def register() -> None:
    bpy.types.WindowManager.ivlm = PointerProperty(type=IVLM_PG_window)
    bpy.types.Scene.ivlm = PointerProperty(type=IVLM_PG_scene)
    bpy.types.Object.ivlm_label = StringProperty(
        name="Label", default="", description="What this object is, e.g. 'chair' or 'cup' (empty: its name)"
    )


def unregister() -> None:
    del bpy.types.WindowManager.ivlm
    del bpy.types.Scene.ivlm
    del bpy.types.Object.ivlm_label
