"""Reading the inputs from the scene: the reference photo, the selected meshes and their labels.

Every `find_*` returns the thing or a reason it is missing; operators show the reason instead of raising.
"""

from __future__ import annotations

import array
import os
import tempfile

import bpy

from ..core import codec

PHOTO_EXTENSIONS = (".png", ".jpg", ".jpeg")


def _is_image_empty(obj: bpy.types.Object | None) -> bool:
    return obj is not None and obj.type == "EMPTY" and obj.empty_display_type == "IMAGE" and obj.data is not None


def find_image(context: bpy.types.Context) -> tuple[bpy.types.Image | None, str]:
    """The reference photo: the active (or a selected) Image Empty, else the only visible one, the camera's
    background, the Image Editor's image, or the scene's photo path, in that order."""
    candidates = [context.active_object, *getattr(context, "selected_objects", [])]
    for obj in candidates:
        if _is_image_empty(obj):
            return obj.data, ""
    visible = [o for o in context.view_layer.objects if _is_image_empty(o) and o.visible_get()]
    if len(visible) == 1:
        return visible[0].data, ""
    if len(visible) > 1:
        return None, f"{len(visible)} reference images are visible: select the photo's Image Empty"
    camera = context.scene.camera
    if camera is not None and camera.type == "CAMERA":
        for background in camera.data.background_images:
            if background.image is not None:
                return background.image, ""
    screen = getattr(context, "screen", None)
    for area in screen.areas if screen else ():
        if area.type == "IMAGE_EDITOR" and area.spaces.active.image is not None:
            return area.spaces.active.image, ""
    path = bpy.path.abspath(context.scene.ivlm.image_path) if context.scene.ivlm.image_path else ""
    if path:
        if not os.path.isfile(path):
            return None, f"The photo {path} does not exist"
        return bpy.data.images.load(path, check_existing=True), ""
    return None, "Add the photo as an Image Empty (Add > Image > Reference) or pick it in the panel"


def find_objects(context: bpy.types.Context) -> tuple[list[bpy.types.Object], str]:
    objects = [o for o in getattr(context, "selected_objects", []) if o.type == "MESH" and not o.get("ivlm_role")]
    if not objects:
        return [], "Select the object mesh(es) the person uses"
    empty = [o.name for o in objects if len(o.data.vertices) == 0]
    if empty:
        return [], f"{', '.join(empty)} has no vertices"
    if len(objects) > 8:
        return [], "Select at most 8 objects"
    return objects, ""


def label_of(obj: bpy.types.Object) -> str:
    """The label the model is asked about: the object's Label field, else its name without '.001' suffixes."""
    label = obj.ivlm_label.strip() or obj.name.split(".")[0]
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


def object_arrays(obj: bpy.types.Object, depsgraph, apply_modifiers: bool) -> dict:  # noqa: ANN001
    """The object's triangles in its local frame, scaled by its world scale (metres), as API arrays."""
    source = obj.evaluated_get(depsgraph) if apply_modifiers else obj
    mesh = source.to_mesh() if apply_modifiers else obj.data
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
