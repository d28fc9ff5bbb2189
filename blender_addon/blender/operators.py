"""Operators: Check server, Estimate Contact (modal with a synchronous path), Cancel, Paint, Refit, Reset, View
Through Photo Camera, Export (Mark Contact is in mark.py).

Network calls never run on the UI thread in the modal path: a worker thread does socket I/O only and the timer
tick reads its progress; scene data is changed on the main thread when the job is done (one undo step).
"""

from __future__ import annotations

import array
import base64
import time
import traceback
from typing import TYPE_CHECKING, Any

import bpy
from bpy.props import EnumProperty, StringProperty
from mathutils import Matrix

from ..core import codec, contact, frames
from ..core.health import HealthChecker, HealthReport, failed, summarize
from ..core.jobs import BackgroundJob, JobRunner
from ..core.messages import join_sentences
from ..core.protocol import API_SCHEMA_VERSION, InputError, UserError
from . import build, export, gather, prefs, props

if TYPE_CHECKING:  # the stubs' name for what operator methods return ({'FINISHED'}, ...); no such module in Blender
    from bpy.stub_internal.rna_enums import OperatorReturnItems

    Status = set[OperatorReturnItems]

_JOB: dict[str, Any] = {}  # the one job in flight: {"job": BackgroundJob, "kind": ..., ...}; runtime only, never saved
HEALTH = HealthChecker()  # Check Server's answers, refreshed in the background once the user has checked


def active_run(context: bpy.types.Context) -> bpy.types.Collection | None:
    """The run collection of the active object, or the newest run."""
    obj = context.active_object
    if obj is not None:
        for collection in obj.users_collection:
            if collection.get("ivlm_job_id"):
                return collection
    parent = bpy.data.collections.get(build.RUNS_COLLECTION)
    runs: list[bpy.types.Collection] = [c for c in parent.children if c.get("ivlm_job_id")] if parent else []
    return runs[-1] if runs else None


def _unexpected(operator: bpy.types.Operator, what: str, exc: Exception) -> Status:
    """A bug, not a user error: one clear line in the UI (never a traceback there), the traceback on the console."""
    traceback.print_exc()
    text = join_sentences(
        f"{what} failed unexpectedly ({type(exc).__name__}: {exc})",
        "Nothing was changed. Please report this, with the text printed on Blender's system console",
    )
    props.window_state(bpy.context).last_error = text
    operator.report({"ERROR"}, text)
    return {"CANCELLED"}


def _show_health(report: HealthReport) -> None:
    """Puts a health report into the session's UI state and redraws what shows it."""
    props.window_state(bpy.context).server_status = report.text()
    _redraw()


def _redraw() -> None:
    wm = bpy.context.window_manager
    for window in wm.windows if wm is not None else ():
        for area in window.screen.areas if window.screen is not None else ():
            if area.type in ("VIEW_3D", "PREFERENCES"):
                area.tag_redraw()


HEALTH_TICK_S = 0.5
_HEALTH_SHOWN = [0]  # the HEALTH.generation last copied into the UI


def health_tick() -> float:
    """bpy.app.timers callback: shows a finished check, and starts the next one when it is due (only after the
    user has checked once, so the panel follows a restarted or stopped server). Never waits on the network."""
    if bpy.context.window_manager is None:  # no UI to show it in (yet)
        return HEALTH_TICK_S
    if HEALTH.latest is not None and HEALTH.generation != _HEALTH_SHOWN[0]:
        _HEALTH_SHOWN[0] = HEALTH.generation
        _show_health(HEALTH.latest)
    if HEALTH.due():
        try:
            HEALTH.start(prefs.client(bpy.context))
        except (UserError, RuntimeError):  # a bad URL is shown on the next explicit check; no preferences yet
            pass
    return HEALTH_TICK_S


class IVLM_OT_check_server(bpy.types.Operator):
    """Ask the server for its version, device, demo status and missing model files (without blocking Blender)"""

    bl_idname = "ivlm.check_server"
    bl_label = "Check Server"

    def execute(self, context: bpy.types.Context) -> Status:
        """Synchronous: for scripts and `blender -b` (timers do not run there)."""
        try:
            report = summarize(prefs.client(context).health(), time.time())
        except UserError as exc:
            report = failed(exc, time.time())
        _show_health(report)
        self.report({"INFO"} if report.reachable else {"ERROR"}, report.lines[0])
        return {"FINISHED"} if report.reachable else {"CANCELLED"}

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> Status:
        """From the UI (a button click): the check runs on a thread; health_tick shows its answer."""
        return {"FINISHED"} if request_health_check(context) else {"CANCELLED"}


