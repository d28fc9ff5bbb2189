"""Turning a server result into scene data, in one collection per run: body, placed objects, contact groups and
attributes, a camera matching the photo, and provenance custom properties (plain ones: they survive export).

A build is planned first (every array decoded and checked against the mesh it goes on, every source object looked
up) and only then applied; if applying still fails, everything it made is removed again, so a failed build never
leaves a half-built run. The user's own objects (in-place mode) are changed last.
"""

from __future__ import annotations

import array
import base64
import binascii
import json
import os
import tempfile
from dataclasses import dataclass

import bpy
from mathutils import Matrix, Vector

from ..core import codec, contact, frames
from ..core.protocol import UserError
from . import rig
from .gather import SourceMesh, Submitted, image_path, mesh_of, object_by_uid

PRED_PREFIX = "ivlm_pred_"  # float POINT attribute with the raw prediction, per group
COLOR_ATTRIBUTE = "ivlm_contact_color"
RUNS_COLLECTION = "InteractVLM"
PLACED_SUFFIX = " (IVLM)"
BODY_VERTEX_COUNT = "ivlm_vertex_count"  # on the body: how many vertices it was built with


class BuildError(UserError):
    """A result that cannot be built into the scene; nothing was added."""


@dataclass(frozen=True)
class BuildOptions:
    """How a result is built, read from the preferences when the job was sent."""

    object_mode: str = "DUPLICATE"  # or "IN_PLACE"
    rig_body: bool = True
    set_scene_camera: bool = True


def _collection(scene: bpy.types.Scene, photo_source: str) -> bpy.types.Collection:
    parent = bpy.data.collections.get(RUNS_COLLECTION)
    if parent is None:
        parent = bpy.data.collections.new(RUNS_COLLECTION)
        scene.collection.children.link(parent)
    elif parent.name not in scene.collection.children:
        scene.collection.children.link(parent)
    run = bpy.data.collections.new(f"{contact.photo_stem(photo_source)}-{len(parent.children) + 1}")
    parent.children.link(run)
    return run


def mesh_from_arrays(name: str, vertices: array.array, triangles: array.array) -> bpy.types.Mesh:
    """A mesh from flat float32 xyz and int32 triangle arrays via foreach_set (fast for 10k+ vertices)."""
    mesh = bpy.data.meshes.new(name)
    n_vertices, n_faces = len(vertices) // 3, len(triangles) // 3
    mesh.vertices.add(n_vertices)
    mesh.vertices.foreach_set("co", vertices)
    mesh.loops.add(3 * n_faces)
    mesh.loops.foreach_set("vertex_index", triangles)
    mesh.polygons.add(n_faces)
    mesh.polygons.foreach_set("loop_start", array.array("i", range(0, 3 * n_faces, 3)))
    mesh.polygons.foreach_set("loop_total", array.array("i", [3]) * n_faces)
    mesh.update()
    mesh.validate()
    return mesh


def set_contact(obj: bpy.types.Object, group: str, weights: array.array, threshold: float) -> None:
    """Vertex group `group` with weights = probabilities (above threshold), and the raw prediction as an attribute."""
    mesh = mesh_of(obj)
    existing = obj.vertex_groups.get(group)
    if existing is not None:
        obj.vertex_groups.remove(existing)
    vertex_group = obj.vertex_groups.new(name=group)
    added = array.array("f", [0.0]) * len(mesh.vertices)  # the group as set, so colours need no read-back
    for weight, indices in contact.weight_batches(weights, threshold).items():
        vertex_group.add(indices, weight, "REPLACE")
        for index in indices:
            added[index] = weight
    name = PRED_PREFIX + group
    if name not in mesh.attributes:
        mesh.attributes.new(name, "FLOAT", "POINT")
    prediction = mesh.attributes[name]  # looked up by name: a reference held across attributes.new can crash
    if not isinstance(prediction, bpy.types.FloatAttribute):
        raise TypeError(f"{obj.name} has an attribute {name} that is not a float attribute; rename or remove it")
    prediction.data.foreach_set("value", weights)
    paint_contact_colors(obj, known={group: added})


