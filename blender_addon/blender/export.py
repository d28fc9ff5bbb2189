"""Export a run for animation: contacts baked into attributes every format keeps, plus a sidecar JSON.

FBX and glTF drop non-bone vertex groups (see the README's table), so before export each mesh gets a colour
attribute (`ivlm_contact_color`) and a `_contact` float attribute (glTF keeps `_`-prefixed ones), and
`<file>.ivlm.json` records per group the vertex indices and weights, the object transforms and provenance.
"""

from __future__ import annotations

import os
from typing import Any

import bpy

from ..core import contact
from ..core.protocol import InputError
from . import build, gather

PRESETS = {  # label: the format's name as its owner spells it (Autodesk FBX, Khronos glTF, OpenUSD)
    "fbx": {"ext": ".fbx", "label": "FBX"},
    "gltf": {"ext": ".glb", "label": "glTF"},
    "usd": {"ext": ".usdc", "label": "USD"},
}
CONTACT_ATTRIBUTE = "_contact"


def bake(obj: bpy.types.Object) -> None:
    mesh = gather.mesh_of(obj)
    strength = build.contact_strength(obj)
    if CONTACT_ATTRIBUTE not in mesh.attributes:
        mesh.attributes.new(CONTACT_ATTRIBUTE, "FLOAT", "POINT")
    attribute = mesh.attributes[CONTACT_ATTRIBUTE]
    if not isinstance(attribute, bpy.types.FloatAttribute):  # e.g. the user's own attribute under our name
        raise InputError(
            f"{obj.name} has a {attribute.data_type.lower()} attribute named {CONTACT_ATTRIBUTE}.",
            "Rename that attribute, then export again.",
        )
    attribute.data.foreach_set("value", strength)
    build.paint_contact_colors(obj)


def _sidecar(collection: bpy.types.Collection, meshes: list[bpy.types.Object]) -> dict[str, Any]:
    groups: dict[str, dict[str, dict[str, Any]]] = {}
    objects: dict[str, dict[str, Any]] = {}
    for obj in meshes:
        groups[obj.name] = {}
        for group in build.contact_groups(obj):
            weights = build.group_weights(obj, group)
            indices = [i for i, w in enumerate(weights) if w > 0.0]
            groups[obj.name][group] = {"indices": indices, "weights": [round(float(weights[i]), 6) for i in indices]}
        objects[obj.name] = {
            "role": obj.get("ivlm_role"),
            "label": obj.get("ivlm_label"),
            "vertex_count": len(gather.mesh_of(obj).vertices),
            "matrix_world": [list(row) for row in obj.matrix_world.row],
        }
    keys = (
        "ivlm_job_id",
        "ivlm_refit_job_id",
        "ivlm_schema",
        "ivlm_result_schema",
        "ivlm_server_version",
        "ivlm_demo",
        "ivlm_models",
        "ivlm_thresholds",
        "ivlm_source_image",
        "ivlm_frame",
    )
    present = collection.keys()
    provenance = {k: collection[k] for k in keys if k in present}
    provenance["blender_version"] = bpy.app.version_string
    return contact.sidecar(groups, objects, provenance)


def export_run(
    context: bpy.types.Context, collection: bpy.types.Collection, filepath: str, preset: str
) -> tuple[str, str]:
    """Writes the run's meshes (and camera) to `filepath` in the preset's format, and the sidecar beside it."""
    if preset not in PRESETS:
        raise InputError(f"There is no export preset {preset!r}.", f"Choose one of {', '.join(PRESETS)}.")
    filepath = bpy.path.ensure_ext(filepath, PRESETS[preset]["ext"])
    folder = os.path.dirname(os.path.abspath(filepath))
    if not os.path.isdir(folder):
        raise InputError(f"The folder {folder} does not exist.", "Choose an existing folder.")
    meshes = [o for o in collection.objects if o.type == "MESH"]
    for obj in meshes:
        bake(obj)
    if context.object is not None and context.object.mode != "OBJECT":
        bpy.ops.object.mode_set(mode="OBJECT")
    if context.view_layer is None:
        raise InputError("There is no view layer to select the run's objects in.", "Open a scene with a view layer.")
    in_run = {o.name for o in collection.objects}
    for obj in context.view_layer.objects:
        obj.select_set(obj.name in in_run)
    if preset == "fbx":
        # No leaf bones: the rig's 55 bones are SMPL-X's joints, and engines and retargeters expect those only.
        bpy.ops.export_scene.fbx(filepath=filepath, use_selection=True, use_custom_props=True, add_leaf_bones=False)
    elif preset == "gltf":
        bpy.ops.export_scene.gltf(
            filepath=filepath,
            use_selection=True,
            export_extras=True,
            export_cameras=True,
            export_attributes=True,
            export_format="GLB",
        )
    else:
        bpy.ops.wm.usd_export(filepath=filepath, selected_objects_only=True, export_custom_properties=True)
    sidecar_path = os.path.splitext(filepath)[0] + ".ivlm.json"
    contact.write_json_atomic(sidecar_path, _sidecar(collection, meshes))

    return filepath, sidecar_path
