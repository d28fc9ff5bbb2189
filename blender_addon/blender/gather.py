"""Reading the inputs from the scene: the reference photo, the selected meshes and their labels.

Every `find_*` returns the thing or a reason it is missing; operators show the reason instead of raising.
"""

from __future__ import annotations

import array
import os
import tempfile
from collections.abc import Iterable
from typing import Any

import bpy

from ..core import codec
from . import props

PHOTO_EXTENSIONS = (".png", ".jpg", ".jpeg")


def _empty_image(obj: bpy.types.Object | None) -> bpy.types.Image | None:
    """The image an Image Empty shows; None for any other object, or an Image Empty without an image."""
    if obj is None or obj.type != "EMPTY" or obj.empty_display_type != "IMAGE":
        return None
    return obj.data if isinstance(obj.data, bpy.types.Image) else None


def mesh_of(obj: bpy.types.Object) -> bpy.types.Mesh:
    """The object's mesh. The add-on reads and builds meshes only; anything else is a TypeError, not a guess."""
    if not isinstance(obj.data, bpy.types.Mesh):
        raise TypeError(f"{obj.name} is a {obj.type.lower()}, not a mesh")
    return obj.data


def find_image(context: bpy.types.Context) -> tuple[bpy.types.Image | None, str]:
    """The reference photo: the active (or a selected) Image Empty, else the only visible one, the camera's
    background, the Image Editor's image, or the scene's photo path, in that order."""
    candidates = [context.active_object, *getattr(context, "selected_objects", [])]
    for obj in candidates:
        image = _empty_image(obj)
        if image is not None:
            return image, ""
    layer_objects: Iterable[bpy.types.Object] = context.view_layer.objects if context.view_layer is not None else ()
    visible = [image for o in layer_objects if (image := _empty_image(o)) is not None and o.visible_get()]
    if len(visible) == 1:
        return visible[0], ""
    if len(visible) > 1:
        return None, f"{len(visible)} reference images are visible: select the photo's Image Empty"
    camera = context.scene.camera if context.scene is not None else None
    if camera is not None and isinstance(camera.data, bpy.types.Camera):
        for background in camera.data.background_images:
            if background.image is not None:
                return background.image, ""
    screen = getattr(context, "screen", None)
    for area in screen.areas if screen else ():
        space = area.spaces.active
        if area.type == "IMAGE_EDITOR" and isinstance(space, bpy.types.SpaceImageEditor) and space.image is not None:
            return space.image, ""
    image_path = props.scene_settings(context).image_path
    path = bpy.path.abspath(image_path) if image_path else ""
    if path:
        if not os.path.isfile(path):
            return None, f"The photo {path} does not exist"
        return bpy.data.images.load(path, check_existing=True), ""
    return None, "Add the photo as an Image Empty (Add > Image > Reference) or pick it in the panel"


def find_objects(context: bpy.types.Context) -> tuple[list[bpy.types.Object], str]:
    objects = [o for o in getattr(context, "selected_objects", []) if o.type == "MESH" and not o.get("ivlm_role")]
    if not objects:
        return [], "Select the object mesh(es) the person uses"
    empty = [o.name for o in objects if len(mesh_of(o).vertices) == 0]
    if empty:
        return [], f"{', '.join(empty)} has no vertices"
    if len(objects) > 8:
        return [], "Select at most 8 objects"
    return objects, ""


def label_of(obj: bpy.types.Object) -> str:
    """The label the model is asked about: the object's Label field, else its name without '.001' suffixes."""
    label = props.object_label(obj).strip() or obj.name.split(".")[0]
    return label.replace("_", " ").strip() or "object"


def photo_bytes(image: bpy.types.Image) -> tuple[bytes, str]:
    """The photo file as sent: its packed or on-disk PNG/JPEG bytes, else a PNG copy of its pixels."""
    if image.packed_file is not None and image.filepath.lower().endswith(PHOTO_EXTENSIONS):
        return bytes(image.packed_file.data), image.name
    path = bpy.path.abspath(image.filepath) if image.filepath else ""
    if path and os.path.isfile(path) and path.lower().endswith(PHOTO_EXTENSIONS):
        with open(path, "rb") as stream:
            return stream.read(), path
    with tempfile.TemporaryDirectory() as folder:
        target = os.path.join(folder, "photo.png")
        image.save_render(target)
        with open(target, "rb") as stream:
            return stream.read(), image.name


def object_arrays(obj: bpy.types.Object, depsgraph: bpy.types.Depsgraph, apply_modifiers: bool) -> dict[str, Any]:
    """The object's triangles in its local frame, scaled by its world scale (metres), as API arrays."""
    source = obj.evaluated_get(depsgraph) if apply_modifiers else obj
    mesh = source.to_mesh() if apply_modifiers else mesh_of(obj)
    try:
        mesh.calc_loop_triangles()
        vertices = array.array("f", bytes(4 * 3 * len(mesh.vertices)))
        mesh.vertices.foreach_get("co", vertices)
        triangles = array.array("i", bytes(4 * 3 * len(mesh.loop_triangles)))
        mesh.loop_triangles.foreach_get("vertices", triangles)
        count = len(mesh.vertices)
    finally:
        if apply_modifiers:
            source.to_mesh_clear()
    scale = obj.matrix_world.to_scale()
    for axis in range(3):
        if scale[axis] != 1.0:
            vertices[axis::3] = array.array("f", (v * scale[axis] for v in vertices[axis::3]))
    return {
        "label": label_of(obj),
        "vertices": codec.encode(vertices, "float32", [count, 3]),
        "faces": codec.encode(triangles, "int32", [len(triangles) // 3, 3]),
    }
