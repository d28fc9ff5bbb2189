"""The job service: a bounded queue and ONE worker thread that owns the models (and the GPU).

HTTP handlers only validate, persist and enqueue; all model work happens on the worker thread, so the event
loop stays free (health answers while a job runs). Jobs are persisted by `JobStore` before they are queued and
their results before they are reported done, so a restart loses nothing that was reported.
"""

from __future__ import annotations

import gc
import io
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image

from ivlm_core.body.skeleton import Skeleton, body_skeleton
from ivlm_core.doctor import ModelFileStatus
from ivlm_core.errors import BadInputError, IVLMError
from ivlm_core.mesh import TriangleMesh
from ivlm_core.pipeline.reconstruct import (
    HUMAN_RELEASE,
    OBJECT_RELEASE,
    CancelledError,
    ContactPipeline,
    ObjectInput,
    ReconstructResult,
    RunOptions,
)
from server import SERVER_VERSION, inputs
from server.errors import ServerError
from server.results import body_from_state, camera_from_state, job_result, refit_state
from server.schemas import ErrorBody, EstimateRequest, FitRequest, JobStatus
from server.settings import ServerSettings
from server.store import FINISHED, JobStore

log = logging.getLogger(__name__)
PipelineLoader = Callable[[], ContactPipeline]


@dataclass
class _Job:
    status: JobStatus
    cancel: threading.Event = field(default_factory=threading.Event)