def request_health_check(context: bpy.types.Context) -> bool:
    """Starts a health check on a thread and says so in the panel; returns at once. False: the server URL in the
    preferences is not usable (the panel says why)."""
    try:
        client = prefs.client(context)
    except UserError as exc:
        _show_health(failed(exc, time.time()))
        return False
    if HEALTH.start(client):
        props.window_state(context).server_status = f"Checking the server at {client.host}:{client.port}."
    return True


def _estimate_body(context: bpy.types.Context) -> tuple[dict[str, Any], dict[str, Any]]:
    """The request, and what its result is built from (captured now); InputError when an input is missing."""
    photo, reason = gather.find_image(context)
    if photo is None:
        raise InputError(reason)
    objects, reason = gather.find_objects(context)
    if not objects:
        raise InputError(reason)
    data, ext = gather.photo_bytes(photo)
    depsgraph = context.evaluated_depsgraph_get()
    apply = props.scene_settings(context).apply_modifiers
    sources = [gather.capture_object(o, depsgraph, apply) for o in objects]
    labels = [s.label for s in sources]
    if len(set(labels)) != len(labels):
        raise InputError(
            f"Two selected objects have the same label ({', '.join(labels)}).",
            "Give each object its own Label in the panel.",
        )
    p = prefs.preferences(context)
    body: dict[str, Any] = {
        "schema_version": API_SCHEMA_VERSION,
        "image": base64.b64encode(data).decode("ascii"),
        "objects": [s.request_entry() for s in sources],
        "options": {"body_contact_threshold": p.body_threshold, "object_contact_threshold": p.object_threshold},
    }
    options = build.BuildOptions(object_mode=p.object_mode, rig_body=p.rig_body, set_scene_camera=p.set_scene_camera)
    return body, {"submitted": gather.Submitted(photo, data, ext, sources), "options": options}


def _no_job_running(cls: type[bpy.types.Operator]) -> bool:
    if _JOB:
        cls.poll_message_set("A job is already running. Wait for it to finish, or cancel it.")
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
    try:
        if info["kind"] == "estimate":
            collection, notes = build.build_result(context, runner.result, info["submitted"], info["options"])
            demo = " These are DEMO results: they are not meaningful." if runner.result["demo"] else ""
            text = join_sentences(f"Estimate Contact built {collection.name}", *notes) + demo
        else:
            text, complete = _apply_refit(info["collection"], info["frame"], runner.result)
            if not complete:
                state.last_error = text  # the panel keeps it in view
                operator.report({"WARNING"}, text)
                return {"FINISHED"}
    except UserError as exc:
        state.last_error = exc.user_text()
        operator.report({"ERROR"}, state.last_error)
        return {"CANCELLED"}
    except Exception as exc:
        return _unexpected(operator, "Building the result", exc)
    operator.report({"INFO"}, text)
    return {"FINISHED"}


def _start(context: bpy.types.Context, kind: str, body: dict, info: dict) -> BackgroundJob:
    p = prefs.preferences(context)
    runner = JobRunner(prefs.client(context), body, fit_only=(kind == "refit"), poll_interval_s=p.poll_interval)
    job = BackgroundJob(runner)
    _JOB.update(info, job=job, kind=kind)
    state = props.window_state(context)
    state.running, state.progress, state.stage, state.message = True, 0.0, "submitting", "sending the inputs"
    state.last_error = ""
    return job


