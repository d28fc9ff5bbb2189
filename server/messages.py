"""What the supervisor (`server.jobs`) and the worker process (`server.worker`) send each other over their pipes.

Small frozen dataclasses (they are pickled across the process boundary), each side dispatching on them with
`match`; nothing is unpacked by position.

    supervisor -> worker:  RunJob, Stop
    worker -> supervisor:  Loaded or LoadFailed (once, after loading), Progress, Finished, GpuReport
"""

from __future__ import annotations

from dataclasses import dataclass

from ivlm_core.errors import IVLMError


@dataclass(frozen=True)
class Failure:
    """An error as it crosses the pipe: `{code, message, hint}`."""

    code: str
    message: str
    hint: str = ""

    @classmethod
    def of(cls, error: IVLMError) -> Failure:
        return cls(error.code, error.message, error.hint)


# -- supervisor -> worker ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunJob:
    """Run this job (its inputs are in the job store)."""

    job_id: str


@dataclass(frozen=True)
class Stop:
    """Exit after the current job."""


# -- worker -> supervisor ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Loaded:
    models_loaded: tuple[str, ...]
    demo_parts: tuple[str, ...]  # loaded parts that are generated DEMO stand-ins


@dataclass(frozen=True)
class LoadFailed:
    error: Failure


@dataclass(frozen=True)
class Progress:
    job_id: str
    stage: str
    fraction: float
    message: str


@dataclass(frozen=True)
class Finished:
    """A job ended; when `state` is "done" its result is already on disk."""

    job_id: str
    state: str  # done, failed or cancelled
    message: str
    error: Failure | None = None
    result_size_bytes: int | None = None  # when done: the result file's size and SHA-256 (`store.result_digest`)
    result_sha256: str | None = None


@dataclass(frozen=True)
class GpuReport:
    name: str
    free_bytes: int
    total_bytes: int


ToWorker = RunJob | Stop
FromWorker = Loaded | LoadFailed | Progress | Finished | GpuReport