def paint_contact_colors(obj: bpy.types.Object, known: dict[str, array.array] | None = None) -> None:
    """A colour attribute to see contact: red where any contact group's weight is high, grey elsewhere.

    `known`: groups whose weights the caller has just set, so they are not read back vertex by vertex."""
    mesh = mesh_of(obj)
    strength = contact_strength(obj, known)
    if COLOR_ATTRIBUTE not in mesh.color_attributes:
        mesh.color_attributes.new(COLOR_ATTRIBUTE, "FLOAT_COLOR", "POINT")
    colors = array.array("f", _contact_color(0.0)) * len(mesh.vertices)
    for i, s in enumerate(strength):
        if s > 0.0:
            colors[4 * i : 4 * i + 4] = array.array("f", _contact_color(s))
    attribute = mesh.color_attributes[COLOR_ATTRIBUTE]
    if not isinstance(attribute, bpy.types.FloatColorAttribute):
        raise TypeError(f"{obj.name} has a colour attribute {COLOR_ATTRIBUTE} of another type; remove it")
    attribute.data.foreach_set("color", colors)


def refresh_contact_colors(obj: bpy.types.Object, indices: list[int]) -> None:
    """Recolours only these vertices from their contact groups (a Mark Contact click changes a few hundred, so the
    whole mesh is not read back); the attribute is made for the whole mesh when it is missing."""
    mesh = mesh_of(obj)
    attribute = mesh.color_attributes.get(COLOR_ATTRIBUTE)
    if not isinstance(attribute, bpy.types.FloatColorAttribute):
        paint_contact_colors(obj)
        return
    groups = [g for g in obj.vertex_groups if g.name.startswith("contact_")]
    for index in indices:
        strength = 0.0
        for group in groups:
            try:
                strength = max(strength, group.weight(index))
            except RuntimeError:  # not a member
                pass
        attribute.data[index].color = _contact_color(strength)


def _contact_color(strength: float) -> tuple[float, float, float, float]:
    """Grey without contact, towards red with it."""
    if strength <= 0.0:
        return (0.6, 0.6, 0.6, 1.0)
    return (0.6 + 0.4 * strength, 0.6 * (1 - strength), 0.6 * (1 - strength), 1.0)


def group_weights(obj: bpy.types.Object, group: str) -> array.array:
    """Every vertex's weight in `group` (0 where it is not a member)."""
    vertices = mesh_of(obj).vertices
    weights = array.array("f", [0.0]) * len(vertices)
    vertex_group = obj.vertex_groups.get(group)
    if vertex_group is None:
        return weights
    index = vertex_group.index
    for vertex in vertices:
        for element in vertex.groups:
            if element.group == index:
                weights[vertex.index] = element.weight
    return weights


def contact_groups(obj: bpy.types.Object) -> list[str]:
    return [g.name for g in obj.vertex_groups if g.name.startswith("contact_")]


def contact_strength(obj: bpy.types.Object, known: dict[str, array.array] | None = None) -> array.array:
    """Per vertex, the highest weight over the contact groups (from `known` where given, else read back)."""
    strength = array.array("f", [0.0]) * len(mesh_of(obj).vertices)
    for group in contact_groups(obj):
        weights = known[group] if known and group in known else group_weights(obj, group)
        for i, w in enumerate(weights):
            strength[i] = max(strength[i], w)
    return strength


def place(
    obj: bpy.types.Object, camera_from_object: list[list[float]], scale: Vector, frame: Matrix | None = None
) -> None:
    """Sets the object's matrix_world from the server's placement, keeping the object's own scale (the server
    placed the mesh as sent, i.e. already scaled). frame: where the estimate's world is now (the body's
    matrix_world when a Refit was sent; the body moves with its rig), identity by default."""
    world = Matrix(frames.world_from_object(camera_from_object)) @ Matrix.Diagonal((scale.x, scale.y, scale.z, 1.0))
    obj.matrix_world = world if frame is None else frame @ world


