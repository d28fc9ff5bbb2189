"""The model worker: a child process that loads the models once and runs one job at a time.

A process, not a thread, because several libraries the pipeline calls hold the GIL for long stretches (quadric
decimation of a 1.3M-face mesh held it for 1.2 s, measured): in a thread of the server process they stalled the
event loop, so health could not answer in time. In its own process nothing the models do can block the API.
The process also contains crashes: if it dies, the server fails the running job and starts a new worker. And
it dies with the server: a thread waits on the parent's sentinel (`multiprocessing.parent_process()`), so after
a `kill -9` of the server the worker exits at once instead of running its job on.

The worker reads a job's inputs from the job store, writes its result there, and reports over a pipe with the
messages of `server.messages` (Loaded or LoadFailed once, then Progress and Finished per job, GpuReport every
GPU_REPORT_S on CUDA); it takes RunJob or Stop. Cancelling writes the job id into a shared array the worker polls.
"""

from __future__ import annotations

import base64
import gc
import io
import logging
import multiprocessing
import os
import signal
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ivlm_core.allocator import keep_freed_memory
from ivlm_core.body.skeleton import Skeleton, body_skeleton
from ivlm_core.errors import BadInputError, IVLMError
from ivlm_core.localize.convert import convert_releases_once
from ivlm_core.mesh import TriangleMesh
from ivlm_core.pipeline import array_keys, parts
from ivlm_core.pipeline.plan import configuration_named
from ivlm_core.pipeline.reconstruct import (
    DEMO_NOTE,
    CancelledError,
    ContactPipeline,
    ObjectInput,
    ReconstructResult,
    RunOptions,
)
from server import SERVER_VERSION, inputs
from server.errors import ServerError
from server.messages import Failure, Finished, FromWorker, GpuReport, Loaded, LoadFailed, Progress, RunJob, Stop
from server.results import body_from_state, camera_from_state, job_result, refit_state
from server.schemas import EstimateOptions, FitOptions, JobKind
from server.settings import ServerSettings
from server.store import EstimateRecord, FitRecord, JobStore

log = logging.getLogger("ivlm.worker")
GPU_REPORT_S = 1.0
PARENT_GONE_EXIT = 3
HOLD_S = 120.0  # how long the test fault "hold-label" keeps a job in one stage
UPRIGHT_JPEG_QUALITY = 95
WORKER_NICENESS = 5  # a lower CPU priority than the server process


@dataclass(frozen=True)
class ModelSpec:
    """What the worker loads (picklable: it crosses into the child process)."""

    demo: bool
    models_root: str | None
    device: str
    configuration: str = "separate"  # a name of ivlm_core.pipeline.plan.CONFIGURATIONS, chosen by the memory plan
    sam_batch: int = 4
    convert_on_start: bool = False
    # (part, source) per pipeline part (ivlm_core.pipeline.parts); empty: every part is a stand-in with `demo`,
    # else the user's
    sources: tuple[tuple[str, str], ...] = ()

    def part_sources(self) -> dict[str, str]:
        return dict(self.sources) or dict.fromkeys(parts.PARTS, parts.STAND_IN if self.demo else parts.YOURS)

    def load(self) -> ContactPipeline:
        configuration = configuration_named(self.configuration)
        sources = self.part_sources()
        if all(source == parts.STAND_IN for source in sources.values()):
            return ContactPipeline.demo_pipeline(self.device, configuration, self.sam_batch)
        root = Path(self.models_root) if self.models_root else None
        if self.convert_on_start and sources[parts.HUMAN_CONTACT] == parts.YOURS:
            convert_releases_once(configuration.releases, root)
        return ContactPipeline.from_parts(
            root, sources, device=self.device, configuration=configuration, sam_batch=self.sam_batch
        )


def loaded_model_names(pipeline: ContactPipeline) -> list[str]:
    provenance = pipeline.model_provenance()
    sources = {source.part: source.source for source in pipeline.part_sources()}
    loaded = [
        (parts.PERCEPTION, "perception (detector, segmenter, keypoints)"),
        (parts.BODY_MODEL, f"body model {pipeline.body.source.name}"),
    ]
    releases = pipeline.configuration.releases
    if pipeline.configuration.joint:
        loaded += [(parts.HUMAN_CONTACT, releases[0])] if sources[parts.HUMAN_CONTACT] != parts.ABSENT else []
    else:
        loaded += [
            (part, release)
            for part, release in zip((parts.HUMAN_CONTACT, parts.OBJECT_CONTACT), releases, strict=True)
            if sources[part] != parts.ABSENT
        ]
    precision = provenance["language_model_precision"]
    names = [
        f"{'DEMO ' if sources[part] == parts.STAND_IN else ''}{name}"
        + (f" ({precision})" if part in (parts.HUMAN_CONTACT, parts.OBJECT_CONTACT) else "")
        for part, name in loaded
    ]
    if pipeline.body_estimator is not None:
        names.append(f"{'DEMO ' if pipeline.body_estimator.demo else ''}{pipeline.body_estimator.name}")
    return names


