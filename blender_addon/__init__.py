"""InteractVLM for Blender: Estimate Contact from a photo, paint-refine, refit, export.

Registration only. `core/` is bpy-free; the Blender layer is imported inside register(), so the core can be
imported and tested in plain Python.
"""

bl_info = {  # for installing as a legacy add-on; the extension manifest is blender_manifest.toml
    "name": "InteractVLM Contact",
    "author": "InteractVLM for Blender contributors",
    "version": (0, 1, 0),
    "blender": (4, 2, 0),
    "location": "View3D > Sidebar > InteractVLM",
    "description": "Body, placed object and contact regions from one photo, via a local InteractVLM server",
    "category": "3D View",
}


def register() -> None:
    from . import blender

    blender.register()


def unregister() -> None:
    from . import blender

    blender.unregister()
