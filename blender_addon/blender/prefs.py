"""Add-on preferences: the server, timeouts, thresholds and how results are built."""

from __future__ import annotations

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, StringProperty

from ..core.client import ServerClient
from . import props
from .labels import wrapped_label

ADDON_ID = __package__.rsplit(".", 1)[0]  # "bl_ext.<repo>.interactvlm_contact" or the legacy module name


class IVLM_AddonPreferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_ID

    # `# type: ignore[valid-type]`: Blender's property annotations are calls (see props.py)
    server_url: StringProperty(name="Server URL", default="http://127.0.0.1:8765")  # type: ignore[valid-type]
    token: StringProperty(  # type: ignore[valid-type]
        name="Token", subtype="PASSWORD", description="Bearer token, if the server needs one"
    )
    allow_remote: BoolProperty(  # type: ignore[valid-type]
        name="Allow remote server",
        default=False,
        description="Talk to a server on another machine (needs a token there)",
    )
    connect_timeout: FloatProperty(  # type: ignore[valid-type]
        name="Connect timeout (s)", default=0.5, min=0.05, max=30.0
    )
    read_timeout: FloatProperty(name="Read timeout (s)", default=5.0, min=0.1, max=300.0)  # type: ignore[valid-type]
    poll_interval: FloatProperty(name="Poll interval (s)", default=0.25, min=0.05, max=5.0)  # type: ignore[valid-type]
    body_threshold: FloatProperty(  # type: ignore[valid-type]
        name="Body contact threshold", default=0.5, min=0.0, max=1.0
    )
    object_threshold: FloatProperty(  # type: ignore[valid-type]
        name="Object contact threshold", default=0.5, min=0.0, max=1.0
    )
    object_mode: EnumProperty(  # type: ignore[valid-type]
        name="Placed object",
        items=(
            ("DUPLICATE", "Duplicate", "Place a copy of the object, leave the original untouched"),
            ("IN_PLACE", "In place", "Move the selected object itself"),
        ),
        default="DUPLICATE",
    )
    rig_body: BoolProperty(  # type: ignore[valid-type]
        name="Rig the body",
        default=True,
        description="Add an armature (SMPL-X's 55 joints) with skinning weights, so the body can be posed and animated",
    )
    set_scene_camera: BoolProperty(  # type: ignore[valid-type]
        name="Make the photo camera the scene camera",
        default=True,
        description="Render through the created photo camera, at the photo's size; off: keep the scene's camera "
        "and render size",
    )

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        assert layout is not None  # Blender sets it before calling draw
        col = layout.column()
        col.prop(self, "server_url")
        col.prop(self, "token")
        col.prop(self, "allow_remote")
        row = col.row()
        row.prop(self, "connect_timeout")
        row.prop(self, "read_timeout")
        col.prop(self, "poll_interval")
        row = col.row()
        row.prop(self, "body_threshold")
        row.prop(self, "object_threshold")
        col.prop(self, "object_mode")
        col.prop(self, "rig_body")
        col.prop(self, "set_scene_camera")
        col.operator("ivlm.check_server", icon="URL")
        status = props.window_state(context).server_status
        if status:
            for line in status.split("\n"):
                wrapped_label(col, context, line)


def preferences(context: bpy.types.Context) -> IVLM_AddonPreferences:
    """This add-on's preferences (under its extension or legacy module name)."""
    user_prefs = context.preferences
    addon = user_prefs.addons.get(ADDON_ID) if user_prefs is not None else None
    addon_prefs = addon.preferences if addon is not None else None
    if not isinstance(addon_prefs, IVLM_AddonPreferences):
        raise RuntimeError(f"The add-on {ADDON_ID} is not registered (it has no preferences).")
    return addon_prefs


def client(context: bpy.types.Context) -> ServerClient:
    prefs = preferences(context)
    return ServerClient(
        prefs.server_url,
        token=prefs.token,
        connect_timeout=prefs.connect_timeout,
        read_timeout=prefs.read_timeout,
        allow_remote=prefs.allow_remote,
    )