class JobService:
    def __init__(
        self,
        settings: ServerSettings,
        load_pipeline: PipelineLoader,
        *,
        device: str,
        demo: bool,
        demo_reason: str = "",
        missing: list[ModelFileStatus] | None = None,
    ) -> None:
        self.settings = settings
        self.device = device
        self.demo = demo
        self.demo_reason = demo_reason
        self.missing = missing or []
        self.store = JobStore(settings.data_dir)
        self.pipeline: ContactPipeline | None = None
        self.skeleton: Skeleton | None = None  # the body model's, sent with every body for rigging
        self.load_error: IVLMError | None = None
        self._load_pipeline = load_pipeline
        self._jobs: dict[str, _Job] = {}
        self._queue: deque[str] = deque()
        self._running: str | None = None
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._stopping = False
        self._thread = threading.Thread(target=self._work, name="ivlm-worker", daemon=True)
        self._oom_label = settings.fault_label("oom-label") if demo else None

    # -- life cycle ---------------------------------------------------------------------------------------

    def start(self) -> None:
        """Restores jobs from disk (unfinished ones are marked INTERRUPTED), then starts the worker."""
        for status in self.store.load_all():
            if status.state not in FINISHED:
                status = status.model_copy(
                    update={
                        "state": "failed",
                        "message": "the server stopped before this job finished",
                        "error": ErrorBody(
                            code="INTERRUPTED",
                            message="the server stopped before this job finished",
                            hint="Submit the job again.",
                        ),
                        "updated_at": time.time(),
                    }
                )
                self.store.write_status(status)
            self._jobs[status.job_id] = _Job(status)
        self.cleanup()
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        with self._wake:
            self._stopping = True
            for job in self._jobs.values():
                job.cancel.set()
            self._wake.notify_all()
        self._thread.join(timeout)

    @property
    def state(self) -> str:
        if self.load_error is not None:
            return "error"
        return "ok" if self.pipeline is not None else "loading"

    def loaded_models(self) -> list[str]:
        if self.pipeline is None:
            return []
        names = ["perception (detector, segmenter, keypoints)", f"body model {self.pipeline.body.source.name}",
                 HUMAN_RELEASE, OBJECT_RELEASE]
        return [f"DEMO {name}" for name in names] if self.demo else names  # fmt: skip

    def cleanup(self) -> list[str]:
        """Deletes finished jobs older than the configured time."""
        with self._lock:
            statuses = [job.status for job in self._jobs.values()]
        expired = self.store.expired(statuses, self.settings.job_ttl_s)
        for job_id in expired:
            with self._lock:
                self._jobs.pop(job_id, None)
            self.store.delete(job_id)
        if expired:
            log.info("deleted %d expired job(s)", len(expired))
        return expired

    # -- submitting ---------------------------------------------------------------------------------------

    def submit_estimate(self, request: EstimateRequest) -> JobStatus:
        inputs.check_schema_version(request.schema_version)
        self._check_capacity()
        inputs.check_labels([obj.label for obj in request.objects])
        photo, pixels = inputs.decode_photo(request.image, self.settings)
        meshes = [inputs.decode_mesh(obj, i, self.settings) for i, obj in enumerate(request.objects)]
        body_vertices, body_params = inputs.client_body(request.options)
        arrays: dict[str, np.ndarray] = {"image": pixels}
        for i, mesh in enumerate(meshes):
            arrays[f"vertices__{i}"] = mesh.vertices.astype(np.float32)
            arrays[f"faces__{i}"] = mesh.faces.astype(np.int32)
        if body_vertices is not None:
            arrays["client_body_vertices"] = body_vertices.astype(np.float32)
        options = request.options.model_dump(exclude={"body"})
        record = {
            "kind": "estimate",
            "labels": [obj.label.strip() for obj in request.objects],
            "options": options,
            "client_body_params": None if body_params is None else {k: v.tolist() for k, v in body_params.items()},
        }
        return self._enqueue("estimate", record, arrays, photo)

    def submit_fit(self, request: FitRequest) -> JobStatus:
        inputs.check_schema_version(request.schema_version)
        self._check_capacity()
        source = self.status(request.source_job_id)
        if source.kind != "estimate":
            raise BadInputError(
                f"job {source.job_id} is a fit job; a fit needs the estimate job it refines",
                "Pass the id of the Estimate Contact job as source_job_id.",
            )
        if source.state != "done":
            raise ServerError(
                "JOB_NOT_FINISHED",
                f"source job {source.job_id} is {source.state}, not done",
                "Wait until the estimate job is done (or run it again if it failed).",
            )
        labels = self.store.request(source.job_id)["labels"]
        source_inputs = self.store.inputs(source.job_id)
        inputs.check_labels([obj.label for obj in request.objects])
        arrays: dict[str, np.ndarray] = {}
        for obj in request.objects:
            label = obj.label.strip()
            if label not in labels:
                raise BadInputError(
                    f"'{label}' is not an object of job {source.job_id} (its objects: {', '.join(labels)})",
                    "Use the labels of the estimate job's objects.",
                )
            index = labels.index(label)
            n_vertices = source_inputs[f"vertices__{index}"].shape[0]
            where = f"contacts of '{label}'"
            arrays[f"object_contact__{index}"] = inputs.decode_contact(obj.object_contact, f"{where}: object_contact", n_vertices)
            arrays[f"body_contact__{index}"] = inputs.decode_contact(obj.body_contact, f"{where}: body_contact", inputs.SMPLX_VERTICES)
        record = {
            "kind": "fit",
            "source_job_id": source.job_id,
            "labels": [obj.label.strip() for obj in request.objects],
            "options": request.options.model_dump(),
        }
        return self._enqueue("fit", record, arrays, None)

    def _check_capacity(self) -> None:
        """Refuses at once what cannot run: the models failed to load, or the queue is full."""
        if self.load_error is not None:
            error = self.load_error
            hint = f"{error.hint} Then restart the server (it loads the models once, at start).".strip()
            raise ServerError(error.code, f"the server cannot run jobs: {error.message}", hint)
        with self._lock:
            if len(self._queue) >= self.settings.queue_capacity:
                raise self._busy()

    def _busy(self) -> ServerError:
        return ServerError(
            "SERVER_BUSY",
            f"{len(self._queue)} jobs are waiting, the most this server queues",
            "Try again in a few seconds (see the Retry-After header).",
        )

    def _enqueue(self, kind: str, record: dict, arrays: dict[str, np.ndarray], photo: bytes | None) -> JobStatus:
        now = time.time()
        status = JobStatus(
            job_id=uuid.uuid4().hex, kind=kind, state="queued", stage="queued", progress=0.0,
            message="waiting for the worker", demo=self.demo, created_at=now, updated_at=now,
        )  # fmt: skip
        with self._lock:  # reserve the slot first, so a full queue never leaves files behind
            if len(self._queue) >= self.settings.queue_capacity:
                raise self._busy()
            self._jobs[status.job_id] = _Job(status)
            self._queue.append(status.job_id)
            status.queue_position = len(self._queue) - 1
        try:
            self.store.create(status, record, arrays, photo)
        except BaseException:
            with self._lock:
                self._jobs.pop(status.job_id, None)
                self._queue.remove(status.job_id)
            self.store.delete(status.job_id)
            raise
        with self._wake:
            self._wake.notify()
        return status

    # -- asking ---------------------------------------------------------------------------------------

    def status(self, job_id: str) -> JobStatus:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                raise ServerError("NOT_FOUND", f"no job {job_id}", "It may have expired; submit it again.")
            status = job.status.model_copy()
            if status.state == "queued" and job_id in self._queue:
                status.queue_position = self._queue.index(job_id)
            return status

    def result_path(self, job_id: str):  # noqa: ANN201 (Path)
        status = self.status(job_id)
        if status.state == "done":
            return self.store.result_path(job_id)
        if status.state in ("failed", "cancelled") and status.error is not None:
            raise ServerError(status.error.code, status.error.message, status.error.hint)
        raise ServerError("JOB_NOT_FINISHED", f"job {job_id} is {status.state}", "Poll the job's status until it is done.")

    def cancel(self, job_id: str) -> JobStatus:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                raise ServerError("NOT_FOUND", f"no job {job_id}", "It may have expired.")
            if job.status.state in FINISHED:
                raise ServerError("JOB_FINISHED", f"job {job_id} is already {job.status.state}", "Nothing to cancel.")
            job.cancel.set()
            if job_id in self._queue:
                self._queue.remove(job_id)
                queued = True
            else:
                queued = False
        if queued:
            self._finish(job_id, "cancelled", "cancelled before it started", CancelledError("cancelled before it started"))
        else:
            self._update(job_id, message="cancelling after the current stage")
        return self.status(job_id)

    def queue_info(self) -> tuple[int, str | None]:
        with self._lock:
            return len(self._queue), self._running

    # -- the worker -----------------------------------------------------------------------------------

    def _work(self) -> None:
        try:
            pipeline = self._load_pipeline()
            self.skeleton = body_skeleton(pipeline.body)
            self._adopt_demo_flag(pipeline)
            self.pipeline = pipeline
            log.info("models loaded; %s", "DEMO mode" if self.demo else "real models")
        except IVLMError as exc:
            self.load_error = exc
            log.error("could not load the models: %s", exc)
        except Exception as exc:  # noqa: BLE001 (any loader failure must reach health, not kill the thread)
            self.load_error = ServerError("INTERNAL", f"loading the models failed: {exc}", "See the server log.")
            log.exception("could not load the models")
        while True:
            with self._wake:
                while not self._queue and not self._stopping:
                    self._wake.wait()
                if self._stopping:
                    return
                job_id = self._queue.popleft()
                self._running = job_id
            try:
                self._run(job_id)
            finally:
                with self._lock:
                    self._running = None

    def _adopt_demo_flag(self, pipeline: ContactPipeline) -> None:
        """DEMO mode also when every file is present but some are the project's generated stand-ins."""
        parts = pipeline.demo_parts()
        if parts and not self.demo:
            self.demo = True
            self.demo_reason = f"the models folder holds generated DEMO stand-ins: {', '.join(parts)}"
            log.warning("DEMO MODE: %s. Results are NOT meaningful.", self.demo_reason)

    def _run(self, job_id: str) -> None:
        job = self._jobs[job_id]
        if self.load_error is not None:
            self._finish(job_id, "failed", "the models could not be loaded", self.load_error)
            return
        self._update(job_id, state="running", stage="starting", message="starting", demo=self.demo, persist=True)
        try:
            if job.status.kind == "estimate":
                result_json, state = self._estimate(job_id, job)
            else:
                result_json, state = self._fit(job_id, job)
            self.store.write_result(job_id, result_json, state)
            self._finish(job_id, "done", "finished", None)
        except CancelledError as exc:
            self._finish(job_id, "cancelled", exc.message, exc)
        except torch.OutOfMemoryError as exc:
            self._free_memory()
            self._finish(
                job_id, "failed", "out of GPU memory",
                ServerError(
                    "GPU_OOM", f"the GPU ran out of memory during this job ({str(exc).splitlines()[0][:200]})",
                    "Close other programs using the GPU, send a smaller photo or a decimated mesh, or use a GPU with "
                    "more memory. The server has freed the memory and keeps serving.",
                ),
            )  # fmt: skip
        except IVLMError as exc:
            self._finish(job_id, "failed", exc.message, exc)
        except Exception as exc:  # noqa: BLE001 (a job's bug must never stop the worker)
            log.exception("job %s failed", job_id)
            self._finish(job_id, "failed", "internal error", ServerError("INTERNAL", f"{type(exc).__name__}: {exc}", "See the server log."))

    def _progress(self, job_id: str, job: _Job, labels: list[str]) -> Callable[[str, float, str], None]:
        def report(stage: str, fraction: float, message: str) -> None:
            if self._oom_label is not None and stage == "contact" and self._oom_label in labels:
                raise torch.OutOfMemoryError("CUDA out of memory (simulated by IVLM_SERVER_TEST_FAULTS)")
            self._update(job_id, stage=stage, progress=fraction, message=message, persist=True)

        return report

    def _estimate(self, job_id: str, job: _Job) -> tuple[bytes, dict[str, np.ndarray]]:
        record = self.store.request(job_id)
        data = self.store.inputs(job_id)
        photo = self.store.photo(job_id)
        options = record["options"]
        objects = [
            ObjectInput(label, TriangleMesh(data[f"vertices__{i}"].astype(np.float64), data[f"faces__{i}"].astype(np.int64)))
            for i, label in enumerate(record["labels"])
        ]
        params = record.get("client_body_params")
        run_options = RunOptions(
            focal_px=options.get("focal_px"),
            body_vertices=data.get("client_body_vertices"),
            body_params=None if params is None else {k: np.asarray(v, np.float32) for k, v in params.items()},
            placement=inputs.placement_options(
                options["body_contact_threshold"], options["object_contact_threshold"], options["optimise_scale"]
            ),
            stages=frozenset(options["stages"]),
        )
        pil = Image.open(io.BytesIO(photo)) if photo is not None else None
        result = self.pipeline.run(
            data["image"], objects, run_options,
            progress=self._progress(job_id, job, record["labels"]), cancel=job.cancel.is_set, pil_image=pil,
        )  # fmt: skip
        self._check_cancel(job)
        return self._result_json(job_id, "estimate", result, options), refit_state(result)

    def _fit(self, job_id: str, job: _Job) -> tuple[bytes, None]:
        record = self.store.request(job_id)
        source_id = record["source_job_id"]
        try:
            source = self.store.request(source_id)
            source_inputs = self.store.inputs(source_id)
            state = self.store.state(source_id)
        except OSError as exc:
            raise ServerError("NOT_FOUND", f"source job {source_id} is gone ({exc})", "Run Estimate Contact again.") from exc
        data = self.store.inputs(job_id)
        body = body_from_state(state)
        if body is None:
            raise BadInputError(
                f"source job {source_id} has no body, so there is nothing to place objects against",
                "Run Estimate Contact on a photo where the person is found, or supply the body.",
            )
        camera = camera_from_state(state)
        objects, masks = [], {}
        for label in record["labels"]:
            i = source["labels"].index(label)
            mesh = TriangleMesh(source_inputs[f"vertices__{i}"].astype(np.float64), source_inputs[f"faces__{i}"].astype(np.int64))
            objects.append(ObjectInput(label, mesh, data[f"object_contact__{i}"], data[f"body_contact__{i}"]))
            if f"object_mask__{i}" in state:
                masks[label] = state[f"object_mask__{i}"]
        options = record["options"]
        run_options = RunOptions(
            placement=inputs.placement_options(
                options["body_contact_threshold"], options["object_contact_threshold"], options["optimise_scale"]
            )
        )
        self._update(job_id, stage="fit", progress=0.1, message="placing the objects from the edited contacts", persist=True)
        self._check_cancel(job)
        start = time.perf_counter()
        outcomes = self.pipeline.refit(
            body, camera, objects, object_masks=masks, person_mask=state.get("person_mask"), options=run_options
        )
        notes = ["DEMO: generated assets and random-weight models; results are not meaningful"] if self.demo else []
        result = ReconstructResult(self.demo, camera, body, outcomes, notes, {"fit": time.perf_counter() - start})
        return self._result_json(job_id, "fit", result, options, source_job_id=source_id), None

    def _result_json(self, job_id: str, kind: str, result: ReconstructResult, options: dict, source_job_id: str | None = None) -> bytes:
        pipeline = self.pipeline
        models = {
            "human_contact": HUMAN_RELEASE,
            "object_contact": OBJECT_RELEASE,
            "body_model": pipeline.body.source.name,
        }
        if self.demo:
            models = {k: f"DEMO generated stand-in for {v}" for k, v in models.items()}
        thresholds = {"body_contact": options["body_contact_threshold"], "object_contact": options["object_contact_threshold"]}
        out = job_result(
            result, job_id=job_id, kind=kind, body_faces=np.asarray(pipeline.body.model.faces, np.int32),
            skeleton=self.skeleton, server_version=SERVER_VERSION, models=models, thresholds=thresholds, source_job_id=source_job_id,
        )  # fmt: skip
        return out.model_dump_json().encode()

    @staticmethod
    def _check_cancel(job: _Job) -> None:
        if job.cancel.is_set():
            raise CancelledError("cancelled", "Submit the job again to run it.")

    def _free_memory(self) -> None:
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    # -- status bookkeeping ---------------------------------------------------------------------------

    def _update(self, job_id: str, *, persist: bool = False, **changes) -> None:  # noqa: ANN003
        with self._lock:
            job = self._jobs[job_id]
            job.status = job.status.model_copy(update={**changes, "updated_at": time.time()})
            status = job.status
        if persist:
            self.store.write_status(status)

    def _finish(self, job_id: str, state: str, message: str, error: IVLMError | None) -> None:
        body = None if error is None else ErrorBody(**error.to_dict())
        progress = 1.0 if state == "done" else self._jobs[job_id].status.progress
        self._update(job_id, state=state, message=message, error=body, progress=progress, queue_position=None, persist=True)