def _provenance(result: dict, photo_source: str) -> dict:
    camera = result["camera"]
    return {
        "ivlm_job_id": result["job_id"],
        "ivlm_schema": result["schema_version"],
        "ivlm_result_schema": result["result_schema"],
        "ivlm_server_version": result["server_version"],
        "ivlm_demo": bool(result["demo"]),
        "ivlm_models": json.dumps(result["models"]),
        "ivlm_thresholds": json.dumps(result["thresholds"]),
        "ivlm_source_image": photo_source,
        "ivlm_exif_orientation": int(camera.get("exif_orientation", 1)),
        "ivlm_frame": "Blender world, metres; the photo's camera at the origin looking along +Y, +Z up",
    }


def _stamp(target: bpy.types.ID, values: dict) -> None:
    for key, value in values.items():
        target[key] = value


def run_thresholds(collection: bpy.types.Collection, default: tuple[float, float]) -> tuple[float, float]:
    """The (body, object) contact thresholds the run's groups were made with, from its provenance."""
    try:
        stored = json.loads(str(collection["ivlm_thresholds"]))
        return float(stored["body_contact"]), float(stored["object_contact"])
    except (KeyError, ValueError, TypeError):
        return default


def _temporary_photo_folder() -> str:
    folder = os.path.join(tempfile.gettempdir(), "interactvlm")
    os.makedirs(folder, exist_ok=True)
    return folder


def photo_folder() -> str:
    """Where photos the add-on writes go: beside the saved .blend, else a temporary folder."""
    return os.path.dirname(bpy.path.abspath(bpy.data.filepath)) if bpy.data.filepath else _temporary_photo_folder()


def _write_once(folder: str, filename: str, data: bytes) -> str:
    """`data` as `filename` in `folder`, or a numbered name when another file has that name; an identical file
    already there is reused. Returns the path."""
    stem, ext = os.path.splitext(filename)
    for number in range(1, 1000):
        path = os.path.join(folder, filename if number == 1 else f"{stem}-{number}{ext}")
        if not os.path.exists(path):
            with open(path + ".part", "wb") as stream:
                stream.write(data)
            os.replace(path + ".part", path)
            return path
        with open(path, "rb") as stream:
            if stream.read() == data:
                return path
    raise OSError(f"{folder} already holds 999 files named like {filename}")


def store_photo(data: bytes, filename: str) -> bpy.types.Image:
    """`data` written as `filename` beside the .blend (a temporary folder while it is unsaved, or when that folder
    cannot be written), loaded, and packed into the .blend so it travels with it."""
    try:
        path = _write_once(photo_folder(), filename, data)
    except OSError:  # e.g. a .blend in a read-only folder: the packed copy is what matters
        path = _write_once(_temporary_photo_folder(), filename, data)
    image = bpy.data.images.load(path, check_existing=False)
    image.pack()
    return image


def build_camera(
    collection: bpy.types.Collection,
    scene: bpy.types.Scene,
    result: dict,
    image: bpy.types.Image | None,
    make_scene_camera: bool = True,
) -> bpy.types.Object:
    """The photo's camera, with the photo as its background. `make_scene_camera`: it becomes the scene's camera and
    the render size becomes the photo's; otherwise the scene's camera and render size are left as they are."""
    settings = frames.camera_settings(result["camera"]["intrinsics"], result["camera"]["image_size_hw"])
    data = bpy.data.cameras.new("IVLM photo camera")
    data.sensor_fit = settings["sensor_fit"]
    data.sensor_width = settings["sensor_width"]
    data.sensor_height = settings["sensor_height"]
    data.lens = settings["lens"]
    data.shift_x = settings["shift_x"]
    data.shift_y = settings["shift_y"]
    if image is not None:
        data.show_background_images = True
        background = data.background_images.new()
        background.image = image
        background.alpha = 0.7
    camera = bpy.data.objects.new("IVLM photo camera", data)
    camera.matrix_world = Matrix(frames.WORLD_FROM_GL_CAMERA)
    camera["ivlm_role"] = "camera"
    collection.objects.link(camera)
    if make_scene_camera:
        scene.camera = camera
        scene.render.resolution_x = settings["resolution_x"]
        scene.render.resolution_y = settings["resolution_y"]
    return camera


