"""The job service: a bounded queue, and ONE worker process that owns the models (and the GPU).

HTTP handlers only validate, persist and enqueue. A supervisor thread hands queued jobs to the worker process
(`server.worker`) one at a time and turns its reports into job statuses; it is the only writer of status.json.
Model work runs in that other process, so nothing it does can block the event loop (health answers while a job
runs), and a worker that dies fails only its job: the supervisor starts a new one. Jobs are persisted by
`JobStore` before they are queued and their results before they are reported done, so a restart loses nothing
that was reported.
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
import time
import uuid
from collections import deque
from multiprocessing.connection import wait

import numpy as np

from ivlm_core.doctor import ModelFileStatus
from ivlm_core.errors import BadInputError, IVLMError
from ivlm_core.pipeline.reconstruct import CancelledError
from server import inputs
from server.errors import ServerError
from server.schemas import ErrorBody, EstimateRequest, FitRequest, GpuInfo, JobStatus
from server.settings import ServerSettings
from server.store import FINISHED, JobStore
from server.worker import ModelSpec, worker_main

log = logging.getLogger(__name__)
POLL_S = 0.05  # the supervisor's longest wait: how late it may notice a newly queued job
STOP_WAIT_S = 10.0  # how long stop() lets the worker finish before terminating it


class JobService:
    def __init__(
        self,
        settings: ServerSettings,
        models: ModelSpec,
        *,
        demo_reason: str = "",
        missing: list[ModelFileStatus] | None = None,
    ) -> None:
        self.settings = settings
        self.models = models
        self.device = models.device
        self.demo = models.demo
        self.demo_reason = demo_reason
        self.missing = missing or []
        self.store = JobStore(settings.data_dir)
        self.models_loaded: list[str] = []
        self.gpu: GpuInfo | None = None  # last report from the worker (CUDA only)
        self.load_error: IVLMError | None = None
        self._jobs: dict[str, JobStatus] = {}  # every known job's status, by id
        self._queue: deque[str] = deque()
        self._running: str | None = None
        self._reserved = 0  # queue slots held by jobs whose files are being written
        self._loaded = False
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._context = multiprocessing.get_context("spawn")  # fork is unsafe with threads, CUDA and torch
        self._cancel_id = self._context.Array("c", 32)  # the job the worker must stop; read by the worker
        self._process: multiprocessing.process.BaseProcess | None = None
        self._to_worker = self._from_worker = None
        self._supervisor = threading.Thread(target=self._supervise, name="ivlm-supervisor", daemon=True)

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
            self._jobs[status.job_id] = status
        self.cleanup()
        self._supervisor.start()

    def stop(self, timeout: float = STOP_WAIT_S) -> None:
        """Cancels the running job, asks the worker to exit, and terminates it if it does not."""
        with self._lock:
            if self._running is not None:
                self._cancel_id.value = self._running.encode()
        self._stopping.set()
        self._supervisor.join(timeout + 5.0)

    @property
    def state(self) -> str:
        if self.load_error is not None:
            return "error"
        return "ok" if self._loaded else "loading"

    def loaded_models(self) -> list[str]:
        return list(self.models_loaded) if self._loaded else []

    def cleanup(self) -> list[str]:
        """Deletes finished jobs older than the configured time."""
        with self._lock:
            statuses = list(self._jobs.values())
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
            arrays[f"object_contact__{index}"] = inputs.decode_contact(
                obj.object_contact, f"{where}: object_contact", n_vertices
            )
            arrays[f"body_contact__{index}"] = inputs.decode_contact(
                obj.body_contact, f"{where}: body_contact", inputs.SMPLX_VERTICES
            )
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
            if self._waiting() >= self.settings.queue_capacity:
                raise self._busy()

    def _waiting(self) -> int:
        """Jobs queued, plus jobs whose files are still being written (their queue slot is reserved)."""
        return len(self._queue) + self._reserved

    def _busy(self) -> ServerError:
        return ServerError(
            "SERVER_BUSY",
            f"{self._waiting()} jobs are waiting, the most this server queues",
            "Try again in a few seconds (see the Retry-After header).",
        )

    def _enqueue(self, kind: str, record: dict, arrays: dict[str, np.ndarray], photo: bytes | None) -> JobStatus:
        """Reserves a queue slot, writes the job's files, and only then queues it, so the worker never sees a job
        whose inputs are not on disk and a full queue never leaves files behind."""
        now = time.time()
        status = JobStatus(
            job_id=uuid.uuid4().hex, kind=kind, state="queued", stage="queued", progress=0.0,
            message="waiting for the worker", demo=self.demo, created_at=now, updated_at=now,
        )  # fmt: skip
        with self._lock:
            if self._waiting() >= self.settings.queue_capacity:
                raise self._busy()
            self._jobs[status.job_id] = status
            self._reserved += 1
        try:
            self.store.create(status, record, arrays, photo)
        except BaseException:
            with self._lock:
                self._jobs.pop(status.job_id, None)
                self._reserved -= 1
            self.store.delete(status.job_id)
            raise
        with self._lock:
            self._reserved -= 1
            if self._jobs[status.job_id].state == "queued":  # not cancelled while its files were written
                self._queue.append(status.job_id)
        return self.status(status.job_id)

    # -- asking ---------------------------------------------------------------------------------------

    def status(self, job_id: str) -> JobStatus:
        with self._lock:
            status = self._jobs.get(job_id)
            if status is None:
                raise ServerError("NOT_FOUND", f"no job {job_id}", "It may have expired; submit it again.")
            status = status.model_copy()
            if status.state == "queued" and job_id in self._queue:
                status.queue_position = self._queue.index(job_id)
            return status

    def result_path(self, job_id: str):
        status = self.status(job_id)
        if status.state == "done":
            return self.store.result_path(job_id)
        if status.state in ("failed", "cancelled") and status.error is not None:
            raise ServerError(status.error.code, status.error.message, status.error.hint)
        raise ServerError(
            "JOB_NOT_FINISHED", f"job {job_id} is {status.state}", "Poll the job's status until it is done."
        )

    def cancel(self, job_id: str) -> JobStatus:
        with self._lock:
            status = self._jobs.get(job_id)
            if status is None:
                raise ServerError("NOT_FOUND", f"no job {job_id}", "It may have expired.")
            if status.state in FINISHED:
                raise ServerError("JOB_FINISHED", f"job {job_id} is already {status.state}", "Nothing to cancel.")
            running = self._running == job_id
            queued = not running and status.state == "queued"  # in the queue, or its files are being written
            if job_id in self._queue:
                self._queue.remove(job_id)
            if running:
                self._cancel_id.value = job_id.encode()  # the worker checks it between stages
        if queued:
            self._finish(
                job_id, "cancelled", "cancelled before it started", CancelledError("cancelled before it started")
            )
        else:
            self._update(job_id, message="cancelling after the current stage")
        return self.status(job_id)

    def queue_info(self) -> tuple[int, str | None]:
        with self._lock:
            return self._waiting(), self._running

    # -- the worker -----------------------------------------------------------------------------------

    def _supervise(self) -> None:
        """Starts the worker, hands it jobs one at a time, applies its reports; restarts it if it dies."""
        self._start_worker()
        try:
            while not self._stopping.is_set():
                self._hand_out_next_job()
                if self._process is None:  # loading failed and the worker has exited: queued jobs fail above
                    self._stopping.wait(POLL_S)
                    continue
                ready = wait([self._from_worker, self._process.sentinel], timeout=POLL_S)
                if self._from_worker in ready:
                    try:
                        message = self._from_worker.recv()
                    except (EOFError, OSError):
                        message = None
                    if message is not None:
                        self._apply(message)
                        continue
                if self._process.sentinel in ready or not self._process.is_alive():
                    self._worker_died()
        finally:
            self._stop_worker()

    def _start_worker(self) -> None:
        inbox, self._to_worker = self._context.Pipe(duplex=False)
        self._from_worker, outbox = self._context.Pipe(duplex=False)
        self._cancel_id.value = b""
        self._process = self._context.Process(
            target=worker_main, args=(self.models, self.settings, inbox, outbox, self._cancel_id),
            name="ivlm-worker", daemon=True,
        )  # fmt: skip
        self._process.start()
        inbox.close()  # the child's ends: closing ours lets either side see the other go away
        outbox.close()

    def _stop_worker(self) -> None:
        if self._process is None:
            return
        try:
            self._to_worker.send(None)
        except OSError:
            pass
        self._process.join(STOP_WAIT_S)
        if self._process.is_alive():
            log.warning("the worker did not stop in %.0f s; terminating it", STOP_WAIT_S)
            self._process.terminate()
            self._process.join(5.0)
        try:  # its last reports (a job it cancelled on the way out) still count
            while self._from_worker.poll():
                self._apply(self._from_worker.recv())
        except (EOFError, OSError):
            pass
        self._close_pipes()

    def _close_pipes(self) -> None:
        self._to_worker.close()
        self._from_worker.close()

    def _hand_out_next_job(self) -> None:
        with self._lock:
            if not self._loaded or self._running is not None or not self._queue:
                return
            job_id = self._queue.popleft()
            self._running = job_id
        if self.load_error is not None:
            self._finish(job_id, "failed", "the models could not be loaded", self.load_error)
            with self._lock:
                self._running = None
            return
        self._update(job_id, state="running", stage="starting", message="starting", demo=self.demo, persist=True)
        self._to_worker.send(("run", job_id))

    def _apply(self, message: tuple) -> None:
        kind = message[0]
        if kind == "progress":
            _, job_id, stage, fraction, text = message
            self._update(job_id, stage=stage, progress=fraction, message=text, persist=True)
        elif kind == "finished":
            _, job_id, state, text, error = message
            self._finish(job_id, state, text, None if error is None else ServerError(**error))
            with self._lock:
                if self._running == job_id:
                    self._running = None
                    self._cancel_id.value = b""
        elif kind == "gpu":
            self.gpu = GpuInfo(**message[1])
        elif kind == "loaded":
            self.models_loaded = message[1]["models_loaded"]
            self._adopt_demo_flag(message[1]["demo_parts"])
            self._loaded = True
            log.info("models loaded; %s", "DEMO mode" if self.demo else "real models")
        elif kind == "load_failed":
            self.load_error = ServerError(**message[1])
            self._loaded = True  # nothing more will load: queued jobs fail with the reason
            log.error("could not load the models: %s", self.load_error)

    def _adopt_demo_flag(self, demo_parts: list[str]) -> None:
        """DEMO mode also when every file is present but some are the project's generated stand-ins."""
        if demo_parts and not self.demo:
            self.demo = True
            self.demo_reason = f"the models folder holds generated DEMO stand-ins: {', '.join(demo_parts)}"
            log.warning("DEMO MODE: %s. Results are NOT meaningful.", self.demo_reason)

    def _worker_died(self) -> None:
        """Fails the job it was running (if any) and starts a new worker, which loads the models again."""
        code = self._process.exitcode
        self._process.join(1.0)
        with self._lock:
            job_id, self._running = self._running, None
            self._loaded = False
        if self.load_error is not None:  # loading failed and the worker ended: nothing to restart until the server is
            self._close_pipes()
            self._process = None
            return
        log.error("the worker process stopped unexpectedly (exit code %s); starting a new one", code)
        if job_id is not None:
            self._finish(
                job_id, "failed", "the worker process stopped",
                ServerError(
                    "WORKER_CRASHED", f"the model worker process stopped unexpectedly (exit code {code}) during this job",
                    "The server has started a new worker; submit the job again. If it happens again, see the server "
                    "log: the inputs may need more memory than this machine has (decimate the mesh, shrink the photo).",
                ),
            )  # fmt: skip
        self._close_pipes()
        self._start_worker()

    # -- status bookkeeping ---------------------------------------------------------------------------

    def _update(self, job_id: str, *, persist: bool = False, **changes) -> None:
        with self._lock:
            status = self._jobs[job_id] = self._jobs[job_id].model_copy(update={**changes, "updated_at": time.time()})
        if persist:
            self.store.write_status(status)

    def _finish(self, job_id: str, state: str, message: str, error: IVLMError | None) -> None:
        body = None if error is None else ErrorBody(**error.to_dict())
        progress = 1.0 if state == "done" else self._jobs[job_id].progress
        self._update(
            job_id, state=state, message=message, error=body, progress=progress, queue_position=None, persist=True
        )
