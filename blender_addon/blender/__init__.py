"""The Blender layer: everything that touches bpy. Registered from the add-on's __init__."""

from __future__ import annotations

import bpy
from bpy.app.handlers import persistent

from . import mark, operators, prefs, props, ui

_CLASSES = (*props.CLASSES, prefs.IVLM_AddonPreferences, *operators.CLASSES, *mark.CLASSES, *ui.CLASSES)


@persistent
def _cancel_on_load(*_args: object) -> None:
    """Modal handlers die when a file loads, so the job they were watching is cancelled with them."""
    operators.cancel_all()


def register() -> None:
    unregister(quiet=True)  # idempotent: a re-register after a failed unregister must not raise
    for cls in _CLASSES:
        bpy.utils.register_class(cls)
    props.register()
    bpy.app.handlers.load_pre.append(_cancel_on_load)
    bpy.app.timers.register(operators.health_tick, first_interval=operators.HEALTH_TICK_S, persistent=True)


def unregister(quiet: bool = False) -> None:
    # Also what cancels a running job when Blender quits: Blender disables every add-on on its way out.
    operators.cancel_all()
    if bpy.app.timers.is_registered(operators.health_tick):
        bpy.app.timers.unregister(operators.health_tick)
    if _cancel_on_load in bpy.app.handlers.load_pre:
        bpy.app.handlers.load_pre.remove(_cancel_on_load)
    try:
        props.unregister()
    except AttributeError:
        if not quiet:
            raise
    for cls in reversed(_CLASSES):
        if getattr(cls, "is_registered", False):
            bpy.utils.unregister_class(cls)
