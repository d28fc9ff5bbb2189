"""Jobs on disk, embedded (no outside service): one folder per job under `<data>/jobs/<job id>/`.

    status.json   the JobStatus, rewritten atomically at each change
    request.json  the JobRecord: kind, labels, options, source job (small)
    inputs.npz    decoded inputs: the photo's pixels, meshes, edited contacts
    photo.bin     the photo file exactly as sent (its EXIF gives the focal length)
    result.json   the JobResult, written atomically BEFORE the status says done (which records its size and
                  SHA-256, checked before every answer, so a damaged result is never served)
    state.npz     what a later fit-only job needs: body, camera, masks

Job ids are uuid4 hex, checked against a strict pattern before any path is built, so no request value ever
becomes a file-system path. A write that finds the disk full raises STORAGE_FULL, a job whose files are gone
NOT_FOUND, one whose files are damaged JOB_DAMAGED; none of their messages names a path.

Test-only fault injection: a store given `full_flag` fails every write as a full disk would (ENOSPC) while that
file exists (`IVLM_SERVER_TEST_FAULTS=disk-full-flag=<path>`, honoured in DEMO mode only).
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import re
import shutil
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, RootModel

from ivlm_core.fileio import atomic_path, save_npz_atomic
from server.errors import ServerError
from server.schemas import FINISHED_STATES, JOB_ID_PATTERN, ErrorBody, EstimateOptions, FitOptions, JobStatus

log = logging.getLogger(__name__)
_JOB_ID = re.compile(JOB_ID_PATTERN)
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
PROBE_BYTES = 1 << 20  # what must fit before a full disk counts as having room again
_UNREADABLE = (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile)  # what reading a damaged file raises
RESUBMIT = "Submit the job again."


class EstimateRecord(BaseModel):
    """What an estimate job runs on besides its arrays (request.json)."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["estimate"] = "estimate"
    labels: list[str]
    options: EstimateOptions  # without the client body: its arrays are in inputs.npz, its parameters below
    client_body_params: dict[str, list[float]] | None = None
    exif_orientation: int = Field(default=1, ge=1, le=8)  # of the photo as sent; the stored pixels are upright


