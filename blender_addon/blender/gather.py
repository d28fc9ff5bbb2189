"""Reading the inputs from the scene: the reference photo, the selected meshes and their labels.

Every `find_*` returns the thing or a reason it is missing (whole sentences); the panel and the operators' polls
show the reason instead of raising, and they never add data (panels and polls may not). What Estimate sends is
captured at submit (`capture_object`, `Submitted`), so the result is built from it even when the user renames,
edits or deletes an object while the job runs.
"""

from __future__ import annotations

import array
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import bpy

from ..core import codec
from ..core.protocol import InputError
from . import props

PHOTO_EXTENSIONS = (".png", ".jpg", ".jpeg")
MAX_OBJECTS = 8
RESULT_ROLES = ("body", "armature", "camera")  # made by a run and never sent; placed objects ("object") may be


@dataclass(frozen=True)
class PhotoChoice:
    """The reference photo as found in the scene: an image datablock, or a file picked in the panel (loaded only
    when Estimate runs). `image_uid` is the image's session_uid (0 for a picked file): it survives renames."""

    image_uid: int
    image_name: str
    path: str  # the absolute file on disk; "" for packed or generated images
    source: str  # what the run is named after: the file path, else the image's name


@dataclass
class SourceMesh:
    """One selected object as sent: how to find it again after the job, and the exact arrays sent.

    vertices: float32 flat xyz in the object's local frame scaled by its world scale `scale` (metres);
    triangles: int32 flat vertex indices. `evaluated`: taken with modifiers applied."""

    uid: int
    name: str
    label: str
    vertices: array.array
    triangles: array.array
    scale: tuple[float, float, float]
    evaluated: bool

    @property
    def vertex_count(self) -> int:
        return len(self.vertices) // 3

    def request_entry(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "vertices": codec.encode(self.vertices, "float32", [self.vertex_count, 3]),
            "faces": codec.encode(self.triangles, "int32", [len(self.triangles) // 3, 3]),
        }


@dataclass
class Submitted:
    """Everything an Estimate job's result is built from, captured when it was sent."""

    photo: PhotoChoice
    photo_data: bytes
    photo_ext: str  # ".png" or ".jpg": what photo_data is
    sources: list[SourceMesh] = field(default_factory=list)


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


def shown_positions(obj: bpy.types.Object, depsgraph: bpy.types.Depsgraph) -> tuple[array.array, bool]:
    """The object's own vertices as shown, flat local (x, y, z) float32, and whether the evaluated mesh has the
    same topology: then its positions (modifiers that only move vertices, a posed rig), else the mesh's own (a
    Subdivision adds vertices, and vertex groups belong to the mesh's own)."""
    own = mesh_of(obj)
    evaluated = obj.evaluated_get(depsgraph)
    shown = evaluated.to_mesh()
    try:
        same = len(shown.vertices) == len(own.vertices) and len(shown.polygons) == len(own.polygons)
        vertices = shown.vertices if same else own.vertices
        local = array.array("f", bytes(4 * 3 * len(vertices)))
        vertices.foreach_get("co", local)
    finally:
        evaluated.to_mesh_clear()
    return local, same


def image_path(image: bpy.types.Image) -> str:
    """The image's file as an absolute path ("" when it has none)."""
    return bpy.path.abspath(image.filepath, library=image.library) if image.filepath else ""


def _image_choice(image: bpy.types.Image) -> tuple[PhotoChoice | None, str]:
    """The image as the photo, or why it cannot be sent: a file image whose file is gone (moved or renamed) has no
    pixels to send, and saying so beats a broken upload."""
    path = image_path(image)
    if image.packed_file is None and image.source in ("FILE", "SEQUENCE", "MOVIE") and not os.path.isfile(path):
        where = f" ({path})" if path else ""
        return None, (
            f"The photo file of the image {image.name} is missing{where}. Point the image at the file's new place "
            "(Image Empty properties > Image, or the Image Editor's Image > Replace), or pick the photo in the panel."
        )
    return PhotoChoice(image.session_uid, image.name, path, path or image.name), ""


def find_image(context: bpy.types.Context) -> tuple[PhotoChoice | None, str]:
    """The reference photo: the active (or a selected) Image Empty, else the only visible one, the active camera's
    background image, the Image Editor's image, or the file picked in the panel, in that order. The first one
    found decides: a missing file there is reported, not skipped for another photo."""
    candidates = [context.active_object, *getattr(context, "selected_objects", [])]
    for obj in candidates:
        image = _empty_image(obj)
        if image is not None:
            return _image_choice(image)
    layer_objects: Iterable[bpy.types.Object] = context.view_layer.objects if context.view_layer is not None else ()
    visible = [image for o in layer_objects if (image := _empty_image(o)) is not None and o.visible_get()]
    if len(visible) == 1:
        return _image_choice(visible[0])
    if len(visible) > 1:
        return None, f"{len(visible)} reference images are visible. Select the Image Empty of the photo to use."
    camera = context.scene.camera if context.scene is not None else None
    if camera is not None and isinstance(camera.data, bpy.types.Camera):
        for background in camera.data.background_images:
            if background.image is not None:
                return _image_choice(background.image)
    screen = getattr(context, "screen", None)
    for area in screen.areas if screen else ():
        space = area.spaces.active
        if area.type == "IMAGE_EDITOR" and isinstance(space, bpy.types.SpaceImageEditor) and space.image is not None:
            return _image_choice(space.image)
    picked = props.scene_settings(context).image_path
    path = bpy.path.abspath(picked) if picked else ""
    if path:
        if not os.path.isfile(path):
            return None, f"The photo file {path} does not exist. Pick an existing file in the panel."
        return PhotoChoice(0, "", path, path), ""
    return None, "No photo was found. Add it as a reference image (Add > Image > Reference) or pick its file below."


def find_objects(context: bpy.types.Context) -> tuple[list[bpy.types.Object], str]:
    """The selected meshes to send, or why there are none. Result bodies are left out; placed objects (and copies
    of them) may be sent again."""
    meshes = [o for o in getattr(context, "selected_objects", []) if o.type == "MESH"]
    objects = [o for o in meshes if o.get("ivlm_role") not in RESULT_ROLES]
    if not objects:
        if meshes:
            names = ", ".join(o.name for o in meshes)
            return [], f"Only the body of an earlier run is selected ({names}). Select the objects the person uses."
        return [], "No object is selected. Select the mesh of each object the person uses."
    empty = [o.name for o in objects if len(mesh_of(o).vertices) == 0]
    if empty:
        return [], f"The mesh {', '.join(empty)} has no vertices. Select meshes with geometry."
    if len(objects) > MAX_OBJECTS:
        return [], f"{len(objects)} objects are selected; a run takes at most {MAX_OBJECTS}. Select fewer objects."
    return objects, ""


def label_of(obj: bpy.types.Object) -> str:
    """The label the model is asked about: the object's Label field, else `default_label`."""
    return props.object_label(obj).replace("_", " ").strip() or default_label(obj)


def default_label(obj: bpy.types.Object) -> str:
    """The label used while the Label field is empty (the panel shows it there, greyed): the label a run placed the
    object under (a placed object or a copy of one, named "cup (IVLM)"), else its name without '.001' suffixes."""
    placed_as = obj.get("ivlm_label")
    label = (placed_as if isinstance(placed_as, str) else "").strip() or obj.name.split(".")[0]
    return label.replace("_", " ").strip() or "object"


def _image_by_uid(uid: int) -> bpy.types.Image | None:
    return next((image for image in bpy.data.images if image.session_uid == uid), None) if uid else None


def object_by_uid(uid: int) -> bpy.types.Object | None:
    """The object with this session_uid (it survives renames), or None once it was deleted."""
    return next((obj for obj in bpy.data.objects if obj.session_uid == uid), None)


def _png_of(image: bpy.types.Image) -> bytes:
    """The image's pixels as a PNG file's bytes; InputError when Blender has no pixels for it."""
    with tempfile.TemporaryDirectory() as folder:
        target = os.path.join(folder, "photo.png")
        try:
            image.save_render(target)
        except RuntimeError as exc:
            raise InputError(
                f"The photo {image.name} could not be read ({str(exc).strip().rstrip('.')}).",
                "Reload the image or pick the photo file in the panel.",
            ) from exc
        with open(target, "rb") as stream:
            return stream.read()


def photo_bytes(choice: PhotoChoice) -> tuple[bytes, str]:
    """The photo file as sent and its kind (".png"/".jpg"): a PNG or JPEG file's own bytes (packed or on disk),
    else a PNG of the image's pixels. InputError when the photo cannot be read."""
    ext = os.path.splitext(choice.path)[1].lower()
    kind = ".png" if ext == ".png" else ".jpg"
    image = _image_by_uid(choice.image_uid)
    if image is not None and image.packed_file is not None and ext in PHOTO_EXTENSIONS:
        return bytes(image.packed_file.data), kind
    if choice.path and os.path.isfile(choice.path) and ext in PHOTO_EXTENSIONS:
        try:
            with open(choice.path, "rb") as stream:
                return stream.read(), kind
        except OSError as exc:
            raise InputError(
                f"The photo file {choice.path} could not be read ({exc.strerror}).", "Check that the file is readable."
            ) from exc
    if image is None and choice.path and os.path.isfile(choice.path):  # a picked file in another format
        image = bpy.data.images.load(choice.path, check_existing=True)
    if image is None:
        raise InputError(f"The photo {choice.image_name or choice.path} is gone.", "Add the photo again.")
    return _png_of(image), ".png"


def capture_object(obj: bpy.types.Object, depsgraph: bpy.types.Depsgraph, apply_modifiers: bool) -> SourceMesh:
    """The object's triangles in its local frame, scaled by its world scale (metres): what the user sees when
    `apply_modifiers` (the evaluated mesh), else its mesh without modifiers."""
    source = obj.evaluated_get(depsgraph) if apply_modifiers else obj
    mesh = source.to_mesh() if apply_modifiers else mesh_of(obj)
    try:
        mesh.calc_loop_triangles()
        vertices = array.array("f", bytes(4 * 3 * len(mesh.vertices)))
        mesh.vertices.foreach_get("co", vertices)
        triangles = array.array("i", bytes(4 * 3 * len(mesh.loop_triangles)))
        mesh.loop_triangles.foreach_get("vertices", triangles)
    finally:
        if apply_modifiers:
            source.to_mesh_clear()
    scale = obj.matrix_world.to_scale()
    for axis in range(3):
        if scale[axis] != 1.0:
            vertices[axis::3] = array.array("f", (v * scale[axis] for v in vertices[axis::3]))
    return SourceMesh(
        obj.session_uid, obj.name, label_of(obj), vertices, triangles, (scale.x, scale.y, scale.z), apply_modifiers
    )


def object_arrays(obj: bpy.types.Object, depsgraph: bpy.types.Depsgraph, apply_modifiers: bool) -> dict[str, Any]:
    """The object as a request entry (label, vertices, faces as API arrays)."""
    return capture_object(obj, depsgraph, apply_modifiers).request_entry()
