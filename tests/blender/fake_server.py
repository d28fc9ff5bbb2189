"""A stand-in for the inference server (standard library HTTP on 127.0.0.1, a random port), for add-on tests that
need answers the real server cannot be made to give on demand: a job that runs until the test finishes it, answers
held back while the test looks at the UI, a result with an upright photo, a health that changes.

The result of an Estimate job is made from the request itself (one object per object sent, contact arrays as long
as the mesh sent), so it fits whatever scene the test built; `edit_result` may change it before it is served.
"""

from __future__ import annotations

import array
import base64
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

API_SCHEMA_VERSION = "ivlm-api-1"
JOB_ID = "f" * 32


def encode(values: list[float] | list[int], dtype: str, shape: list[int]) -> dict[str, Any]:
    data = array.array("f" if dtype == "float32" else "i", values)
    return {"dtype": dtype, "shape": shape, "data": base64.b64encode(data.tobytes()).decode()}


def decode_count(payload: dict[str, Any]) -> int:
    return int(payload["shape"][0])


# A tiny "body": a tetrahedron 2 m in front of the camera (OpenCV frame), with a made-up contact on two vertices.
BODY_VERTICES = [0.0, 0.0, 2.0, 0.3, 0.0, 2.0, 0.0, -0.3, 2.0, 0.0, 0.0, 2.3]
BODY_FACES = [0, 1, 2, 0, 1, 3, 0, 2, 3, 1, 2, 3]
BODY_CONTACT = [0.9, 0.2, 0.7, 0.0]


def object_contact(count: int) -> list[float]:
    """A contact of 0.9 on every third vertex, 0.3 (below the 0.5 threshold) on the others."""
    return [0.9 if i % 3 == 0 else 0.3 for i in range(count)]


def result_for(request: dict[str, Any], image_hw: tuple[int, int], job_id: str = JOB_ID) -> dict[str, Any]:
    """A result in the API's shape for an Estimate request: a small body, every object placed 2 m in front of the
    camera with a contact on every third vertex, a camera with the photo's size."""
    h, w = image_hw
    focal = 0.9 * max(h, w)
    objects = []
    for entry in request["objects"]:
        count = decode_count(entry["vertices"])
        objects.append(
            {
                "label": entry["label"],
                "status": "placed",
                "reason": "",
                "camera_from_object": [[1, 0, 0, 0.1], [0, 1, 0, 0.0], [0, 0, 1, 2.0], [0, 0, 0, 1]],
                "scale": 1.0,
                "object_contact": encode(object_contact(count), "float32", [count]),
                "body_contact": encode(BODY_CONTACT, "float32", [4]),
                "losses": {},
                "detection_box_xyxy": None,
                "detection_score": None,
                "notes": [],
            }
        )
    options = request.get("options", {})
    return {
        "schema_version": API_SCHEMA_VERSION,
        "result_schema": "ivlm-result-1",
        "job_id": job_id,
        "kind": "estimate",
        "source_job_id": None,
        "demo": True,
        "server_version": "fake",
        "models": {"body": "fake"},
        "thresholds": {
            "body_contact": options.get("body_contact_threshold", 0.5),
            "object_contact": options.get("object_contact_threshold", 0.5),
        },
        "frame": "opencv camera",
        "people_count": 1,
        "notes": ["fake server"],
        "timings_s": {},
        "camera": {
            "focal_px": focal,
            "focal_source": "default",
            "image_size_hw": [h, w],
            "intrinsics": [[focal, 0.0, w / 2], [0.0, focal, h / 2], [0.0, 0.0, 1.0]],
        },
        "body": {
            "source": "demo",
            "vertices": encode(BODY_VERTICES, "float32", [4, 3]),
            "faces": encode(BODY_FACES, "int32", [4, 3]),
            "joints": encode([0.0] * 3, "float32", [1, 3]),
            "params": {},
            "losses": {},
            "skeleton": None,
        },
        "objects": objects,
    }


