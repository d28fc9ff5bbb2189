"""Rigging the body: an armature whose rest pose is the fitted body, and skinning vertex groups per joint."""

from __future__ import annotations

import bpy
from mathutils import Vector

from ..core import codec, frames, rig


def build_armature(collection: bpy.types.Collection, body: bpy.types.Object, skeleton: dict) -> bpy.types.Object:
    """Adds the armature, one vertex group per joint with the model's weights, and an Armature modifier."""
    names = list(skeleton["joint_names"])
    parents = list(codec.decode(skeleton["parents"])[0])
    flat = frames.cv_points_to_world(codec.decode(skeleton["joints"])[0])
    joints = [(flat[i], flat[i + 1], flat[i + 2]) for i in range(0, len(flat), 3)]
    layout = rig.bone_layout(names, parents, joints)
    batches = rig.weight_batches(
        codec.decode(skeleton["weight_vertex"])[0],
        codec.decode(skeleton["weight_joint"])[0],
        codec.decode(skeleton["weight_value"])[0],
        len(names),
    )

    data = bpy.data.armatures.new("IVLM skeleton")
    armature = bpy.data.objects.new("IVLM armature", data)
    armature["ivlm_role"] = "armature"
    armature.show_in_front = True
    collection.objects.link(armature)
    _add_bones(armature, data, names, parents, layout)

    for name, groups in zip(names, batches, strict=True):
        vertex_group = body.vertex_groups.new(name=name)
        for weight, indices in groups.items():
            vertex_group.add(indices, weight, "REPLACE")
    modifier = body.modifiers.new("IVLM skinning", "ARMATURE")
    assert isinstance(modifier, bpy.types.ArmatureModifier)  # what modifiers.new("ARMATURE") makes
    modifier.object = armature
    body.parent = armature
    return armature


def _add_bones(
    armature: bpy.types.Object,
    data: bpy.types.Armature,
    names: list[str],
    parents: list[int],
    layout: list[tuple[rig.Vector3, rig.Vector3]],
) -> None:
    """Edit bones exist only in Edit Mode, so the armature is made active and edited briefly."""
    if bpy.context.mode != "OBJECT":  # e.g. still in Weight Paint on an earlier run's body
        bpy.ops.object.mode_set(mode="OBJECT")
    view_layer = bpy.context.view_layer
    if view_layer is None:
        raise RuntimeError("no view layer in this context to edit the armature in")
    previous = view_layer.objects.active
    view_layer.objects.active = armature
    bpy.ops.object.mode_set(mode="EDIT")
    try:
        edit_bones = data.edit_bones
        bones = []
        for name, (head, tail) in zip(names, layout, strict=True):
            bone = edit_bones.new(name)
            bone.head, bone.tail = Vector(head), Vector(tail)
            bones.append(bone)
        for bone, parent in zip(bones, parents, strict=True):
            if parent >= 0:
                bone.parent = bones[parent]
    finally:
        bpy.ops.object.mode_set(mode="OBJECT")
        view_layer.objects.active = previous
