"""Add-on preferences: the server, timeouts, thresholds and how results are built."""

from __future__ import annotations

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, StringProperty

from ..core.client import ServerClient

ADDON_ID = __package__.rsplit(".", 1)[0]  # "bl_ext.<repo>.interactvlm_contact" or the legacy module name


class IVLM_AddonPreferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_ID

    server_url: StringProperty(name="Server URL", default="http://127.0.0.1:8765")
    token: StringProperty(name="Token", subtype="PASSWORD", description="Bearer token, if the server needs one")
    allow_remote: BoolProperty(name="Allow remote server", default=False,
                               description="Talk to a server on another machine (needs a token there)")
    connect_timeout: FloatProperty(name="Connect timeout (s)", default=0.5, min=0.05, max=30.0)
    read_timeout: FloatProperty(name="Read timeout (s)", default=5.0, min=0.1, max=300.0)
    poll_interval: FloatProperty(name="Poll interval (s)", default=0.25, min=0.05, max=5.0)
    body_threshold: FloatProperty(name="Body contact threshold", default=0.5, min=0.0, max=1.0)
    object_threshold: FloatProperty(name="Object contact threshold", default=0.5, min=0.0, max=1.0)
    object_mode: EnumProperty(
        name="Placed object",
        items=(("DUPLICATE", "Duplicate", "Place a copy of the object, leave the original untouched"),
               ("IN_PLACE", "In place", "Move the selected object itself")),
        default="DUPLICATE",
    )
    rig_body: BoolProperty(name="Rig the body", default=False, description="Add an armature with skinning weights")

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
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
        col.operator("ivlm.check_server", icon="URL")
        status = context.window_manager.ivlm.server_status
        if status:
            for line in status.split("\n"):
                col.label(text=line)


def preferences(context: bpy.types.Context) -> IVLM_AddonPreferences:
    return context.preferences.addons[ADDON_ID].preferences


def client(context: bpy.types.Context) -> ServerClient:
    prefs = preferences(context)
    return ServerClient(prefs.server_url, token=prefs.token, connect_timeout=prefs.connect_timeout,
                        read_timeout=prefs.read_timeout, allow_remote=prefs.allow_remote)