class FitRecord(BaseModel):
    """What a fit-only job runs on besides the edited contacts (request.json)."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["fit"] = "fit"
    source_job_id: str = Field(pattern=JOB_ID_PATTERN)
    labels: list[str]
    options: FitOptions  # without the client body: its vertices are in inputs.npz, its parameters below
    client_body_params: dict[str, list[float]] | None = None


def storage_full(what: str) -> ServerError:
    return ServerError(
        "STORAGE_FULL",
        f"the server's disk is full: {what} could not be saved",
        "Free disk space where the server keeps its jobs (its data folder, `ivlm serve --data-dir`), for example by "
        "deleting old jobs there. The server notices the space by itself; then submit the job again.",
    )


def result_digest(data: bytes) -> tuple[int, str]:
    """(size in bytes, hex SHA-256) of a result file's bytes, recorded with the job's status."""
    return len(data), hashlib.sha256(data).hexdigest()


class JobRecord(RootModel[Annotated[EstimateRecord | FitRecord, Field(discriminator="kind")]]):
    """request.json: an EstimateRecord or a FitRecord, told apart by `kind`."""


class JobStore:
    def __init__(self, data_dir: Path, full_flag: Path | None = None) -> None:
        self.root = Path(data_dir) / "jobs"
        self.root.mkdir(parents=True, exist_ok=True)
        self.full_flag = full_flag

    def folder(self, job_id: str) -> Path:
        if not _JOB_ID.fullmatch(job_id):
            raise ValueError(f"not a job id: {job_id!r}")  # callers validate first; this is the last guard
        return self.root / job_id

    # -- writing ------------------------------------------------------------------------------------------

    @contextmanager
    def _writing(self, what: str) -> Iterator[None]:
        """Turns a full disk (ENOSPC, EDQUOT) into STORAGE_FULL; atomic writes leave no half-written file."""
        try:
            if self.full_flag is not None and self.full_flag.exists():
                raise OSError(errno.ENOSPC, "No space left on device (simulated by IVLM_SERVER_TEST_FAULTS)")
            yield
        except OSError as exc:
            if exc.errno in DISK_FULL:
                raise storage_full(what) from exc
            raise

    def create(
        self, status: JobStatus, record: EstimateRecord | FitRecord, arrays: dict[str, np.ndarray], photo: bytes | None
    ) -> None:
        """Writes a new job's inputs, then its status (a job without status.json is ignored on load)."""
        folder = self.folder(status.job_id)
        with self._writing("the job's inputs"):
            folder.mkdir(parents=True, exist_ok=False)
            self._write_json(folder / "request.json", record.model_dump())
            save_npz_atomic(folder / "inputs.npz", arrays)
            if photo is not None:
                with atomic_path(folder / "photo.bin") as tmp:
                    tmp.write_bytes(photo)
        self.write_status(status)

    def write_status(self, status: JobStatus) -> None:
        with self._writing("the job's status"):
            self._write_json(self.folder(status.job_id) / "status.json", status.model_dump())

    def write_result(self, job_id: str, result_json: bytes, state: dict[str, np.ndarray] | None) -> tuple[int, str]:
        """Writes the result (and the state a later fit needs); returns the result's `result_digest`."""
        folder = self.folder(job_id)
        with self._writing("the job's result"):
            if state is not None:
                save_npz_atomic(folder / "state.npz", state)
            with atomic_path(folder / "result.json") as tmp:
                tmp.write_bytes(result_json)
        return result_digest(result_json)

    def has_room(self) -> bool:
        """Whether PROBE_BYTES can be written to the data folder now (after a full disk was seen)."""
        probe = self.root / ".space-probe"
        try:
            with self._writing("a test file"):
                probe.write_bytes(b"\0" * PROBE_BYTES)
            return True
        except (OSError, ServerError):
            return False
        finally:
            probe.unlink(missing_ok=True)

    @staticmethod
    def _write_json(path: Path, data: Any) -> None:
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(data))

    # -- reading ------------------------------------------------------------------------------------------

    @contextmanager
    def _reading(self, job_id: str, what: str, hint: str = RESUBMIT) -> Iterator[None]:
        """Turns a missing job folder into NOT_FOUND and a missing or damaged file into JOB_DAMAGED."""
        try:
            yield
        except _UNREADABLE as exc:
            log.warning("job %s: cannot read its %s: %s", job_id, what, exc)
            if not self.folder(job_id).is_dir():
                raise ServerError("NOT_FOUND", f"the files of job {job_id} were deleted from the server", hint) from exc
            raise ServerError(
                "JOB_DAMAGED", f"the {what} of job {job_id} is missing or damaged on the server", hint
            ) from exc

    def request(self, job_id: str, hint: str = RESUBMIT) -> EstimateRecord | FitRecord:
        with self._reading(job_id, "request (request.json)", hint):
            return JobRecord.model_validate_json((self.folder(job_id) / "request.json").read_bytes()).root

    def inputs(self, job_id: str, hint: str = RESUBMIT) -> dict[str, np.ndarray]:
        with (
            self._reading(job_id, "inputs (inputs.npz)", hint),
            np.load(self.folder(job_id) / "inputs.npz", allow_pickle=False) as data,
        ):
            return {k: data[k] for k in data.files}

    def photo(self, job_id: str) -> bytes | None:
        path = self.folder(job_id) / "photo.bin"
        with self._reading(job_id, "photo (photo.bin)"):
            return path.read_bytes() if path.is_file() else None

    def state(self, job_id: str, hint: str = RESUBMIT) -> dict[str, np.ndarray]:
        with (
            self._reading(job_id, "saved state (state.npz)", hint),
            np.load(self.folder(job_id) / "state.npz", allow_pickle=False) as data,
        ):
            return {k: data[k] for k in data.files}

    def result(self, job_id: str, status: JobStatus) -> bytes:
        """The result's bytes, checked against the size and SHA-256 recorded in its status (JOB_DAMAGED if not)."""
        with self._reading(job_id, "result (result.json)"):
            data = (self.folder(job_id) / "result.json").read_bytes()
            if status.result_sha256 is None:  # recorded before digests were: at least it must be JSON
                json.loads(data)
            elif result_digest(data) != (status.result_size_bytes, status.result_sha256):
                raise ValueError(
                    f"{len(data)} bytes that do not match the size and SHA-256 recorded when it was written"
                )
        return data

    def load_all(self) -> list[JobStatus]:
        """Every job folder's status; a folder whose status.json is missing or unreadable is reported damaged."""
        out = []
        for folder in sorted(self.root.iterdir()):
            if not folder.is_dir() or not _JOB_ID.fullmatch(folder.name):
                continue
            try:
                status = JobStatus.model_validate_json((folder / "status.json").read_bytes())
                if status.job_id != folder.name:
                    raise ValueError(f"it names job {status.job_id}")
            except (OSError, ValueError) as exc:
                log.warning("job folder %s has no usable status.json (%s): reported as damaged", folder.name, exc)
                status = self._damaged(folder)
            out.append(status)
        return out

    def _damaged(self, folder: Path) -> JobStatus:
        """A failed JOB_DAMAGED status for a folder without a usable status, aged by its newest file (for the TTL)."""
        files = [folder, *folder.iterdir()]
        changed = max(path.stat().st_mtime for path in files)
        try:
            kind = self.request(folder.name).kind
        except ServerError:
            kind = "estimate"
        message = f"the status of job {folder.name} is missing or damaged on the server"
        return JobStatus(
            job_id=folder.name,
            kind=kind,
            state="failed",
            stage="damaged",
            progress=0.0,
            message=message,
            error=ErrorBody(code="JOB_DAMAGED", message=message, hint=RESUBMIT),
            demo=False,
            created_at=changed,
            updated_at=changed,
        )

    # -- cleaning -----------------------------------------------------------------------------------------

    def delete(self, job_id: str) -> None:
        shutil.rmtree(self.folder(job_id), ignore_errors=True)

    def expired(self, statuses: list[JobStatus], ttl_s: float, now: float | None = None) -> list[str]:
        now = time.time() if now is None else now
        return [s.job_id for s in statuses if s.state in FINISHED_STATES and now - s.updated_at > ttl_s]
