"""The job service: a bounded queue, and ONE worker process that owns the models (and the GPU).

HTTP handlers only validate, persist and enqueue. A supervisor thread hands queued jobs to the worker process
(`server.worker`) one at a time and turns its reports into job statuses; it is the only writer of status.json.
Model work runs in that other process, so nothing it does can block the event loop (health answers while a job
runs), and a worker that dies fails only its job: the supervisor starts a new one. Jobs are persisted by
`JobStore` before they are queued and their results before they are reported done, so a restart loses nothing
that was reported.

Faults: a full disk fails the job that needed the space (STORAGE_FULL), refuses submits and holds queued jobs
until the supervisor finds room again; any other unexpected error fails the job being handled and the
supervisor goes on (only repeated ones stop it, and health then says error). No message a client sees names a
path of the server's disk (`public_text`).
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import threading
import time
import uuid
from collections import deque
from multiprocessing.connection import Connection, wait
from pathlib import Path

import numpy as np

from ivlm_core import paths
from ivlm_core.doctor import ModelFileStatus
from ivlm_core.errors import BadInputError, IVLMError
from ivlm_core.pipeline import array_keys
from ivlm_core.pipeline.parts import PartSource
from ivlm_core.pipeline.reconstruct import CancelledError
from server import inputs
from server.errors import ServerError, public_text
from server.messages import Failure, Finished, FromWorker, GpuReport, Loaded, LoadFailed, Progress, RunJob, Stop
from server.schemas import (
    FINISHED_STATES,
    ErrorBody,
    EstimateRequest,
    FitRequest,
    GpuInfo,
    JobStatus,
    ServerState,
)
from server.settings import ServerSettings
from server.store import EstimateRecord, FitRecord, JobStore
from server.worker import ModelSpec, worker_main

log = logging.getLogger(__name__)
POLL_S = 0.05  # the supervisor's longest wait: how late it may notice a newly queued job
STOP_WAIT_S = 10.0  # how long stop() lets the worker finish before terminating it
STORAGE_PROBE_S = 1.0  # while the disk is full, how often the supervisor checks for room again
MAX_STEP_FAILURES = 20  # unexpected supervisor errors in a row after which it gives up (health: error)
REESTIMATE = "Run Estimate Contact again, then refit."


class JobService:
    def __init__(
        self,
        settings: ServerSettings,
        models: ModelSpec,
        *,
        demo_reason: str = "",
        missing: list[ModelFileStatus] | None = None,
        models_dir: Path | None = None,
    ) -> None:
        self.settings = settings
        self.models = models
        self.device = models.device
        self.demo = models.demo
        self.models_dir = models_dir
        # Server folders and how messages name them instead (longest first, so the most specific one wins).
        folders = {
            models_dir: "<models folder>",
            settings.data_dir: "<data folder>",
            paths.cache_dir(): "<cache folder>",
        }
        self.folders = {str(Path(k)): v for k, v in folders.items() if k is not None} | {str(Path.home()): "~"}
        self.demo_reason = self.public(demo_reason)
        self.missing = missing or []
        # Where each pipeline part comes from: as planned at start, then as the worker loaded it.
        self.sources = [PartSource(part, source) for part, source in models.part_sources().items()]
        full_flag = settings.fault_label("disk-full-flag") if models.demo else None
        self.store = JobStore(settings.data_dir, full_flag=None if full_flag is None else Path(full_flag))
        self.models_loaded: list[str] = []
        self.configuration: dict | None = None  # the memory plan's choice (pipeline/plan.py Choice.to_dict)
        self.gpu: GpuInfo | None = None  # last report from the worker (CUDA only)
        self.load_error: IVLMError | None = None
        self.storage_error: ServerError | None = None  # the data folder's disk is full (cleared once it has room)
        self.runner_error: ServerError | None = None  # the supervisor gave up: no job can run
        self._storage_checked = 0.0
        self._handling: str | None = None  # the job the supervisor's current step is about
        self._jobs: dict[str, JobStatus] = {}  # every known job's status, by id
        self._queue: deque[str] = deque()
        self._running: str | None = None
        self._reserved = 0  # queue slots held by jobs whose files are being written
        self._loaded = False
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._context = multiprocessing.get_context("spawn")  # fork is unsafe with threads, CUDA and torch
        self._cancel_id = self._context.Array(ctypes.c_char, 32)  # the job the worker must stop; read by the worker
        self._process: multiprocessing.process.BaseProcess | None = None
        # The pipes to and from the worker: set with self._process, closed when it ends.
        self._to_worker: Connection | None = None
        self._from_worker: Connection | None = None
        self._supervisor = threading.Thread(target=self._supervise, name="ivlm-supervisor", daemon=True)

    # -- life cycle ---------------------------------------------------------------------------------------

    def start(self) -> None:
        """Restores jobs from disk (unfinished ones are marked INTERRUPTED), then starts the worker."""
        for status in self.store.load_all():
            if status.state not in FINISHED_STATES:
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
                self._persist(status)
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
    def state(self) -> ServerState:
        if self.load_error is not None or self.runner_error is not None:
            return "error"
        if self._supervisor.ident is not None and not self._supervisor.is_alive() and not self._stopping.is_set():
            self.runner_error = ServerError("INTERNAL", "the server's job supervisor stopped", "Restart the server.")
            return "error"
        return "ok" if self._loaded else "loading"

    def public(self, text: str) -> str:
        """`text` without paths of the server's disk (see `public_text`)."""
        return public_text(text, self.folders)

    def public_error(self, error: IVLMError) -> ServerError:
        """The error as a client may see it: the same code, no server paths in its message or hint."""
        return ServerError(error.code, self.public(error.message), self.public(error.hint))

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
        labels = inputs.check_labels([obj.label for obj in request.objects])
        photo = inputs.decode_photo(request.image, self.settings)
        meshes = [inputs.decode_mesh(obj, i, self.settings) for i, obj in enumerate(request.objects)]
        body_arrays, body_params = inputs.client_body(request.options.body)
        arrays: dict[str, np.ndarray] = {"image": photo.pixels, **body_arrays}
        for i, mesh in enumerate(meshes):
            arrays[array_keys.key(array_keys.VERTICES, i)] = mesh.vertices.astype(np.float32)
            arrays[array_keys.key(array_keys.FACES, i)] = mesh.faces.astype(np.int32)
        record = EstimateRecord(
            labels=labels,
            options=request.options.model_copy(update={"body": None}),
            client_body_params=body_params,
            exif_orientation=photo.exif_orientation,
        )
        return self._enqueue(record, arrays, photo.raw)

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
        labels, source_inputs = self._fit_source(source.job_id)
        body_arrays, body_params = inputs.client_body(request.options.body)
        arrays: dict[str, np.ndarray] = dict(body_arrays)
        for obj, label in zip(
            request.objects, inputs.check_labels([obj.label for obj in request.objects]), strict=True
        ):
            if label not in labels:
                raise BadInputError(
                    f"'{label}' is not an object of job {source.job_id} (its objects: {', '.join(labels)})",
                    "Use the labels of the estimate job's objects.",
                )
            index = labels.index(label)
            n_vertices = source_inputs[array_keys.key(array_keys.VERTICES, index)].shape[0]
            where = f"contacts of '{label}'"
            arrays[array_keys.key(array_keys.OBJECT_CONTACT, index)] = inputs.decode_contact(
                obj.object_contact, f"{where}: object_contact", n_vertices
            )
            arrays[array_keys.key(array_keys.BODY_CONTACT, index)] = inputs.decode_contact(
                obj.body_contact, f"{where}: body_contact", inputs.SMPLX_VERTICES
            )
            if obj.camera_from_object is not None:
                arrays[array_keys.key(array_keys.OBJECT_POSE, index)] = inputs.decode_pose(
                    obj.camera_from_object, f"camera_from_object of '{label}'"
                )
        record = FitRecord(
            source_job_id=source.job_id,
            labels=[obj.label.strip() for obj in request.objects],
            options=request.options.model_copy(update={"body": None}),
            client_body_params=body_params,
        )
        return self._enqueue(record, arrays, None)

    def _fit_source(self, job_id: str) -> tuple[list[str], dict[str, np.ndarray]]:
        """A fit's source job: its labels and inputs, after checking that all it needs is on disk."""
        try:
            record = self.store.request(job_id, REESTIMATE)
            source_inputs = self.store.inputs(job_id, REESTIMATE)
            self.store.state(job_id, REESTIMATE)  # read by the fit job: it must be there and readable now
        except ServerError as exc:
            if exc.code == "NOT_FOUND":
                self._forget(job_id)
            raise
        return record.labels, source_inputs

    def _check_capacity(self) -> None:
        """Refuses at once what cannot run: the models failed to load, the disk is full, or the queue is."""
        for error in (self.load_error, self.runner_error):
            if error is not None:
                hint = f"{error.hint} Then restart the server (it loads the models once, at start).".strip()
                raise ServerError(error.code, f"the server cannot run jobs: {error.message}", hint)
        if self.storage_error is not None:
            raise self.storage_error
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

    def _enqueue(
        self, record: EstimateRecord | FitRecord, arrays: dict[str, np.ndarray], photo: bytes | None
    ) -> JobStatus:
        """Reserves a queue slot, writes the job's files, and only then queues it, so the worker never sees a job
        whose inputs are not on disk and a full queue never leaves files behind."""
        now = time.time()
        status = JobStatus(
            job_id=uuid.uuid4().hex,
            kind=record.kind,
            state="queued",
            stage="queued",
            progress=0.0,
            message="waiting for the worker",
            demo=self.demo,
            created_at=now,
            updated_at=now,
        )
        with self._lock:
            if self._waiting() >= self.settings.queue_capacity:
                raise self._busy()
            self._jobs[status.job_id] = status
            self._reserved += 1
        try:
            self.store.create(status, record, arrays, photo)
        except BaseException as exc:
            with self._lock:
                self._jobs.pop(status.job_id, None)
                self._reserved -= 1
            self.store.delete(status.job_id)
            if isinstance(exc, ServerError) and exc.code == "STORAGE_FULL":
                self._storage_full(exc)
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

    def result(self, job_id: str) -> bytes:
        """A done job's result file, checked against its recorded size and SHA-256; the job's error otherwise."""
        status = self.status(job_id)
        if status.state == "done":
            try:
                return self.store.result(job_id, status)
            except ServerError as exc:
                if exc.code == "NOT_FOUND":
                    self._forget(job_id)
                else:  # damaged: the job now says so too, and no fit can start from it
                    self._update(
                        job_id, state="failed", message=exc.message, error=ErrorBody(**exc.to_dict()), persist=True
                    )
                raise
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
            if status.state in FINISHED_STATES:
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

    def _forget(self, job_id: str) -> None:
        """Drops a job whose folder was deleted from under the server."""
        with self._lock:
            self._jobs.pop(job_id, None)
        log.warning("job %s: its folder was deleted; forgetting the job", job_id)

    # -- the worker -----------------------------------------------------------------------------------

    def _supervise(self) -> None:
        """Starts the worker, hands it jobs one at a time, applies its reports; restarts it if it dies.

        The one guard: an unexpected error in a step fails the job that step was handling and the loop goes on;
        only MAX_STEP_FAILURES in a row stop it, failing what waits, and health then says error.
        """
        failures = 0
        try:
            self._start_worker()
            while not self._stopping.is_set():
                self._handling = None
                try:
                    self._step()
                    failures = 0
                except Exception as exc:
                    failures += 1
                    log.exception("the job supervisor failed (job %s)", self._handling)
                    self._fail_handled_job(exc)
                    if failures >= MAX_STEP_FAILURES:
                        self._give_up(exc)
                        return
                    self._stopping.wait(POLL_S)
        except Exception as exc:
            log.exception("the job supervisor could not start the worker")
            self._give_up(exc)
        finally:
            self._stop_worker()

    def _fail_handled_job(self, exc: Exception) -> None:
        job_id = self._handling
        if job_id is None or job_id not in self._jobs:
            return
        error = ServerError(
            "INTERNAL",
            f"the server failed while handling this job ({type(exc).__name__}: {exc})",
            "Submit the job again; if it happens again, see the server log.",
        )
        with self._lock:
            if self._running == job_id:
                self._cancel_id.value = job_id.encode()  # the worker stops it; its report then frees the worker
        self._finish(job_id, "failed", "server error", error)

    def _give_up(self, exc: Exception) -> None:
        """No job can run any more: say so in health and fail the jobs that wait."""
        self.runner_error = ServerError(
            "INTERNAL",
            f"the server's job supervisor stopped after repeated errors ({type(exc).__name__}: {exc})",
            "See the server log, then restart the server.",
        )
        log.error("%s", self.runner_error.message)
        with self._lock:
            waiting, self._queue = list(self._queue), deque()
        for job_id in waiting:
            self._finish(job_id, "failed", "the server cannot run jobs", self.runner_error)

    def _step(self) -> None:
        """One turn of the supervisor: hand out a job, then wait (at most POLL_S) for a report or the worker's end."""
        self._check_storage()
        self._hand_out_next_job()
        if self._process is None:  # loading failed and the worker has exited: queued jobs fail above
            self._stopping.wait(POLL_S)
            return
        assert self._from_worker is not None  # started with the process
        ready = wait([self._from_worker, self._process.sentinel], timeout=POLL_S)
        if self._from_worker in ready:
            try:
                message = self._from_worker.recv()
            except (EOFError, OSError):
                message = None
            if message is not None:
                self._apply(message)
                return
        if self._process.sentinel in ready or not self._process.is_alive():
            self._worker_died()

    def _start_worker(self) -> None:
        inbox, self._to_worker = self._context.Pipe(duplex=False)
        self._from_worker, outbox = self._context.Pipe(duplex=False)
        self._cancel_id.value = b""
        self._process = self._context.Process(
            target=worker_main,
            args=(self.models, self.settings, inbox, outbox, self._cancel_id),
            name="ivlm-worker",
            daemon=True,
        )
        self._process.start()
        inbox.close()  # the child's ends: closing ours lets either side see the other go away
        outbox.close()

    def _stop_worker(self) -> None:
        if self._process is None or self._to_worker is None or self._from_worker is None:
            return
        try:
            self._to_worker.send(Stop())
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
        for pipe in (self._to_worker, self._from_worker):
            if pipe is not None:
                pipe.close()

    def _hand_out_next_job(self) -> None:
        with self._lock:
            if not self._loaded or self._running is not None or not self._queue or self.storage_error is not None:
                return
            job_id = self._queue.popleft()
            self._running = self._handling = job_id
        if self.load_error is not None:
            self._finish(job_id, "failed", "the models could not be loaded", self.load_error)
            with self._lock:
                self._running = None
            return
        if not self._update(
            job_id, state="running", stage="starting", message="starting", demo=self.demo, persist=True
        ):
            with self._lock:  # the disk is full: the job waits, first in line, until there is room
                self._running = None
                self._queue.appendleft(job_id)
            self._update(job_id, state="queued", stage="queued", message="waiting for disk space on the server")
            return
        assert self._to_worker is not None  # a job is handed out only once the worker has loaded
        self._to_worker.send(RunJob(job_id))

    def _check_storage(self) -> None:
        """While the disk is full, looks for room every STORAGE_PROBE_S; found, submits and queued jobs go on."""
        if self.storage_error is None or time.monotonic() - self._storage_checked < STORAGE_PROBE_S:
            return
        self._storage_checked = time.monotonic()
        if self.store.has_room():
            self.storage_error = None
            log.info("the data folder has room again; jobs go on")

    def _storage_full(self, error: ServerError) -> None:
        if self.storage_error is None:
            log.error("the data folder's disk is full: submits are refused and queued jobs wait until there is room")
        self.storage_error = error
        self._storage_checked = time.monotonic()

    def _apply(self, message: FromWorker) -> None:
        match message:
            case Progress(job_id, stage, fraction, text):
                self._handling = job_id
                if self._jobs[job_id].state in FINISHED_STATES:
                    return  # failed by the supervisor (full disk, an error); the worker is being stopped
                if not self._update(job_id, stage=stage, progress=fraction, message=text, persist=True):
                    self._fail_handled_for_storage(job_id)
            case Finished(job_id, state, text, error, size, sha256):
                self._handling = job_id
                digest = {"result_size_bytes": size, "result_sha256": sha256}
                self._finish(job_id, state, text, None if error is None else _server_error(error), digest)
                with self._lock:
                    if self._running == job_id:
                        self._running = None
                        self._cancel_id.value = b""
            case GpuReport(name, free_bytes, total_bytes):
                self.gpu = GpuInfo(name=name, free_bytes=free_bytes, total_bytes=total_bytes)
            case Loaded(models_loaded, demo_parts, sources):
                self.models_loaded = list(models_loaded)
                if sources:
                    self.sources = [PartSource(part, source) for part, source in sources]
                self._adopt_demo_flag(list(demo_parts))
                self._loaded = True
                log.info("models loaded; %s", "DEMO mode" if self.demo else "real models")
            case LoadFailed(error):
                self.load_error = self.public_error(_server_error(error))
                self._loaded = True  # nothing more will load: queued jobs fail with the reason
                log.error("could not load the models: %s", self.load_error)

    def _fail_handled_for_storage(self, job_id: str) -> None:
        """The running job's status could not be saved: it fails with STORAGE_FULL and the worker stops it."""
        with self._lock:
            if self._running == job_id:
                self._cancel_id.value = job_id.encode()
        self._finish(job_id, "failed", "the server's disk is full", self.storage_error)

    def _adopt_demo_flag(self, demo_parts: list[str]) -> None:
        """DEMO mode also when every file is present but some are the project's generated stand-ins."""
        if demo_parts and not self.demo:
            self.demo = True
            self.demo_reason = f"the models folder holds generated DEMO stand-ins: {', '.join(demo_parts)}"
            log.warning("DEMO MODE: %s. Results are NOT meaningful.", self.demo_reason)

    def _worker_died(self) -> None:
        """Fails the job it was running (if any) and starts a new worker, which loads the models again."""
        assert self._process is not None  # called by _step, which has a process
        code = self._process.exitcode
        self._process.join(1.0)
        with self._lock:
            job_id, self._running = self._running, None
            self._handling = job_id
            self._loaded = False
        if self.load_error is not None:  # loading failed and the worker ended: nothing to restart until the server is
            self._close_pipes()
            self._process = None
            return
        log.error("the worker process stopped unexpectedly (exit code %s); starting a new one", code)
        if job_id is not None:
            self._finish(
                job_id,
                "failed",
                "the worker process stopped",
                ServerError(
                    "WORKER_CRASHED",
                    f"the model worker process stopped unexpectedly (exit code {code}) during this job",
                    "The server has started a new worker; submit the job again. If it happens again, see the server "
                    "log: the inputs may need more memory than this machine has (decimate the mesh, shrink the photo).",
                ),
            )
        self._close_pipes()
        self._start_worker()

    # -- status bookkeeping ---------------------------------------------------------------------------

    def _update(self, job_id: str, *, persist: bool = False, **changes) -> bool:
        """Changes a job's status in memory, and on disk with `persist`; False when the disk was full."""
        with self._lock:
            status = self._jobs[job_id] = self._jobs[job_id].model_copy(update={**changes, "updated_at": time.time()})
        return self._persist(status) if persist else True

    def _persist(self, status: JobStatus) -> bool:
        try:
            self.store.write_status(status)
        except ServerError as exc:
            if exc.code != "STORAGE_FULL":
                raise
            self._storage_full(exc)
            return False
        return True

    def _finish(
        self, job_id: str, state: str, message: str, error: IVLMError | None, digest: dict | None = None
    ) -> bool:
        """A job's final status (kept in memory even when the disk is full); a job already finished keeps its own."""
        with self._lock:
            if self._jobs[job_id].state in FINISHED_STATES:
                return False
        body = None if error is None else ErrorBody(**self.public_error(error).to_dict())
        progress = 1.0 if state == "done" else self._jobs[job_id].progress
        self._update(
            job_id,
            state=state,
            message=self.public(message),
            error=body,
            progress=progress,
            queue_position=None,
            persist=True,
            **(digest or {}),
        )
        return True


def _server_error(failure: Failure) -> ServerError:
    return ServerError(failure.code, failure.message, failure.hint)
