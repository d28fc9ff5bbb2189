"""Operators: Check server, Estimate Contact (modal with a synchronous path), Cancel, Paint, Refit, Reset, Export.

Network calls never run on the UI thread in the modal path: a worker thread does socket I/O only and the timer
tick reads its progress; scene data is changed on the main thread when the job is done (one undo step).
"""

from __future__ import annotations

import array
import base64
from typing import TYPE_CHECKING, Any

import bpy
from bpy.props import EnumProperty, StringProperty

from ..core import codec, contact
from ..core.jobs import BackgroundJob, JobRunner
from ..core.protocol import API_SCHEMA_VERSION, ServerError
from . import build, export, gather, prefs, props

if TYPE_CHECKING:  # the stubs' name for what operator methods return ({'FINISHED'}, ...); no such module in Blender
    from bpy.stub_internal.rna_enums import OperatorReturnItems

    Status = set[OperatorReturnItems]

_JOB: dict[str, Any] = {}  # the one job in flight: {"job": BackgroundJob, "kind": ..., ...}; runtime only, never saved


def _sources_by_name(names: list[str]) -> list[bpy.types.Object]:
    return [bpy.data.objects[n] for n in names if n in bpy.data.objects]


def active_run(context: bpy.types.Context) -> bpy.types.Collection | None:
    """The run collection of the active object, or the newest run."""
    obj = context.active_object
    if obj is not None:
        for collection in obj.users_collection:
            if collection.get("ivlm_job_id"):
                return collection
    parent = bpy.data.collections.get("InteractVLM")
    runs: list[bpy.types.Collection] = [c for c in parent.children if c.get("ivlm_job_id")] if parent else []
    return runs[-1] if runs else None


class IVLM_OT_check_server(bpy.types.Operator):
    """Ask the server for its version, device and demo status"""

    bl_idname = "ivlm.check_server"
    bl_label = "Check Server"

    def execute(self, context: bpy.types.Context) -> Status:
        state = props.window_state(context)
        try:
            health = prefs.client(context).health()
        except ServerError as exc:
            state.server_status = exc.user_text()
            self.report({"ERROR"}, exc.user_text())
            return {"CANCELLED"}
        lines = [f"Server {health.get('server_version')} on {health.get('device')} ({health.get('status')})"]
        if health.get("demo"):
            lines.append(f"DEMO MODE: {health.get('demo_reason', '')}: results are not meaningful")
        for missing in health.get("missing_model_files", [])[:3]:
            lines.append(f"missing: {missing['name']}")
        state.server_status = "\n".join(lines)
        self.report({"INFO"}, lines[0] + (" [DEMO]" if health.get("demo") else ""))
        return {"FINISHED"}


def _estimate_body(context: bpy.types.Context) -> tuple[dict[str, Any], dict[str, Any]]:
    """The request and what is needed to build its result; ServerError(BAD_INPUT) when an input is missing."""
    image, reason = gather.find_image(context)
    if image is None:
        raise ServerError("BAD_INPUT", reason)
    objects, reason = gather.find_objects(context)
    if not objects:
        raise ServerError("BAD_INPUT", reason)
    photo, image_source = gather.photo_bytes(image)
    depsgraph = context.evaluated_depsgraph_get()
    apply = props.scene_settings(context).apply_modifiers
    p = prefs.preferences(context)
    body: dict[str, Any] = {
        "schema_version": API_SCHEMA_VERSION,
        "image": base64.b64encode(photo).decode("ascii"),
        "objects": [gather.object_arrays(o, depsgraph, apply) for o in objects],
        "options": {"body_contact_threshold": p.body_threshold, "object_contact_threshold": p.object_threshold},
    }
    labels = [o["label"] for o in body["objects"]]
    if len(set(labels)) != len(labels):
        raise ServerError("BAD_INPUT", f"two selected objects have the same label ({', '.join(labels)})",
                          "Give each object its own Label in the panel.")  # fmt: skip
    info = {"sources": [o.name for o in objects], "image": image.name, "image_source": image_source}
    return body, info


def _no_job_running(cls: type[bpy.types.Operator]) -> bool:
    if _JOB:
        cls.poll_message_set("A job is already running")
        return False
    return True