@dataclass
class _PlacedPlan:
    """How one object of the result is built: from its source object (a copy, or the object itself), or from the
    mesh as sent when the source is gone or no longer matches what was sent."""

    capture: SourceMesh
    outcome: dict
    source: bpy.types.Object | None  # None: build from the captured arrays
    bake_modifiers: bool  # the sent mesh is the evaluated one and differs from the object's own mesh
    object_contact: array.array | None
    body_contact: array.array | None
    note: str = ""
    predicted: bool = False  # both sides have contact above their thresholds (else the groups start empty)


_BUILT_KINDS = ("objects", "meshes", "cameras", "armatures", "images", "collections")  # objects go first


def _snapshot() -> dict[str, set[int]]:
    """The session_uids of the datablocks a build can add, to tell its own additions apart afterwards."""
    return {kind: {item.session_uid for item in getattr(bpy.data, kind)} for kind in _BUILT_KINDS}


def _remove_added(before: dict[str, set[int]]) -> None:
    """Removes every datablock added since `before`: what a failed build made, whatever step it failed in."""
    for kind in _BUILT_KINDS:
        datablocks = getattr(bpy.data, kind)
        for item in [i for i in datablocks if i.session_uid not in before[kind]]:
            datablocks.remove(item)


def _decode_contact(payload: dict | None, count: int, what: str) -> array.array | None:
    if payload is None:
        return None
    values, _ = codec.decode(payload)
    if len(values) != count:
        raise BuildError(
            f"The server sent {len(values)} contact values for {what}, which has {count} vertices.",
            "Update the add-on and the server to matching versions.",
        )
    return values


def _evaluated_vertex_count(obj: bpy.types.Object) -> int:
    evaluated = obj.evaluated_get(bpy.context.evaluated_depsgraph_get())
    mesh = evaluated.to_mesh()
    try:
        return len(mesh.vertices)
    finally:
        evaluated.to_mesh_clear()


def _plan_object(capture: SourceMesh, outcome: dict, body_vertices: int | None) -> _PlacedPlan:
    """Finds the source object again (by session_uid: renames do not matter) and checks it still has the mesh
    that was sent; the contact arrays are decoded and checked against that mesh."""
    object_contact = _decode_contact(outcome.get("object_contact"), capture.vertex_count, capture.name)
    body_contact = None
    if body_vertices is not None:
        body_contact = _decode_contact(outcome.get("body_contact"), body_vertices, "the body")
    source = object_by_uid(capture.uid)
    note = ""
    bake = False
    if source is None or source.type != "MESH":
        note = f"The object {capture.name} was deleted while the job ran, so it was rebuilt from the mesh as sent."
        source = None
    else:
        own = len(mesh_of(source).vertices)
        now = _evaluated_vertex_count(source) if capture.evaluated and len(source.modifiers) else own
        if now != capture.vertex_count:
            note = f"The object {source.name} was edited while the job ran, so the mesh as sent was placed instead."
            source = None
        else:
            bake = capture.evaluated and own != capture.vertex_count
    return _PlacedPlan(capture, outcome, source, bake, object_contact, body_contact, note)


def _plan(result: dict, submitted: Submitted) -> tuple[list[_PlacedPlan], array.array | None, array.array | None]:
    """Checks the whole result against what was sent, before anything is added to the scene."""
    outcomes = list(result["objects"])  # in the order sent (the server may tidy a label, so order is the key)
    if len(outcomes) != len(submitted.sources):
        raise BuildError(
            f"The result has {len(outcomes)} objects, but {len(submitted.sources)} were sent.",
            "Update the add-on and the server to matching versions.",
        )
    body_vertices = body_faces = None
    if result["body"] is not None:
        body_vertices, _ = codec.decode(result["body"]["vertices"])
        body_faces, _ = codec.decode(result["body"]["faces"])
    count = len(body_vertices) // 3 if body_vertices is not None else None
    plans = [_plan_object(c, o, count) for c, o in zip(submitted.sources, outcomes, strict=True)]
    body_threshold = float(result["thresholds"]["body_contact"])
    object_threshold = float(result["thresholds"]["object_contact"])
    for plan in plans:
        plan.predicted = _any_above(plan.body_contact, body_threshold) and _any_above(
            plan.object_contact, object_threshold
        )
    return plans, body_vertices, body_faces


