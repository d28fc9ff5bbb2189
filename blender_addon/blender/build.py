"""Turning a server result into scene data, in one collection per run: body, placed objects, contact groups and
attributes, a camera matching the photo, and provenance custom properties (plain ones: they survive export)."""

from __future__ import annotations

import array
import json

import bpy
from mathutils import Matrix, Vector

from ..core import codec, contact, frames
from . import rig
from .gather import mesh_of

PRED_PREFIX = "ivlm_pred_"  # float POINT attribute with the raw prediction, per group
COLOR_ATTRIBUTE = "ivlm_contact_color"


def _collection(scene: bpy.types.Scene, image_name: str) -> bpy.types.Collection:
    parent = bpy.data.collections.get("InteractVLM")
    if parent is None:
        parent = bpy.data.collections.new("InteractVLM")
        scene.collection.children.link(parent)
    elif parent.name not in scene.collection.children:
        scene.collection.children.link(parent)
    stem = image_name.rsplit("/", 1)[-1].rsplit(".", 1)[0] or "photo"
    run = bpy.data.collections.new(f"{stem}-{len(parent.children) + 1}")
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
    colors = array.array("f", (0.6, 0.6, 0.6, 1.0)) * len(mesh.vertices)
    for i, s in enumerate(strength):
        if s > 0.0:
            colors[4 * i : 4 * i + 3] = array.array("f", (0.6 + 0.4 * s, 0.6 * (1 - s), 0.6 * (1 - s)))
    attribute = mesh.color_attributes[COLOR_ATTRIBUTE]
    if not isinstance(attribute, bpy.types.FloatColorAttribute):
        raise TypeError(f"{obj.name} has a colour attribute {COLOR_ATTRIBUTE} of another type; remove it")
    attribute.data.foreach_set("color", colors)


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
            if w > strength[i]:
                strength[i] = w
    return strength


def place(obj: bpy.types.Object, camera_from_object: list[list[float]], scale: Vector) -> None:
    """Sets the object's matrix_world from the server's placement, keeping the object's own scale (the server
    placed the mesh as sent, i.e. already scaled)."""
    obj.matrix_world = Matrix(frames.world_from_object(camera_from_object)) @ Matrix.Diagonal(
        (scale.x, scale.y, scale.z, 1.0)
    )


def _provenance(result: dict, image_source: str) -> dict:
    return {
        "ivlm_job_id": result["job_id"],
        "ivlm_schema": result["schema_version"],
        "ivlm_result_schema": result["result_schema"],
        "ivlm_server_version": result["server_version"],
        "ivlm_demo": bool(result["demo"]),
        "ivlm_models": json.dumps(result["models"]),
        "ivlm_thresholds": json.dumps(result["thresholds"]),
        "ivlm_source_image": image_source,
        "ivlm_frame": "Blender world, metres; the photo's camera at the origin looking along +Y, +Z up",
    }


def _stamp(target: bpy.types.ID, values: dict) -> None:
    for key, value in values.items():
        target[key] = value


def build_camera(collection: bpy.types.Collection, scene: bpy.types.Scene, result: dict,
                 image: bpy.types.Image | None) -> bpy.types.Object:  # fmt: skip
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
    scene.render.resolution_x = settings["resolution_x"]
    scene.render.resolution_y = settings["resolution_y"]
    return camera


def build_result(
    context: bpy.types.Context,
    result: dict,
    sources: list[bpy.types.Object],
    image: bpy.types.Image | None,
    image_source: str,
    *,
    object_mode: str,
    thresholds: tuple[float, float],
    rig_body: bool = False,
) -> bpy.types.Collection:
    """Everything a run adds to the scene, in a new collection; returns it."""
    scene = context.scene
    if scene is None:
        raise RuntimeError("no scene in this context to build the result in")
    collection = _collection(scene, image_source)
    provenance = _provenance(result, image_source)
    _stamp(collection, provenance)
    body_threshold, object_threshold = thresholds
    body = None
    if result["body"] is not None:
        vertices, _ = codec.decode(result["body"]["vertices"])
        faces, _ = codec.decode(result["body"]["faces"])
        mesh = mesh_from_arrays("IVLM body", array.array("f", frames.cv_points_to_world(vertices)), faces)
        body = bpy.data.objects.new("IVLM body (DEMO)" if result["demo"] else "IVLM body", mesh)
        collection.objects.link(body)
        _stamp(body, provenance)
        body["ivlm_role"] = "body"
        body["ivlm_body_source"] = result["body"]["source"]
        if rig_body and result["body"].get("skeleton") is not None:
            rig.build_armature(collection, body, result["body"]["skeleton"])
    for source, outcome in zip(sources, result["objects"], strict=True):
        group = contact.group_name(outcome["label"])
        if body is not None and outcome["body_contact"] is not None:
            set_contact(body, group, codec.decode(outcome["body_contact"])[0], body_threshold)
        placed = source
        if object_mode == "DUPLICATE":
            placed = source.copy()
            placed.data = mesh_of(source).copy()
            placed.name = f"{source.name} (IVLM)"
            collection.objects.link(placed)
        elif placed.name not in collection.objects:
            collection.objects.link(placed)  # in place: also listed in the run, so Refit and Export find it
        if outcome["camera_from_object"] is not None:
            place(placed, outcome["camera_from_object"], source.matrix_world.to_scale())
        if outcome["object_contact"] is not None:
            weights, _ = codec.decode(outcome["object_contact"])
            if len(weights) == len(mesh_of(placed).vertices):
                set_contact(placed, group, weights, object_threshold)
        _stamp(placed, provenance)
        placed["ivlm_role"] = "object"
        placed["ivlm_label"] = outcome["label"]
        placed["ivlm_status"] = outcome["status"]
        placed["ivlm_reason"] = outcome["reason"]
    build_camera(collection, scene, result, image)
    collection["ivlm_notes"] = json.dumps(result["notes"])
    return collection


def run_objects(collection: bpy.types.Collection) -> tuple[bpy.types.Object | None, list[bpy.types.Object]]:
    """The body and the placed objects of a run collection."""
    body = next((o for o in collection.objects if o.get("ivlm_role") == "body"), None)
    objects = [o for o in collection.objects if o.get("ivlm_role") == "object"]
    return body, objects
