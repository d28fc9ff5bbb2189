"""A small Python client for scripts, tests and benchmarks (standard library only; the Blender add-on has its own).

client = ServerClient("http://127.0.0.1:8765")
job = client.submit(estimate_request(png_bytes, [("cup", vertices, faces)]))
result = client.wait(job["job_id"])
"""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.request
from typing import Any

import numpy as np

from server import arrays
from server.schemas import API_SCHEMA_VERSION, FINISHED_STATES, ArrayDtype


class ApiError(Exception):
    """An error answer: HTTP status plus the server's {code, message, hint}."""

    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{status} {body.get('code')}: {body.get('message')}")
        self.status = status
        self.code = body.get("code", "")
        self.body = body
        self.headers = headers or {}


def array_payload(array: np.ndarray, dtype: ArrayDtype = "float32") -> dict[str, Any]:
    return arrays.encode(array, dtype).model_dump()


array_value = arrays.value  # an answer's array as numpy


def estimate_request(photo: bytes, objects: list[tuple[str, np.ndarray, np.ndarray]], **options: Any) -> dict[str, Any]:
    """An EstimateRequest body: photo file bytes, (label, vertices [N,3], faces [F,3]) per object, options."""
    return {
        "schema_version": API_SCHEMA_VERSION,
        "image": base64.b64encode(photo).decode("ascii"),
        "objects": [
            {"label": label, "vertices": array_payload(v), "faces": array_payload(f, "int32")}
            for label, v, f in objects
        ],
        "options": options,
    }


def fit_request(
    source_job_id: str,
    contacts: dict[str, tuple[np.ndarray, np.ndarray]],
    poses: dict[str, np.ndarray] | None = None,
    **options: Any,
) -> dict[str, Any]:
    """A FitRequest body: per label (object_contact [N], body_contact [10475]), and where a label's object is
    now (camera_from_object [4, 4]) when `poses` has it."""
    objects = []
    for label, (obj, body) in contacts.items():
        entry: dict[str, Any] = {
            "label": label,
            "object_contact": array_payload(obj),
            "body_contact": array_payload(body),
        }
        if poses is not None and label in poses:
            entry["camera_from_object"] = np.asarray(poses[label], np.float64).tolist()
        objects.append(entry)
    return {
        "schema_version": API_SCHEMA_VERSION,
        "source_job_id": source_job_id,
        "objects": objects,
        "options": options,
    }


class ServerClient:
    def __init__(self, base_url: str, token: str | None = None, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def request(
        self, method: str, path: str, body: dict[str, Any] | bytes | None = None, headers: dict[str, str] | None = None
    ) -> dict[str, Any]:
        data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
        headers = {**({"Content-Type": "application/json"} if data is not None else {}), **(headers or {})}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        req = urllib.request.Request(self.base_url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as answer:
                return json.loads(answer.read())
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                payload = json.loads(raw)
            except ValueError:
                payload = {"code": "HTTP", "message": raw.decode(errors="replace")}
            raise ApiError(exc.code, payload, dict(exc.headers.items())) from None

    def health(self) -> dict[str, Any]:
        return self.request("GET", "/v1/health")

    def submit(self, body: dict[str, Any]) -> dict[str, Any]:
        return self.request("POST", "/v1/jobs", body)

    def submit_fit(self, body: dict[str, Any]) -> dict[str, Any]:
        return self.request("POST", "/v1/fit-jobs", body)

    def status(self, job_id: str) -> dict[str, Any]:
        return self.request("GET", f"/v1/jobs/{job_id}")

    def cancel(self, job_id: str) -> dict[str, Any]:
        return self.request("POST", f"/v1/jobs/{job_id}/cancel")

    def result(self, job_id: str) -> dict[str, Any]:
        return self.request("GET", f"/v1/jobs/{job_id}/result")

    def wait_finished(self, job_id: str, timeout: float = 300.0, poll: float = 0.1) -> dict[str, Any]:
        """Polls until the job is done, failed or cancelled; returns its last status."""
        deadline = time.monotonic() + timeout
        while True:
            status = self.status(job_id)
            if status["state"] in FINISHED_STATES:
                return status
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {status['state']} after {timeout} s")
            time.sleep(poll)

    def wait(self, job_id: str, timeout: float = 300.0) -> dict[str, Any]:
        """The result of a job that finishes done; ApiError with the job's error otherwise."""
        self.wait_finished(job_id, timeout)
        return self.result(job_id)
