"""UI state: per-window (not saved) job progress and server status; per scene the fallback photo path, Apply
modifiers and the Mark Contact radius.

Properties are declared the Blender way, as annotations whose value is a `bpy.props` call. Type checkers cannot
read that syntax (fake-bpy-module issue 164), hence `# type: ignore[valid-type]` on each declaration; the values
read back are untyped. The attributes added to Blender's own types at register time are unknown to the stubs, so
the rest of the add-on reaches them through the typed accessors at the bottom.
"""

from __future__ import annotations

import bpy
from bpy.props import BoolProperty, FloatProperty, PointerProperty, StringProperty


class IVLM_PG_window(bpy.types.PropertyGroup):
    running: BoolProperty(default=False)  # type: ignore[valid-type]
    progress: FloatProperty(default=0.0, min=0.0, max=1.0)  # type: ignore[valid-type]
    stage: StringProperty(default="")  # type: ignore[valid-type]
    message: StringProperty(default="")  # type: ignore[valid-type]
    server_status: StringProperty(default="")  # type: ignore[valid-type]
    last_error: StringProperty(default="")  # type: ignore[valid-type]


class IVLM_PG_scene(bpy.types.PropertyGroup):
    image_path: StringProperty(  # type: ignore[valid-type]
        name="Photo",
        subtype="FILE_PATH",
        description="The reference photo, when no Image Empty or camera background holds it",
    )
    apply_modifiers: BoolProperty(  # type: ignore[valid-type]
        name="Apply modifiers",
        default=True,
        description="Send the objects as shown, with their modifiers; the placed objects then get that mesh too. "
        "Off: send and place the meshes without their modifiers",
    )
    mark_radius: FloatProperty(  # type: ignore[valid-type]
        name="Radius",
        default=0.05,
        min=0.002,
        max=1.0,
        soft_max=0.3,
        subtype="DISTANCE",
        unit="LENGTH",
        description="Mark Contact: how far around the click the weight reaches, along the surface (full weight at "
        "the click, falling smoothly to none at this distance)",
    )


CLASSES = (IVLM_PG_window, IVLM_PG_scene)


def register() -> None:
    # The stubs type the bpy.props functions as returning None and do not know the new attributes.
    bpy.types.WindowManager.ivlm = PointerProperty(type=IVLM_PG_window)  # type: ignore[attr-defined,func-returns-value]
    bpy.types.Scene.ivlm = PointerProperty(type=IVLM_PG_scene)  # type: ignore[attr-defined,func-returns-value]
    bpy.types.Object.ivlm_label = StringProperty(  # type: ignore[attr-defined,func-returns-value]
        name="Label", default="", description="What this object is, e.g. 'chair' or 'cup' (empty: its name)"
    )


def unregister() -> None:
    del bpy.types.WindowManager.ivlm  # type: ignore[attr-defined]
    del bpy.types.Scene.ivlm  # type: ignore[attr-defined]
    del bpy.types.Object.ivlm_label  # type: ignore[attr-defined]


def window_state(context: bpy.types.Context) -> IVLM_PG_window:
    """The job progress and server status of this Blender session (`WindowManager.ivlm`)."""
    return getattr(context.window_manager, "ivlm")  # noqa: B009 (the stubs do not know the attribute)


def scene_settings(context: bpy.types.Context) -> IVLM_PG_scene:
    """The active scene's InteractVLM settings (`Scene.ivlm`)."""
    return getattr(context.scene, "ivlm")  # noqa: B009 (the stubs do not know the attribute)


def object_label(obj: bpy.types.Object) -> str:
    """The Label typed in the panel for `obj` (`Object.ivlm_label`), empty when none was."""
    return str(getattr(obj, "ivlm_label"))  # noqa: B009 (the stubs do not know the attribute)