class _JobOperator(bpy.types.Operator):
    """Shared modal/synchronous running of a job (Estimate Contact, Refit); never registered itself.

    bl_options is {"UNDO"} without "REGISTER": one undo step for the result, but Blender's Repeat Last and Adjust
    Last Operation only offer REGISTER operators, so they never re-run a job through the blocking execute()."""

    kind = ""  # "estimate" or "refit": what _finish does with the result
    _timer: bpy.types.Timer | None = None

    def _prepare(self, context: bpy.types.Context) -> tuple[dict[str, Any], dict[str, Any]]:
        raise NotImplementedError

    def _begin(self, context: bpy.types.Context) -> BackgroundJob | Status:
        """Prepares and starts the job; on failure reports it and returns the operator's status."""
        try:
            body, info = self._prepare(context)
            return _start(context, self.kind, body, info)
        except UserError as exc:
            props.window_state(context).last_error = exc.user_text()
            self.report({"ERROR"}, exc.user_text())
            return {"CANCELLED"}
        except Exception as exc:
            return _unexpected(self, self.bl_label, exc)

    def execute(self, context: bpy.types.Context) -> Status:
        """Synchronous: for scripts, `blender -b` and tests (timers never fire headless)."""
        job = self._begin(context)
        if not isinstance(job, BackgroundJob):
            return job
        job.join()
        return _finish(self, context)

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> Status:
        job = self._begin(context)
        if not isinstance(job, BackgroundJob):
            return job
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

    def cancel(self, context: bpy.types.Context) -> None:
        """Blender ends the modal operator itself (its window closes, Blender quits): the job is cancelled."""
        self._stop_timer(context)
        cancel_all()

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
    bl_options = {"UNDO"}
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