def _poll_inputs(cls: type[bpy.types.Operator], context: bpy.types.Context) -> bool:
    if not _no_job_running(cls):
        return False
    image, reason = gather.find_image(context)
    if image is None:
        cls.poll_message_set(reason)
        return False
    objects, reason = gather.find_objects(context)
    if not objects:
        cls.poll_message_set(reason)
        return False
    return True


def _finish(operator: bpy.types.Operator, context: bpy.types.Context) -> Status:
    """Applies the finished job's result on the main thread; reports errors; clears the job."""
    job, state = _JOB["job"], props.window_state(context)
    runner = job.runner
    info = dict(_JOB)
    _JOB.clear()
    state.running = False
    state.progress = runner.progress
    state.message = runner.message
    if runner.state != "done":
        state.last_error = runner.message
        operator.report({"WARNING" if runner.state == "cancelled" else "ERROR"}, runner.message)
        return {"CANCELLED"}
    state.last_error = ""
    p = prefs.preferences(context)
    if info["kind"] == "estimate":
        image = bpy.data.images.get(info["image"])
        collection = build.build_result(
            context, runner.result, _sources_by_name(info["sources"]), image, info["image_source"],
            object_mode=p.object_mode, thresholds=(p.body_threshold, p.object_threshold), rig_body=p.rig_body,
        )  # fmt: skip
        text = f"Estimate Contact: {collection.name}" + (
            " [DEMO results, not meaningful]" if runner.result["demo"] else ""
        )
    else:
        _apply_refit(info["collection"], runner.result)
        text = "Refit: objects re-placed from the edited contacts"
    operator.report({"INFO"}, text)
    return {"FINISHED"}


def _start(context: bpy.types.Context, kind: str, body: dict, info: dict) -> BackgroundJob:
    p = prefs.preferences(context)
    runner = JobRunner(prefs.client(context), body, fit_only=(kind == "refit"), poll_interval_s=p.poll_interval)
    job = BackgroundJob(runner)
    _JOB.update(info, job=job, kind=kind)
    state = props.window_state(context)
    state.running, state.progress, state.stage, state.message = True, 0.0, "submitting", "sending the inputs"
    return job


class _JobOperator(bpy.types.Operator):
    """Shared modal/synchronous running of a job (Estimate Contact, Refit); never registered itself."""

    kind = ""  # "estimate" or "refit": what _finish does with the result
    _timer: bpy.types.Timer | None = None

    def _prepare(self, context: bpy.types.Context) -> tuple[dict[str, Any], dict[str, Any]]:
        raise NotImplementedError

    def execute(self, context: bpy.types.Context) -> Status:
        """Synchronous: for scripts, `blender -b` and tests (timers never fire headless)."""
        try:
            body, info = self._prepare(context)
        except ServerError as exc:
            self.report({"ERROR"}, exc.user_text())
            return {"CANCELLED"}
        job = _start(context, self.kind, body, info)
        job.join()
        return _finish(self, context)

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> Status:
        try:
            body, info = self._prepare(context)
        except ServerError as exc:
            self.report({"ERROR"}, exc.user_text())
            return {"CANCELLED"}
        _start(context, self.kind, body, info)
        wm = context.window_manager
        assert wm is not None  # always set for an operator run from the UI
        self._timer = wm.event_timer_add(0.1, window=context.window)
        wm.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context: bpy.types.Context, event: bpy.types.Event) -> Status:
        if event.type == "ESC" and _JOB:
            _JOB["job"].cancel()
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        return self.tick(context)

    def tick(self, context: bpy.types.Context) -> Status:
        """One timer tick: mirror progress into the UI; build the result when the job is done."""
        if not _JOB:
            self._stop_timer(context)
            return {"CANCELLED"}
        job, state = _JOB["job"], props.window_state(context)
        state.progress, state.stage, state.message = job.runner.progress, job.runner.stage, job.runner.message
        for area in context.screen.areas if context.screen else ():
            if area.type == "VIEW_3D":
                area.tag_redraw()
        if not job.finished:
            return {"RUNNING_MODAL"}
        self._stop_timer(context)
        return _finish(self, context)

    def _stop_timer(self, context: bpy.types.Context) -> None:
        wm = context.window_manager
        if self._timer is not None and wm is not None:
            wm.event_timer_remove(self._timer)
            self._timer = None