def worker_main(spec: ModelSpec, settings: ServerSettings, inbox: Connection, outbox: Connection, cancel_id) -> None:
    """The child process's entry point: load, report, then run jobs until told to stop or the pipe closes."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Ctrl+C in a terminal reaches the whole process group; the server stops its worker itself (cancel, then
    # a stop message), so the worker must not die mid-job and be taken for a crash.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(os, "nice"):  # the API answers first when both want the CPU (health while a job runs on CPU)
        os.nice(WORKER_NICENESS)
    _exit_with_parent()
    send_lock = threading.Lock()

    def send(message: FromWorker) -> None:
        with send_lock:
            outbox.send(message)

    try:
        pipeline = spec.load()
        skeleton = body_skeleton(pipeline.body)
    except IVLMError as exc:
        log.error("could not load the models: %s", exc)
        send(LoadFailed(Failure.of(exc)))
        return
    except Exception as exc:
        log.exception("could not load the models")
        send(LoadFailed(Failure("INTERNAL", f"loading the models failed: {exc}", "See the server log.")))
        return
    # From here on, the large arrays each job frees are kept for the next job instead of being unmapped and faulted
    # in again (set after loading, so the loaders' temporary buffers go back to the system).
    keep_freed_memory()
    sources = tuple((source.part, source.source) for source in pipeline.part_sources())
    send(Loaded(tuple(loaded_model_names(pipeline)), tuple(pipeline.demo_parts()), sources))
    log.info("models loaded; %s", "DEMO mode" if pipeline.demo else "real models")
    if spec.device.startswith("cuda"):
        threading.Thread(target=_report_gpu, args=(send,), daemon=True).start()
    full_flag = settings.fault_label("disk-full-flag") if pipeline.demo else None
    store = JobStore(settings.data_dir, full_flag=None if full_flag is None else Path(full_flag))
    runner = JobRunner(pipeline, skeleton, store, settings, pipeline.demo, send, cancel_id)
    while True:
        try:
            message = inbox.recv()
        except (EOFError, OSError):
            return  # the server went away
        match message:
            case RunJob(job_id):
                runner.run(job_id)
            case Stop():
                return


def _exit_with_parent() -> None:
    """Ends this process as soon as the server process is gone, whatever the worker is doing.

    The stdlib's own lifeline: `parent_process().sentinel` (a pipe on POSIX, a process handle on Windows) becomes
    ready when the parent dies, so there is no polling delay. Chosen over prctl(PR_SET_PDEATHSIG), which is
    Linux-only and fires when the parent's *thread* that started the worker (the supervisor) ends, and over
    polling os.getppid(), which is late by its interval and never changes on Windows.
    """
    parent = multiprocessing.parent_process()
    if parent is None:  # not started by multiprocessing (tests calling worker_main directly)
        return

    def watch() -> None:
        wait([parent.sentinel])
        log.warning("the server process is gone; the worker exits")
        os._exit(PARENT_GONE_EXIT)

    threading.Thread(target=watch, name="ivlm-parent-watch", daemon=True).start()


def _report_gpu(send) -> None:
    name = torch.cuda.get_device_name()
    while True:
        free, total = torch.cuda.mem_get_info()
        send(GpuReport(name, int(free), int(total)))
        time.sleep(GPU_REPORT_S)


class JobRunner:
    """Runs one job from the store to a result in the store; every outcome is reported, none is raised."""

    def __init__(
        self,
        pipeline: ContactPipeline,
        skeleton: Skeleton,
        store: JobStore,
        settings: ServerSettings,
        demo: bool,
        send,
        cancel_id,
    ) -> None:
        self.pipeline = pipeline
        self.skeleton = skeleton
        self.store = store
        self.demo = demo
        self.send = send
        self.cancel_id = cancel_id
        # Test-only fault injection, honoured in DEMO mode only (see ServerSettings.test_faults).
        self.oom_label = settings.fault_label("oom-label") if demo else None
        self.crash_label = settings.fault_label("crash-label") if demo else None
        self.hold_label = settings.fault_label("hold-label") if demo else None

    def cancelled(self, job_id: str) -> bool:
        return self.cancel_id.value.decode() == job_id

    def run(self, job_id: str) -> None:
        state: dict[str, np.ndarray] | None  # the fit-state an estimate keeps for a later fit
        try:
            match self.store.request(job_id):
                case EstimateRecord() as record:
                    result_json, state = self._estimate(job_id, record)
                case FitRecord() as record:
                    result_json, state = self._fit(job_id, record)
            size, sha256 = self.store.write_result(job_id, result_json, state)
            self.send(Finished(job_id, "done", "finished", None, size, sha256))
        except CancelledError as exc:
            self.send(Finished(job_id, "cancelled", exc.message, Failure.of(exc)))
        except torch.OutOfMemoryError as exc:
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            error = ServerError(
                "GPU_OOM",
                f"the GPU ran out of memory during this job ({str(exc).splitlines()[0][:200]})",
                "Close other programs using the GPU, send a smaller photo or a decimated mesh, or use a GPU with "
                "more memory. The server has freed the memory and keeps serving.",
            )
            self.send(Finished(job_id, "failed", "out of GPU memory", Failure.of(error)))
        except IVLMError as exc:
            self.send(Finished(job_id, "failed", exc.message, Failure.of(exc)))
        except Exception as exc:
            log.exception("job %s failed", job_id)
            error = ServerError("INTERNAL", f"{type(exc).__name__}: {exc}", "See the server log.")
            self.send(Finished(job_id, "failed", "internal error", Failure.of(error)))

    def _progress(self, job_id: str, labels: list[str]):
        def report(stage: str, fraction: float, message: str) -> None:
            if stage == "contact" and self.oom_label in labels:
                raise torch.OutOfMemoryError("CUDA out of memory (simulated by IVLM_SERVER_TEST_FAULTS)")
            if stage == "contact" and self.crash_label in labels:
                os._exit(3)  # simulated: the process dies as it would from a segfault or the kernel's OOM killer
            self.send(Progress(job_id, stage, fraction, message))
            if stage == "contact" and self.hold_label in labels:
                time.sleep(HOLD_S)  # simulated: a long stage that reports nothing (a big mesh, a slow CPU)

        return report

    def _check_cancel(self, job_id: str) -> None:
        if self.cancelled(job_id):
            raise CancelledError("cancelled", "Submit the job again to run it.")

    def _estimate(self, job_id: str, record: EstimateRecord) -> tuple[bytes, dict[str, np.ndarray]]:
        data = self.store.inputs(job_id)
        photo = self.store.photo(job_id)
        options = record.options
        objects = [ObjectInput(label, _mesh(data, i)) for i, label in enumerate(record.labels)]
        box = options.person_box_xyxy  # four numbers (the schema checks the length)
        run_options = RunOptions(
            focal_px=options.focal_px,
            body_vertices=data.get(array_keys.CLIENT_BODY_VERTICES),
            body_params=_client_params(record),
            placement=inputs.placement_options(
                options.body_contact_threshold, options.object_contact_threshold, options.optimise_scale
            ),
            stages=frozenset(options.stages),
            person_box=None if box is None else (box[0], box[1], box[2], box[3]),
            predict_contact=options.predict_contact,
        )
        pil = Image.open(io.BytesIO(photo)) if photo is not None else None
        result = self.pipeline.run(
            data["image"],
            objects,
            run_options,
            progress=self._progress(job_id, record.labels),
            cancel=lambda: self.cancelled(job_id),
            pil_image=pil,
        )
        self._check_cancel(job_id)
        photo_out = _Photo(data["image"], record.exif_orientation)
        return self._result_json(job_id, "estimate", result, options, photo_out), refit_state(result)

    def _fit(self, job_id: str, record: FitRecord) -> tuple[bytes, None]:
        source_id = record.source_job_id
        again = "Run Estimate Contact again, then refit."
        source = self.store.request(source_id, again)  # NOT_FOUND or JOB_DAMAGED (no path) if it is not usable
        source_inputs = self.store.inputs(source_id, again)
        state = self.store.state(source_id, again)
        if not isinstance(source, EstimateRecord):
            raise ServerError("JOB_DAMAGED", f"source job {source_id} is not an estimate job", again)
        data = self.store.inputs(job_id)
        notes = [DEMO_NOTE] if self.demo else []
        body = body_from_state(state)
        client_vertices, params = data.get(array_keys.CLIENT_BODY_VERTICES), _client_params(record)
        if client_vertices is not None or params is not None:  # the body as the user has it now (posed, moved)
            body = self.pipeline.client_body(client_vertices, params)
            notes.append("placed against the body you sent (as it is in your scene), not the estimate's")
        if body is None:
            raise BadInputError(
                f"source job {source_id} has no body, so there is nothing to place objects against",
                "Run Estimate Contact on a photo where the person is found, or send the body (options.body).",
            )
        camera = camera_from_state(state)
        objects, masks, poses = [], {}, {}
        for label in record.labels:
            i = source.labels.index(label)
            contacts = (
                data[array_keys.key(array_keys.OBJECT_CONTACT, i)],
                data[array_keys.key(array_keys.BODY_CONTACT, i)],
            )
            objects.append(ObjectInput(label, _mesh(source_inputs, i), *contacts))
            if array_keys.key(array_keys.OBJECT_MASK, i) in state:
                masks[label] = state[array_keys.key(array_keys.OBJECT_MASK, i)]
            pose_key = array_keys.key(array_keys.OBJECT_POSE, i)
            if pose_key in data:  # where the user left the object
                poses[label] = data[pose_key]
            elif pose_key in state:  # the estimate's placement; older jobs lack it: the dense search runs
                poses[label] = state[pose_key]
        options = record.options
        run_options = RunOptions(
            placement=inputs.placement_options(
                options.body_contact_threshold, options.object_contact_threshold, options.optimise_scale
            )
        )
        self.send(Progress(job_id, "fit", 0.1, "placing the objects from the edited contacts"))
        self._check_cancel(job_id)
        start = time.perf_counter()
        outcomes = self.pipeline.refit(
            body,
            camera,
            objects,
            object_masks=masks,
            person_mask=state.get("person_mask"),
            options=run_options,
            initial_poses=poses,
        )
        for outcome in outcomes:
            sent_pose = array_keys.key(array_keys.OBJECT_POSE, source.labels.index(outcome.label)) in data
            if sent_pose and outcome.placement.placed:
                outcome.notes.append(f"the search started from where '{outcome.label}' was in your scene")
        notes += [s.note() for s in self.pipeline.part_sources() if s.source == parts.STAND_IN]
        notes.append("placed from the contacts you painted or marked")
        result = ReconstructResult(self.demo, camera, body, outcomes, notes, {"fit": time.perf_counter() - start})
        photo_out = _Photo(source_inputs["image"], source.exif_orientation)
        return self._result_json(job_id, "fit", result, options, photo_out, source_job_id=source_id), None

    def _result_json(
        self,
        job_id: str,
        kind: JobKind,
        result: ReconstructResult,
        options: EstimateOptions | FitOptions,
        photo: _Photo,
        source_job_id: str | None = None,
    ) -> bytes:
        thresholds = {
            "body_contact": options.body_contact_threshold,
            "object_contact": options.object_contact_threshold,
        }
        out = job_result(
            result,
            job_id=job_id,
            kind=kind,
            body_faces=np.asarray(self.pipeline.body.model.faces, np.int32),
            skeleton=self.skeleton,
            server_version=SERVER_VERSION,
            models=self.pipeline.models_used(),
            thresholds=thresholds,
            source_job_id=source_job_id,
            exif_orientation=photo.exif_orientation,
            upright_photo=photo.upright_jpeg(),
            parts=[source.to_dict() for source in self.pipeline.part_sources()],
        )
        return out.model_dump_json().encode()


@dataclass(frozen=True)
class _Photo:
    """The pixels a job analysed (upright) and the EXIF orientation the photo was sent with."""

    pixels: np.ndarray
    exif_orientation: int

    def upright_jpeg(self) -> str | None:
        """base64 JPEG of the analysed pixels when the EXIF orientation turned them, so the client can show
        exactly what its camera looked at; None when they are the photo as stored."""
        if self.exif_orientation == 1:
            return None
        buffer = io.BytesIO()
        Image.fromarray(self.pixels).save(buffer, "JPEG", quality=UPRIGHT_JPEG_QUALITY)
        return base64.b64encode(buffer.getvalue()).decode("ascii")


def _client_params(record: EstimateRecord | FitRecord) -> dict[str, np.ndarray] | None:
    """The SMPL-X parameters of a body the client sent with the job, as arrays; None when it sent none."""
    params = record.client_body_params
    return None if params is None else {k: np.asarray(v, np.float32) for k, v in params.items()}


def _mesh(arrays: dict[str, np.ndarray], index: int) -> TriangleMesh:
    """Object `index`'s mesh from a job's inputs."""
    vertices = arrays[array_keys.key(array_keys.VERTICES, index)]
    faces = arrays[array_keys.key(array_keys.FACES, index)]
    return TriangleMesh(vertices.astype(np.float64), faces.astype(np.int64))