class FakeServer(ThreadingHTTPServer):
    """The job API. A job runs until `finish` is set (set by default); `gate` cleared holds every answer until it
    is set again; `requests` lists "METHOD path" as received, `bodies` the JSON of each POST."""

    daemon_threads = True

    def __init__(self, image_hw: tuple[int, int] = (48, 64)) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.image_hw = image_hw
        self.requests: list[str] = []
        self.bodies: list[dict[str, Any]] = []
        self.estimates: list[dict[str, Any]] = []  # the Estimate requests received, oldest first
        self.answered: list[str] = []
        self.gate = threading.Event()
        self.gate.set()
        self.finish = threading.Event()
        self.finish.set()
        self.cancelled = threading.Event()
        self.token = ""
        self.delay_s = 0.0  # added to every answer (benchmarks: a slow server)
        self.health: dict[str, Any] = {
            "status": "ok",
            "server_version": "fake",
            "api_schema_version": API_SCHEMA_VERSION,
            "device": "cpu",
            "demo": True,
            "demo_reason": "the fake server of the tests",
            "missing_model_files": [],
        }
        self.edit_result: Callable[[dict[str, Any]], None] = lambda result: None
        self.jobs = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def job_id(self) -> str:
        return f"{self.jobs:032x}"


class _Handler(BaseHTTPRequestHandler):
    server: FakeServer

    def log_message(self, *args: object) -> None:
        pass

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        self.server.gate.wait()
        if self.server.delay_s:
            time.sleep(self.server.delay_s)
        raw = json.dumps(body).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up waiting (its read timeout)
            return
        self.server.answered.append(f"{self.command} {self.path}")

    def _authorised(self) -> bool:
        if self.server.token and self.headers.get("Authorization") != f"Bearer {self.server.token}":
            self._answer(401, {"code": "UNAUTHORIZED", "message": "missing or wrong bearer token", "hint": ""})
            return False
        return True

    def _status(self, state: str, **extra: Any) -> dict[str, Any]:
        return {
            "job_id": self.server.job_id(),
            "kind": "estimate",
            "state": state,
            # a queued job has no stage yet (as the real server answers a submit): a test waiting for the running
            # stage then sees a poll's answer, never the submit's
            "stage": "queued" if state == "queued" else "contact",
            "progress": {"queued": 0.0, "running": 0.3}.get(state, 1.0),
            "message": state,
            "demo": True,
            "created_at": 0.0,
            "updated_at": 0.0,
            **extra,
        }

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.requests.append(f"POST {self.path}")
        self.server.bodies.append(json.loads(raw) if raw else {})
        if not self._authorised():
            return None
        if self.path in ("/v1/jobs", "/v1/fit-jobs"):
            if self.path == "/v1/jobs":
                self.server.estimates.append(self.server.bodies[-1])
            self.server.jobs += 1
            self.server.cancelled.clear()
            return self._answer(202, self._status("queued"))
        if self.path == f"/v1/jobs/{self.server.job_id()}/cancel":
            self.server.cancelled.set()
            return self._answer(200, self._status("running"))
        return self._answer(404, {"code": "NOT_FOUND", "message": self.path, "hint": ""})

    def do_GET(self) -> None:
        self.server.requests.append(f"GET {self.path}")
        if not self._authorised():
            return None
        if self.path == "/v1/health":
            return self._answer(200, dict(self.server.health))
        job = f"/v1/jobs/{self.server.job_id()}"
        if self.path == job:
            if self.server.cancelled.is_set():
                error = {"code": "CANCELLED", "message": "cancelled", "hint": ""}
                return self._answer(200, self._status("cancelled", error=error))
            return self._answer(200, self._status("done" if self.server.finish.is_set() else "running"))
        if self.path == job + "/result":
            result = result_for(self.server.estimates[-1], self.server.image_hw, self.server.job_id())
            self.server.edit_result(result)
            return self._answer(200, result)
        return self._answer(404, {"code": "NOT_FOUND", "message": self.path, "hint": ""})


@contextmanager
def running(server: FakeServer | None = None) -> Iterator[FakeServer]:
    """Serves on a thread for the duration; answers still held at the end are released."""
    server = server or FakeServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.gate.set()
        server.finish.set()
        server.shutdown()
        server.server_close()