class IVLM_OT_estimate_contact(_JobOperator):
    """Send the photo and the selected objects to the server; build the body, placed objects, contacts, camera"""

    bl_idname = "ivlm.estimate_contact"
    bl_label = "Estimate Contact"
    bl_options = {"REGISTER", "UNDO"}
    kind = "estimate"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return _poll_inputs(cls, context)

    def _prepare(self, context: bpy.types.Context) -> tuple[dict[str, Any], dict[str, Any]]:
        return _estimate_body(context)


class IVLM_OT_cancel(bpy.types.Operator):
    """Cancel the running job (the server stops at its next stage)"""

    bl_idname = "ivlm.cancel"
    bl_label = "Cancel"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return bool(_JOB)

    def execute(self, context: bpy.types.Context) -> Status:
        _JOB["job"].cancel()
        props.window_state(context).message = "cancelling"
        return {"FINISHED"}


def _run_contact_objects(context: bpy.types.Context) -> list[bpy.types.Object]:
    run = active_run(context)
    if run is None:
        return []
    body, objects = build.run_objects(run)
    return [o for o in ([body] if body else []) + objects if build.contact_groups(o)]


class IVLM_OT_paint_contact(bpy.types.Operator):
    """Enter Weight Paint on a contact group to refine it"""

    bl_idname = "ivlm.paint_contact"
    bl_label = "Paint Contact"
    bl_options = {"REGISTER", "UNDO"}

    # `# type: ignore[valid-type]`: Blender's property annotations are calls (see props.py)
    object_name: StringProperty(name="Object")  # type: ignore[valid-type]
    group: StringProperty(name="Group")  # type: ignore[valid-type]

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        if not _run_contact_objects(context):
            cls.poll_message_set("Run Estimate Contact first")
            return False
        return True

    def execute(self, context: bpy.types.Context) -> Status:
        candidates = _run_contact_objects(context)
        obj = bpy.data.objects.get(self.object_name) if self.object_name else candidates[0]
        if obj is None or obj not in candidates:
            self.report({"ERROR"}, f"{self.object_name} is not part of the active run")
            return {"CANCELLED"}
        group = self.group or build.contact_groups(obj)[0]
        if group not in obj.vertex_groups:
            self.report({"ERROR"}, f"{obj.name} has no group {group}")
            return {"CANCELLED"}
        view_layer = context.view_layer
        if view_layer is None:
            self.report({"ERROR"}, "Paint Contact needs a view layer to select the object in")
            return {"CANCELLED"}
        if context.object is not None and context.object.mode != "OBJECT":
            bpy.ops.object.mode_set(mode="OBJECT")
        for other in view_layer.objects:
            other.select_set(False)
        obj.select_set(True)
        view_layer.objects.active = obj
        obj.vertex_groups.active_index = obj.vertex_groups[group].index
        bpy.ops.object.mode_set(mode="WEIGHT_PAINT")
        return {"FINISHED"}


class IVLM_OT_reset_contact(bpy.types.Operator):
    """Restore the contact groups of the active run to the model's prediction"""

    bl_idname = "ivlm.reset_contact"
    bl_label = "Reset Contact"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return bool(_run_contact_objects(context))

    def execute(self, context: bpy.types.Context) -> Status:
        p = prefs.preferences(context)
        for obj in _run_contact_objects(context):
            threshold = p.body_threshold if obj.get("ivlm_role") == "body" else p.object_threshold
            mesh = gather.mesh_of(obj)
            for group in build.contact_groups(obj):
                attribute = mesh.attributes.get(build.PRED_PREFIX + group)
                if attribute is None:
                    continue
                values = array.array("f", bytes(4 * len(mesh.vertices)))
                attribute.data.foreach_get("value", values)
                build.set_contact(obj, group, values, threshold)
        return {"FINISHED"}