NO_RUN = "There is no Estimate Contact run in this scene. Run Estimate Contact first."


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
            cls.poll_message_set(NO_RUN)
            return False
        return True

    def execute(self, context: bpy.types.Context) -> Status:
        candidates = _run_contact_objects(context)
        obj = bpy.data.objects.get(self.object_name) if self.object_name else candidates[0]
        if obj is None or obj not in candidates:
            self.report(
                {"ERROR"},
                join_sentences(
                    f"{self.object_name} is not part of the active run", "Use a Paint button of the run in the panel"
                ),
            )
            return {"CANCELLED"}
        group = self.group or build.contact_groups(obj)[0]
        if group not in obj.vertex_groups:
            self.report(
                {"ERROR"},
                join_sentences(
                    f"{obj.name} has no vertex group {group}", "Run Estimate Contact again, or Reset the run's contacts"
                ),
            )
            return {"CANCELLED"}
        view_layer = context.view_layer
        if view_layer is None:
            self.report({"ERROR"}, "There is no view layer to select the object in. Open a scene with a view layer.")
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
        if not _run_contact_objects(context):
            cls.poll_message_set(NO_RUN)
            return False
        return True

    def execute(self, context: bpy.types.Context) -> Status:
        """The groups are rebuilt with the thresholds the run was made with (its provenance), not today's
        preferences, so Reset gives back exactly what Estimate Contact built."""
        run = active_run(context)
        if run is None:
            self.report({"ERROR"}, NO_RUN)
            return {"CANCELLED"}
        p = prefs.preferences(context)
        body_threshold, object_threshold = build.run_thresholds(run, (p.body_threshold, p.object_threshold))
        for obj in _run_contact_objects(context):
            threshold = body_threshold if obj.get("ivlm_role") == "body" else object_threshold
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
        raise InputError(NO_RUN)
    body, objects = build.run_objects(run)
    if body is None:
        raise InputError(
            "This run has no body to place the objects against.",
            "Run Estimate Contact on a photo where the person can be seen.",
        )
    p = prefs.preferences(context)
    # The estimate built the body in its own frame; a body moved with its rig carries that frame along, so the
    # objects go to the server relative to it and come back into it.
    frame = body.matrix_world.copy()
    into_frame = frame.inverted_safe()
    entries, unmarked = [], []
    for obj in objects:
        label = obj["ivlm_label"]
        group = contact.group_name(label)
        object_weights = build.group_weights(obj, group)
        body_weights = build.group_weights(body, group)
        if max(object_weights, default=0.0) <= p.object_threshold or max(body_weights, default=0.0) <= p.body_threshold:
            unmarked.append(label)
        entry = {
            "label": label,
            "object_contact": codec.encode(object_weights, "float32", [len(object_weights)]),
            "body_contact": codec.encode(body_weights, "float32", [len(body_weights)]),
        }
        relative = into_frame @ obj.matrix_world  # where the artist left it, in the body's frame
        pose = frames.camera_from_object([[relative[i][j] for j in range(4)] for i in range(4)])
        if pose is not None:
            entry["camera_from_object"] = pose
        entries.append(entry)
    if not entries:
        raise InputError("This run has no placed objects.", "Run Estimate Contact with the objects selected.")
    if len(unmarked) == len(entries):  # the server would skip every object: say what to do before sending
        raise InputError(
            f"No contact is marked on both the body and {_names(unmarked)} above the contact thresholds "
            f"(body {p.body_threshold:.2f}, object {p.object_threshold:.2f}).",
            "Paint or mark where they touch, on the body and on the object, then press Refit.",
        )
    vertices = _body_as_shown(body)
    request = {
        "schema_version": API_SCHEMA_VERSION,
        "source_job_id": run["ivlm_job_id"],
        "objects": entries,
        "options": {
            "body_contact_threshold": p.body_threshold,
            "object_contact_threshold": p.object_threshold,
            "body": {"vertices": codec.encode(vertices, "float32", [len(vertices) // 3, 3])},
        },
    }
    return request, {"collection": run.session_uid, "frame": frame}


def _body_as_shown(body: bpy.types.Object) -> array.array:
    """The body's vertices as the artist sees them (its armature's pose and shape keys applied) in its own frame,
    as flat camera-frame coordinates: what Refit places the objects against. Raises InputError when a modifier
    or an edit changed the vertex count, since the server needs the model's vertices in its order."""
    own = len(gather.mesh_of(body).vertices)
    built = int(body.get(build.BODY_VERTEX_COUNT, own))  # runs built before it was stored: the mesh's own count
    if own != built:
        raise InputError(
            f"The body has {own} vertices, not the {built} it was built with: its mesh was edited, so Refit "
            "cannot send it.",
            "Undo the edit to the body's mesh (vertices added or deleted), or run Estimate Contact again.",
        )
    points, same = gather.shown_positions(body, bpy.context.evaluated_depsgraph_get())
    if not same:
        changing = [m.name for m in body.modifiers if m.type != "ARMATURE" and m.show_viewport]
        raise InputError(
            f"The body's modifiers ({', '.join(changing) or 'in its stack'}) change its mesh, so Refit cannot send "
            "the body as posed.",
            "Turn those modifiers off in the viewport (keep the body's Armature modifier), then press Refit.",
        )
    return array.array("f", frames.world_points_to_cv(points))


def _names(labels: list[str]) -> str:
    """'cup', 'cup and box', 'cup, box and ball'."""
    return labels[0] if len(labels) == 1 else f"{', '.join(labels[:-1])} and {labels[-1]}"


def _apply_refit(collection_uid: int, frame: Matrix, result: dict) -> tuple[str, bool]:
    """Moves the objects Refit placed; returns the report (what was placed, why others were not) and whether
    every object was placed."""
    collection = next((c for c in bpy.data.collections if c.session_uid == collection_uid), None)
    if collection is None:
        raise InputError(
            "The run was deleted while Refit ran, so there is nothing to re-place.", "Run Estimate Contact again."
        )
    _, objects = build.run_objects(collection)
    by_label = {o["ivlm_label"]: o for o in objects}
    into_frame = frame.inverted_safe()  # each object keeps its own scale, read in the body's frame
    placed, skipped = [], []
    for outcome in result["objects"]:
        obj = by_label.get(outcome["label"])
        if obj is None:
            continue
        obj["ivlm_status"] = outcome["status"]
        obj["ivlm_reason"] = outcome["reason"]
        if outcome["camera_from_object"] is not None:
            build.place(obj, outcome["camera_from_object"], (into_frame @ obj.matrix_world).to_scale(), frame)
            placed.append(outcome["label"])
        else:
            skipped.append(f"Refit did not place {outcome['label']}: {outcome['reason'] or 'no reason was given'}")
    collection["ivlm_refit_job_id"] = result["job_id"]
    done = f"Refit re-placed {_names(placed)} from the edited contacts" if placed else "Refit placed no object"
    return join_sentences(done, *skipped), not skipped


class IVLM_OT_refit(_JobOperator):
    """Re-place the objects from the contact groups as painted (no language model runs)"""

    bl_idname = "ivlm.refit"
    bl_label = "Refit"
    bl_options = {"UNDO"}  # not REGISTER: see _JobOperator
    kind = "refit"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        if not _no_job_running(cls):
            return False
        if not _run_contact_objects(context):
            cls.poll_message_set(NO_RUN)
            return False
        return True

    def _prepare(self, context: bpy.types.Context) -> tuple[dict[str, Any], dict[str, Any]]:
        if context.object is not None and context.object.mode != "OBJECT":
            bpy.ops.object.mode_set(mode="OBJECT")  # flush Weight Paint edits into the mesh
        return _refit_body(context)


def photo_camera(run: bpy.types.Collection) -> bpy.types.Object | None:
    """The camera a run made from the photo."""
    return next((o for o in run.objects if o.get("ivlm_role") == "camera" and o.type == "CAMERA"), None)


def look_through(context: bpy.types.Context, camera: bpy.types.Object) -> list[bpy.types.SpaceView3D]:
    """Makes the 3D view the operator runs in (else every 3D view of the screen) look through `camera`, and
    returns them. The scene camera is left alone: a view shows another camera as its local camera."""
    areas = [context.area] if context.area is not None and context.area.type == "VIEW_3D" else []
    if not areas and context.screen is not None:
        areas = [a for a in context.screen.areas if a.type == "VIEW_3D"]
    views = []
    for area in areas:
        space = area.spaces.active
        if not isinstance(space, bpy.types.SpaceView3D) or space.region_3d is None:
            continue
        if context.scene is None or context.scene.camera != camera or space.use_local_camera:
            space.use_local_camera = True
            space.camera = camera
        space.region_3d.view_perspective = "CAMERA"
        window = next((r for r in area.regions if r.type == "WINDOW"), None)
        if window is not None:
            with context.temp_override(area=area, region=window):
                try:
                    bpy.ops.view3d.view_center_camera()  # the whole photo in view
                except RuntimeError:  # framing is a nicety: the view looks through the camera either way
                    pass
        area.tag_redraw()
        views.append(space)
    return views


class IVLM_OT_view_photo_camera(bpy.types.Operator):
    """Look through the photo's camera, the photo behind the scene, to check the body and the objects against it"""

    bl_idname = "ivlm.view_photo_camera"
    bl_label = "View Through Photo Camera"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        run = active_run(context)
        if run is None or photo_camera(run) is None:
            cls.poll_message_set(NO_RUN if run is None else "This run has no photo camera. Run Estimate Contact again.")
            return False
        return True

    def execute(self, context: bpy.types.Context) -> Status:
        run = active_run(context)
        camera = photo_camera(run) if run is not None else None
        if camera is None:
            self.report({"ERROR"}, NO_RUN)
            return {"CANCELLED"}
        if not look_through(context, camera):
            self.report({"ERROR"}, "There is no 3D view to look through the camera in. Open a 3D view.")
            return {"CANCELLED"}
        return {"FINISHED"}


class IVLM_OT_export(bpy.types.Operator):
    """Export the active run for animation (FBX, glTF or USD) with contacts baked and a sidecar JSON"""

    bl_idname = "ivlm.export"
    bl_label = "Export Run"
    bl_options = {"REGISTER"}

    # `# type: ignore[valid-type]`: Blender's property annotations are calls (see props.py)
    filepath: StringProperty(subtype="FILE_PATH")  # type: ignore[valid-type]
    preset: EnumProperty(  # type: ignore[valid-type]
        name="Format", items=[(k, v["label"], f"{v['label']} ({v['ext']})") for k, v in export.PRESETS.items()]
    )

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        if active_run(context) is None:
            cls.poll_message_set(NO_RUN)
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
            self.report({"ERROR"}, NO_RUN)
            return {"CANCELLED"}
        try:
            written, sidecar = export.export_run(context, run, bpy.path.abspath(self.filepath), self.preset)
        except UserError as exc:
            self.report({"ERROR"}, join_sentences("The export failed", exc.user_text()))
            return {"CANCELLED"}
        except (RuntimeError, OSError, ValueError) as exc:  # from Blender's exporters or the file system
            self.report({"ERROR"}, join_sentences("The export failed", str(exc), "Check the file path and try again"))
            return {"CANCELLED"}
        self.report({"INFO"}, f"Exported {written} and {sidecar}.")
        return {"FINISHED"}


CLASSES = (
    IVLM_OT_check_server,
    IVLM_OT_estimate_contact,
    IVLM_OT_cancel,
    IVLM_OT_paint_contact,
    IVLM_OT_reset_contact,
    IVLM_OT_refit,
    IVLM_OT_view_photo_camera,
    IVLM_OT_export,
)


def cancel_all() -> None:
    """Called on unregister, before a file loads, when Blender ends a modal job operator and when Blender quits:
    the job in flight is cancelled on the server (best effort, at once: the worker thread dies with Blender) and
    forgotten."""
    if _JOB:
        job = _JOB["job"]
        _JOB.clear()
        job.abandon()
