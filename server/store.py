"""Jobs on disk, embedded (no outside service): one folder per job under `<data>/jobs/<job id>/`.

    status.json   the JobStatus, rewritten atomically at each change
    request.json  kind, labels, options, source job (small)
    inputs.npz    decoded inputs: the photo's pixels, meshes, edited contacts
    photo.bin     the photo file exactly as sent (its EXIF gives the focal length)
    result.json   the JobResult, written atomically BEFORE the status says done
    state.npz     what a later fit-only job needs: body, camera, masks

Job ids are uuid4 hex, checked against a strict pattern before any path is built, so no request value ever
becomes a file-system path.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from ivlm_core.fileio import atomic_path, save_npz_atomic
from server.schemas import JOB_ID_PATTERN, JobStatus

log = logging.getLogger(__name__)
_JOB_ID = re.compile(JOB_ID_PATTERN)
FINISHED = ("done", "failed", "cancelled")


class JobStore:
    def __init__(self, data_dir: Path) -> None:
        self.root = Path(data_dir) / "jobs"
        self.root.mkdir(parents=True, exist_ok=True)

    def folder(self, job_id: str) -> Path:
        if not _JOB_ID.fullmatch(job_id):
            raise ValueError(f"not a job id: {job_id!r}")  # callers validate first; this is the last guard
        return self.root / job_id

    # -- writing ------------------------------------------------------------------------------------------

    def create(
        self, status: JobStatus, request: dict[str, Any], arrays: dict[str, np.ndarray], photo: bytes | None
    ) -> None:
        """Writes a new job's inputs, then its status (a job without status.json is ignored on load)."""
        folder = self.folder(status.job_id)
        folder.mkdir(parents=True, exist_ok=False)
        self._write_json(folder / "request.json", request)
        save_npz_atomic(folder / "inputs.npz", arrays)
        if photo is not None:
            with atomic_path(folder / "photo.bin") as tmp:
                tmp.write_bytes(photo)
        self.write_status(status)

    def write_status(self, status: JobStatus) -> None:
        self._write_json(self.folder(status.job_id) / "status.json", status.model_dump())

    def write_result(self, job_id: str, result_json: bytes, state: dict[str, np.ndarray] | None) -> None:
        folder = self.folder(job_id)
        if state is not None:
            save_npz_atomic(folder / "state.npz", state)
        with atomic_path(folder / "result.json") as tmp:
            tmp.write_bytes(result_json)

    @staticmethod
    def _write_json(path: Path, data: Any) -> None:
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(data))

    # -- reading ------------------------------------------------------------------------------------------

    def request(self, job_id: str) -> dict[str, Any]:
        return json.loads((self.folder(job_id) / "request.json").read_text())

    def inputs(self, job_id: str) -> dict[str, np.ndarray]:
        with np.load(self.folder(job_id) / "inputs.npz", allow_pickle=False) as data:
            return {k: data[k] for k in data.files}

    def photo(self, job_id: str) -> bytes | None:
        path = self.folder(job_id) / "photo.bin"
        return path.read_bytes() if path.is_file() else None

    def state(self, job_id: str) -> dict[str, np.ndarray]:
        with np.load(self.folder(job_id) / "state.npz", allow_pickle=False) as data:
            return {k: data[k] for k in data.files}

    def result_path(self, job_id: str) -> Path:
        return self.folder(job_id) / "result.json"

    def load_all(self) -> list[JobStatus]:
        """Every job with a readable status; unreadable folders are logged and left alone."""
        out = []
        for folder in sorted(self.root.iterdir()):
            if not folder.is_dir() or not _JOB_ID.fullmatch(folder.name):
                continue
            try:
                out.append(JobStatus.model_validate_json((folder / "status.json").read_text()))
            except (OSError, ValueError) as exc:
                log.warning("ignoring job folder %s: %s", folder, exc)
        return out

    # -- cleaning -----------------------------------------------------------------------------------------

    def delete(self, job_id: str) -> None:
        shutil.rmtree(self.folder(job_id), ignore_errors=True)

    def expired(self, statuses: list[JobStatus], ttl_s: float, now: float | None = None) -> list[str]:
        now = time.time() if now is None else now
        return [s.job_id for s in statuses if s.state in FINISHED and now - s.updated_at > ttl_s]