def _refit_body(context: bpy.types.Context) -> tuple[dict, dict]:
    run = active_run(context)
    if run is None:
        raise ServerError("BAD_INPUT", "no Estimate Contact run in this scene", "Run Estimate Contact first.")
    body, objects = build.run_objects(run)
    if body is None:
        raise ServerError("BAD_INPUT", "this run has no body to place the objects against")
    entries = []
    for obj in objects:
        label = obj["ivlm_label"]
        group = contact.group_name(label)
        object_weights = build.group_weights(obj, group)
        body_weights = build.group_weights(body, group)
        entries.append({
            "label": label,
            "object_contact": codec.encode(object_weights, "float32", [len(object_weights)]),
            "body_contact": codec.encode(body_weights, "float32", [len(body_weights)]),
        })  # fmt: skip
    if not entries:
        raise ServerError("BAD_INPUT", "this run has no placed objects")
    p = prefs.preferences(context)
    request = {
        "schema_version": API_SCHEMA_VERSION,
        "source_job_id": run["ivlm_job_id"],
        "objects": entries,
        "options": {"body_contact_threshold": p.body_threshold, "object_contact_threshold": p.object_threshold},
    }
    return request, {"collection": run.name}


def _apply_refit(collection_name: str, result: dict) -> None:
    collection = bpy.data.collections[collection_name]
    _, objects = build.run_objects(collection)
    by_label = {o["ivlm_label"]: o for o in objects}
    for outcome in result["objects"]:
        obj = by_label.get(outcome["label"])
        if obj is None:
            continue
        obj["ivlm_status"] = outcome["status"]
        obj["ivlm_reason"] = outcome["reason"]
        if outcome["camera_from_object"] is not None:
            build.place(obj, outcome["camera_from_object"], obj.matrix_world.to_scale())
    collection["ivlm_refit_job_id"] = result["job_id"]


class IVLM_OT_refit(_JobOperator):
    """Re-place the objects from the contact groups as painted (no language model runs)"""

    bl_idname = "ivlm.refit"
    bl_label = "Refit"
    bl_options = {"REGISTER", "UNDO"}
    kind = "refit"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        if not _no_job_running(cls):
            return False
        if not _run_contact_objects(context):
            cls.poll_message_set("Run Estimate Contact first")
            return False
        return True

    def _prepare(self, context: bpy.types.Context) -> tuple[dict[str, Any], dict[str, Any]]:
        if context.object is not None and context.object.mode != "OBJECT":
            bpy.ops.object.mode_set(mode="OBJECT")  # flush Weight Paint edits into the mesh
        return _refit_body(context)


class IVLM_OT_export(bpy.types.Operator):
    """Export the active run for animation (FBX, glTF or USD) with contacts baked and a sidecar JSON"""

    bl_idname = "ivlm.export"
    bl_label = "Export Run"
    bl_options = {"REGISTER"}

    # `# type: ignore[valid-type]`: Blender's property annotations are calls (see props.py)
    filepath: StringProperty(subtype="FILE_PATH")  # type: ignore[valid-type]
    preset: EnumProperty(items=[(k, k.upper(), "") for k in export.PRESETS], default="fbx")  # type: ignore[valid-type]

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        if active_run(context) is None:
            cls.poll_message_set("Run Estimate Contact first")
            return False
        return True

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> Status:
        run = active_run(context)
        if not self.filepath and run is not None:
            self.filepath = bpy.path.ensure_ext(run.name, export.PRESETS[self.preset]["ext"])
        wm = context.window_manager
        assert wm is not None  # always set for an operator run from the UI
        wm.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context: bpy.types.Context) -> Status:
        run = active_run(context)
        if run is None:
            self.report({"ERROR"}, "Export failed: there is no Estimate Contact run in this scene")
            return {"CANCELLED"}
        try:
            written, sidecar = export.export_run(context, run, bpy.path.abspath(self.filepath), self.preset)
        except (RuntimeError, OSError, ValueError) as exc:
            self.report({"ERROR"}, f"Export failed: {exc}")
            return {"CANCELLED"}
        self.report({"INFO"}, f"Exported {written} and {sidecar}")
        return {"FINISHED"}


CLASSES = (
    IVLM_OT_check_server,
    IVLM_OT_estimate_contact,
    IVLM_OT_cancel,
    IVLM_OT_paint_contact,
    IVLM_OT_reset_contact,
    IVLM_OT_refit,
    IVLM_OT_export,
)


def cancel_all() -> None:
    """Called on unregister and before a file loads: the job in flight is cancelled and forgotten."""
    if _JOB:
        _JOB["job"].cancel()
        _JOB.clear()