def _any_above(weights: array.array | None, threshold: float) -> bool:
    return weights is not None and any(w > threshold for w in weights)


def _background_image(result: dict, submitted: Submitted) -> bpy.types.Image:
    """The picture behind the photo camera: exactly what the server analysed. That is the upright photo the server
    sends when the photo has an EXIF orientation (Blender shows a JPEG's stored pixels, unrotated), else the photo
    itself, found again by session_uid or path, else the bytes sent, written out and packed."""
    stem = contact.photo_stem(submitted.photo.source)
    upright = result.get("upright_photo")
    if upright:
        try:
            data = base64.b64decode(upright, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise BuildError(
                "The server sent an upright photo that is not valid base64.",
                "Update the add-on and the server to matching versions.",
            ) from exc
        return store_photo(data, f"{stem}-upright.jpg")
    photo = submitted.photo
    image = next((i for i in bpy.data.images if i.session_uid == photo.image_uid), None) if photo.image_uid else None
    if image is None and photo.path and os.path.isfile(photo.path):
        image = next((i for i in bpy.data.images if image_path(i) == photo.path), None)
        if image is None:
            image = bpy.data.images.load(photo.path, check_existing=False)
    if image is None:
        image = store_photo(submitted.photo_data, stem + submitted.photo_ext)
    return image


def _build_body(
    collection: bpy.types.Collection,
    result: dict,
    vertices: array.array,
    faces: array.array,
    provenance: dict,
    rig_body: bool,
) -> bpy.types.Object:
    mesh = mesh_from_arrays("IVLM body", array.array("f", frames.cv_points_to_world(vertices)), faces)
    body = bpy.data.objects.new("IVLM body (DEMO)" if result["demo"] else "IVLM body", mesh)
    collection.objects.link(body)
    _stamp(body, provenance)
    body["ivlm_role"] = "body"
    body["ivlm_body_source"] = result["body"]["source"]
    body[BODY_VERTEX_COUNT] = len(mesh.vertices)  # Refit checks that edits kept it (the server needs model order)
    if rig_body and result["body"].get("skeleton") is not None:
        rig.build_armature(collection, body, result["body"]["skeleton"])
    return body


def _placed_name(name: str) -> str:
    return name.removesuffix(PLACED_SUFFIX) + PLACED_SUFFIX


def _new_placed(collection: bpy.types.Collection, plan: _PlacedPlan) -> bpy.types.Object:
    """A new object for the result: a copy of the source (its evaluated mesh when that is what was sent), or an
    object made from the captured arrays."""
    capture = plan.capture
    if plan.source is None:
        mesh = mesh_from_arrays(capture.name, capture.vertices, capture.triangles)
        placed = bpy.data.objects.new(_placed_name(capture.name), mesh)
    else:
        placed = plan.source.copy()
        if plan.bake_modifiers:
            placed.data = _evaluated_mesh(plan.source)
            placed.modifiers.clear()
        else:
            placed.data = mesh_of(plan.source).copy()
        placed.name = _placed_name(plan.source.name)
    for other in list(placed.users_collection):
        other.objects.unlink(placed)
    collection.objects.link(placed)
    try:
        placed.select_set(False)  # a copy inherits the selection; the user's selection stays as it was
    except RuntimeError:  # not in the view layer (the run's collection is excluded from it)
        pass
    return placed


def _evaluated_mesh(obj: bpy.types.Object) -> bpy.types.Mesh:
    """A new mesh datablock of the object with its modifiers applied (UVs, materials and attributes kept)."""
    depsgraph = bpy.context.evaluated_depsgraph_get()
    return bpy.data.meshes.new_from_object(
        obj.evaluated_get(depsgraph), preserve_all_data_layers=True, depsgraph=depsgraph
    )


def _no_contact(count: int) -> array.array:
    return array.array("f", bytes(4 * count))


def _finish_placed(placed: bpy.types.Object, plan: _PlacedPlan, provenance: dict, threshold: float) -> None:
    outcome = plan.outcome
    scale = Vector(plan.capture.scale) if plan.source is not None else Vector((1.0, 1.0, 1.0))
    if outcome["camera_from_object"] is not None:
        place(placed, outcome["camera_from_object"], scale)
    weights = plan.object_contact if plan.object_contact is not None else _no_contact(plan.capture.vertex_count)
    set_contact(placed, contact.group_name(outcome["label"]), weights, threshold)  # empty: to paint or mark into
    _stamp(placed, provenance)
    placed["ivlm_contact_predicted"] = plan.predicted
    placed["ivlm_role"] = "object"
    placed["ivlm_label"] = outcome["label"]
    placed["ivlm_status"] = outcome["status"]
    placed["ivlm_reason"] = " ".join(r for r in (outcome["reason"], plan.note) if r)


def _place_in_place(collection: bpy.types.Collection, plan: _PlacedPlan) -> bpy.types.Object:
    """The user's own object becomes the placed one: moved, given the contact group, listed in this run only. When
    the mesh sent was its evaluated mesh and that differs from its own, its modifiers are applied to it (as "Apply
    modifiers" says), so the contact group fits the mesh that was sent and placed."""
    obj = plan.source
    assert obj is not None
    if plan.bake_modifiers:
        obj.data = _evaluated_mesh(obj)
        obj.modifiers.clear()
        plan.note = " ".join(n for n in (plan.note, f"The modifiers of {obj.name} were applied to it.") if n)
    runs = bpy.data.collections.get(RUNS_COLLECTION)
    for other in list(obj.users_collection):
        if runs is not None and other.name in runs.children and other != collection:
            other.objects.unlink(obj)  # an object belongs to one run: the newest that placed it
    if obj.name not in collection.objects:
        collection.objects.link(obj)
    return obj


def build_result(
    context: bpy.types.Context,
    result: dict,
    submitted: Submitted,
    options: BuildOptions | None = None,
) -> tuple[bpy.types.Collection, list[str]]:
    """Everything a run adds to the scene, in a new collection; returns it and notes for the report.

    Raises BuildError (nothing added) when the result does not fit what was sent."""
    options = options or BuildOptions()
    scene = context.scene
    if scene is None:
        raise BuildError("There is no scene to build the result in.", "Open a scene and run Estimate Contact again.")
    plans, body_vertices, body_faces = _plan(result, submitted)
    body_threshold = float(result["thresholds"]["body_contact"])
    object_threshold = float(result["thresholds"]["object_contact"])
    before = _snapshot()
    scene_camera = scene.camera, scene.render.resolution_x, scene.render.resolution_y
    try:
        collection = _collection(scene, submitted.photo.source)
        provenance = _provenance(result, submitted.photo.source)
        _stamp(collection, provenance)
        body = None
        if body_vertices is not None and body_faces is not None:
            body = _build_body(collection, result, body_vertices, body_faces, provenance, options.rig_body)
        for plan in plans:  # an empty group where nothing was predicted, for the user to paint or mark into
            if body is not None:
                weights = (
                    plan.body_contact if plan.body_contact is not None else _no_contact(len(mesh_of(body).vertices))
                )
                set_contact(body, contact.group_name(plan.outcome["label"]), weights, body_threshold)
        placed: list[tuple[bpy.types.Object | None, _PlacedPlan]] = []
        for plan in plans:
            keep_own = options.object_mode == "IN_PLACE" and plan.source is not None
            placed.append((None if keep_own else _new_placed(collection, plan), plan))
        build_camera(collection, scene, result, _background_image(result, submitted), options.set_scene_camera)
        collection["ivlm_notes"] = json.dumps(result["notes"])
        for obj, plan in placed:  # last: the user's own objects are changed only once everything else is built
            target = obj if obj is not None else _place_in_place(collection, plan)
            _finish_placed(target, plan, provenance, object_threshold)
    except Exception:
        _remove_added(before)
        scene.camera, scene.render.resolution_x, scene.render.resolution_y = scene_camera
        raise
    return collection, [plan.note for plan in plans if plan.note]


def run_objects(collection: bpy.types.Collection) -> tuple[bpy.types.Object | None, list[bpy.types.Object]]:
    """The body and the placed objects of a run collection."""
    body = next((o for o in collection.objects if o.get("ivlm_role") == "body"), None)
    objects = [o for o in collection.objects if o.get("ivlm_role") == "object"]
    return body, objects
