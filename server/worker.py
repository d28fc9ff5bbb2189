"""The model worker: a child process that loads the models once and runs one job at a time.

A process, not a thread, because several libraries the pipeline calls hold the GIL for long stretches (quadric
decimation of a 1.3M-face mesh held it for 1.2 s, measured): in a thread of the server process they stalled the
event loop, so health could not answer in time. In its own process nothing the models do can block the API.
The process also contains crashes: if it dies, the server fails the running job and starts a new worker.

The worker reads a job's inputs from the job store, writes its result there, and reports over a pipe:
    ("loaded", {"models_loaded": [...], "demo_parts": [...]})   or   ("load_failed", {code, message, hint})
    ("progress", job_id, stage, fraction, message)
    ("finished", job_id, state, message, error dict or None)     (the result is on disk before this is sent)
    ("gpu", {"name", "free_bytes", "total_bytes"})               (every GPU_REPORT_S on CUDA)
and takes ("run", job_id) or None (stop). Cancelling writes the job id into a shared array the worker polls.
"""

from __future__ import annotations

import gc
import io
import logging
import os
import signal
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from ivlm_core.body.skeleton import Skeleton, body_skeleton
from ivlm_core.errors import BadInputError, IVLMError
from ivlm_core.mesh import TriangleMesh
from ivlm_core.pipeline.reconstruct import (
    DEMO_NOTE,
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
from server.settings import ServerSettings
from server.store import JobStore

log = logging.getLogger("ivlm.worker")
GPU_REPORT_S = 1.0
WORKER_NICENESS = 5  # a lower CPU priority than the server process


@dataclass(frozen=True)
class ModelSpec:
    """What the worker loads (picklable: it crosses into the child process)."""

    demo: bool
    models_root: str | None
    device: str

    def load(self) -> ContactPipeline:
        if self.demo:
            return ContactPipeline.demo_pipeline(self.device)
        return ContactPipeline.from_models_dir(Path(self.models_root) if self.models_root else None, device=self.device)


def loaded_model_names(pipeline: ContactPipeline) -> list[str]:
    names = ["perception (detector, segmenter, keypoints)", f"body model {pipeline.body.source.name}",
             HUMAN_RELEASE, OBJECT_RELEASE]  # fmt: skip
    return [f"DEMO {name}" for name in names] if pipeline.demo else names


def worker_main(spec: ModelSpec, settings: ServerSettings, inbox: Connection, outbox: Connection, cancel_id) -> None:
    """The child process's entry point: load, report, then run jobs until told to stop or the pipe closes."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Ctrl+C in a terminal reaches the whole process group; the server stops its worker itself (cancel, then
    # a stop message), so the worker must not die mid-job and be taken for a crash.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(os, "nice"):  # the API answers first when both want the CPU (health while a job runs on CPU)
        os.nice(WORKER_NICENESS)
    send_lock = threading.Lock()

    def send(message: tuple) -> None:
        with send_lock:
            outbox.send(message)

    try:
        pipeline = spec.load()
        skeleton = body_skeleton(pipeline.body)
    except IVLMError as exc:
        log.error("could not load the models: %s", exc)
        send(("load_failed", exc.to_dict()))
        return
    except Exception as exc:
        log.exception("could not load the models")
        send(
            (
                "load_failed",
                ServerError("INTERNAL", f"loading the models failed: {exc}", "See the server log.").to_dict(),
            )
        )
        return
    send(("loaded", {"models_loaded": loaded_model_names(pipeline), "demo_parts": pipeline.demo_parts()}))
    log.info("models loaded; %s", "DEMO mode" if pipeline.demo else "real models")
    if spec.device.startswith("cuda"):
        threading.Thread(target=_report_gpu, args=(send,), daemon=True).start()
    runner = JobRunner(pipeline, skeleton, JobStore(settings.data_dir), settings, pipeline.demo, send, cancel_id)
    while True:
        try:
            message = inbox.recv()
        except (EOFError, OSError):
            return  # the server went away
        if message is None:
            return
        runner.run(message[1])


def _report_gpu(send) -> None:
    name = torch.cuda.get_device_name()
    while True:
        free, total = torch.cuda.mem_get_info()
        send(("gpu", {"name": name, "free_bytes": int(free), "total_bytes": int(total)}))
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

    def cancelled(self, job_id: str) -> bool:
        return self.cancel_id.value.decode() == job_id

    def run(self, job_id: str) -> None:
        try:
            record = self.store.request(job_id)
            if record["kind"] == "estimate":
                result_json, state = self._estimate(job_id, record)
            else:
                result_json, state = self._fit(job_id, record)
            self.store.write_result(job_id, result_json, state)
            self.send(("finished", job_id, "done", "finished", None))
        except CancelledError as exc:
            self.send(("finished", job_id, "cancelled", exc.message, exc.to_dict()))
        except torch.OutOfMemoryError as exc:
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            error = ServerError(
                "GPU_OOM", f"the GPU ran out of memory during this job ({str(exc).splitlines()[0][:200]})",
                "Close other programs using the GPU, send a smaller photo or a decimated mesh, or use a GPU with "
                "more memory. The server has freed the memory and keeps serving.",
            )  # fmt: skip
            self.send(("finished", job_id, "failed", "out of GPU memory", error.to_dict()))
        except IVLMError as exc:
            self.send(("finished", job_id, "failed", exc.message, exc.to_dict()))
        except Exception as exc:
            log.exception("job %s failed", job_id)
            error = ServerError("INTERNAL", f"{type(exc).__name__}: {exc}", "See the server log.")
            self.send(("finished", job_id, "failed", "internal error", error.to_dict()))

    def _progress(self, job_id: str, labels: list[str]):
        def report(stage: str, fraction: float, message: str) -> None:
            if stage == "contact" and self.oom_label in labels:
                raise torch.OutOfMemoryError("CUDA out of memory (simulated by IVLM_SERVER_TEST_FAULTS)")
            if stage == "contact" and self.crash_label in labels:
                os._exit(3)  # simulated: the process dies as it would from a segfault or the kernel's OOM killer
            self.send(("progress", job_id, stage, fraction, message))

        return report

    def _check_cancel(self, job_id: str) -> None:
        if self.cancelled(job_id):
            raise CancelledError("cancelled", "Submit the job again to run it.")

    def _estimate(self, job_id: str, record: dict[str, Any]) -> tuple[bytes, dict[str, np.ndarray]]:
        data = self.store.inputs(job_id)
        photo = self.store.photo(job_id)
        options = record["options"]
        objects = [
            ObjectInput(
                label, TriangleMesh(data[f"vertices__{i}"].astype(np.float64), data[f"faces__{i}"].astype(np.int64))
            )
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
            progress=self._progress(job_id, record["labels"]), cancel=lambda: self.cancelled(job_id), pil_image=pil,
        )  # fmt: skip
        self._check_cancel(job_id)
        return self._result_json(job_id, "estimate", result, options), refit_state(result)

    def _fit(self, job_id: str, record: dict[str, Any]) -> tuple[bytes, None]:
        source_id = record["source_job_id"]
        try:
            source = self.store.request(source_id)
            source_inputs = self.store.inputs(source_id)
            state = self.store.state(source_id)
        except OSError as exc:
            raise ServerError(
                "NOT_FOUND", f"source job {source_id} is gone ({exc})", "Run Estimate Contact again."
            ) from exc
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
            mesh = TriangleMesh(
                source_inputs[f"vertices__{i}"].astype(np.float64), source_inputs[f"faces__{i}"].astype(np.int64)
            )
            objects.append(ObjectInput(label, mesh, data[f"object_contact__{i}"], data[f"body_contact__{i}"]))
            if f"object_mask__{i}" in state:
                masks[label] = state[f"object_mask__{i}"]
        options = record["options"]
        run_options = RunOptions(
            placement=inputs.placement_options(
                options["body_contact_threshold"], options["object_contact_threshold"], options["optimise_scale"]
            )
        )
        self.send(("progress", job_id, "fit", 0.1, "placing the objects from the edited contacts"))
        self._check_cancel(job_id)
        start = time.perf_counter()
        outcomes = self.pipeline.refit(
            body, camera, objects, object_masks=masks, person_mask=state.get("person_mask"), options=run_options
        )
        notes = [DEMO_NOTE] if self.demo else []
        result = ReconstructResult(self.demo, camera, body, outcomes, notes, {"fit": time.perf_counter() - start})
        return self._result_json(job_id, "fit", result, options, source_job_id=source_id), None

    def _result_json(
        self, job_id: str, kind: str, result: ReconstructResult, options: dict, source_job_id: str | None = None
    ) -> bytes:
        models = {
            "human_contact": HUMAN_RELEASE,
            "object_contact": OBJECT_RELEASE,
            "body_model": self.pipeline.body.source.name,
        }
        if self.demo:
            models = {k: f"DEMO generated stand-in for {v}" for k, v in models.items()}
        thresholds = {
            "body_contact": options["body_contact_threshold"],
            "object_contact": options["object_contact_threshold"],
        }
        out = job_result(
            result, job_id=job_id, kind=kind, body_faces=np.asarray(self.pipeline.body.model.faces, np.int32),
            skeleton=self.skeleton, server_version=SERVER_VERSION, models=models, thresholds=thresholds,
            source_job_id=source_job_id,
        )  # fmt: skip
        return out.model_dump_json().encode()
