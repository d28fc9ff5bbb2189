"""Estimate Contact's modal timer tick stays quick while the server is slow, and Cancel / Esc stop the job.

The modal path keeps network calls on a worker thread; the tick only mirrors progress. Here every answer of a
stdlib HTTP server on 127.0.0.1 takes SERVER_DELAY_S, and each modal() call must still return in milliseconds.
Headless bpy cannot start an operator modally (INVOKE needs a window event; timers never fire), so a test
operator built from Estimate Contact's own parts (its base class with modal() and tick(), its kind and _prepare)
starts the job as invoke() does and calls modal() with timer events from inside its execute(), where it is a real
operator instance. (Subclassing the registered operator itself confuses Blender's class lookup for it.)
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

bpy = pytest.importorskip("bpy")
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
import legacy_addon

import build_addon

SERVER_DELAY_S = 0.3
JOB_ID = "c" * 32
TICK_LIMIT_S = 0.02  # what one modal() call may take; a tick that waited on the server would take SERVER_DELAY_S


class SlowServer(ThreadingHTTPServer):
    """The job API, slowly: a job runs until it is cancelled, then reports itself cancelled as the real server does."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _SlowHandler)
        self.cancelled = threading.Event()
        self.requests: list[str] = []
        self.status_answers = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _SlowHandler(BaseHTTPRequestHandler):
    server: SlowServer

    def log_message(self, *args: object) -> None:
        pass

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        time.sleep(SERVER_DELAY_S)
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.requests.append(f"POST {self.path}")
        if self.path == "/v1/jobs":
            return self._answer(202, {"job_id": JOB_ID, "state": "queued", "stage": "queued", "progress": 0.0,
                                      "message": "waiting", "demo": True})  # fmt: skip
        if self.path == f"/v1/jobs/{JOB_ID}/cancel":
            self.server.cancelled.set()
            return self._answer(200, {"job_id": JOB_ID, "state": "running", "stage": "contact", "progress": 0.3,
                                      "message": "cancelling after the current stage"})  # fmt: skip
        return self._answer(404, {"code": "NOT_FOUND", "message": self.path, "hint": ""})

    def do_GET(self) -> None:
        self.server.requests.append(f"GET {self.path}")
        if self.path != f"/v1/jobs/{JOB_ID}":
            return self._answer(404, {"code": "NOT_FOUND", "message": self.path, "hint": ""})
        self.server.status_answers += 1
        if self.server.cancelled.is_set():
            return self._answer(200, {"job_id": JOB_ID, "state": "cancelled", "stage": "contact", "progress": 0.3,
                                      "message": "cancelled",
                                      "error": {"code": "CANCELLED", "message": "cancelled", "hint": ""}})  # fmt: skip
        return self._answer(200, {"job_id": JOB_ID, "state": "running", "stage": "contact", "progress": 0.3,
                                  "message": "finding contacts"})  # fmt: skip


@pytest.fixture()
def server() -> Iterator[SlowServer]:
    httpd = SlowServer()
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


# what the probe operator saw; filled by its execute(), read by the tests
PROBE: dict[str, Any] = {}


def _probe_class(operators: Any) -> type:
    """An operator that runs the real Estimate Contact's modal() on itself, as Blender's timer would."""

    estimate = operators.IVLM_OT_estimate_contact

    class IVLMTEST_OT_modal_probe(operators._JobOperator):
        """Test only: Estimate Contact's modal ticks, driven from execute()"""

        bl_idname = "ivlm_test.modal_probe"
        bl_label = "Modal probe"
        kind = estimate.kind
        _prepare = estimate._prepare

        def execute(self, context: bpy.types.Context) -> set[str]:
            server, stop_with = PROBE["server"], PROBE["stop_with"]
            body, info = self._prepare(context)  # what invoke() does, less the timer and the modal handler
            operators._start(context, self.kind, body, info)
            job = operators._JOB["job"]
            timer = SimpleNamespace(type="TIMER")  # modal() reads only event.type
            ticks: list[tuple[float, set[str], float, str]] = []
            deadline = time.monotonic() + 30.0
            while time.monotonic() < deadline:
                started = time.perf_counter()
                result = self.modal(context, timer)
                state = context.window_manager.ivlm
                ticks.append((time.perf_counter() - started, result, state.progress, state.stage))
                if result != {"RUNNING_MODAL"}:
                    break
                if "stop" not in PROBE and server.status_answers >= 2:  # the job is running on the server
                    started = time.perf_counter()
                    if stop_with == "cancel":
                        PROBE["stop"] = bpy.ops.ivlm.cancel()
                    else:
                        PROBE["stop"] = self.modal(context, SimpleNamespace(type="ESC"))
                    PROBE["stop_s"] = time.perf_counter() - started
                time.sleep(0.01)
            PROBE.update(ticks=ticks, thread_alive=job._thread.is_alive())
            return {"FINISHED"}

    return IVLMTEST_OT_modal_probe


@pytest.fixture(scope="module")
def operators(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The add-on installed the legacy way (no user folders touched), plus the probe operator."""
    tmp = tmp_path_factory.mktemp("modal")
    extension_zip = build_addon.build(ROOT / "blender_addon", tmp / "dist")
    with legacy_addon.enabled_legacy_addon(extension_zip, tmp) as module:
        operators = sys.modules[f"{module}.blender.operators"]
        probe = _probe_class(operators)
        bpy.utils.register_class(probe)
        try:
            yield operators
        finally:
            bpy.utils.unregister_class(probe)


def _scene(tmp_path: Path) -> None:
    """A photo (an Image Empty) and a selected cube: the inputs Estimate Contact needs."""
    bpy.ops.wm.read_homefile(use_empty=True)
    image = bpy.data.images.new("photo", 64, 48)
    image.filepath_raw = str(tmp_path / "photo.png")
    image.file_format = "PNG"
    image.save()
    photo = bpy.data.objects.new("photo", None)
    photo.empty_display_type = "IMAGE"
    photo.data = image
    bpy.context.scene.collection.objects.link(photo)
    bpy.ops.mesh.primitive_cube_add(size=0.3)
    for obj in bpy.context.view_layer.objects:
        obj.select_set(obj.type == "MESH")


@pytest.mark.parametrize("stop_with", ["cancel", "esc"])
def test_modal_ticks_stay_quick_on_a_slow_server_and_stop_cancels(operators: Any, server: SlowServer,
                                                                  tmp_path: Path, stop_with: str) -> None:  # fmt: skip
    _scene(tmp_path)
    prefs = bpy.context.preferences.addons[legacy_addon.MODULE].preferences
    prefs.server_url = server.url
    PROBE.clear()
    PROBE.update(server=server, stop_with=stop_with)

    assert bpy.ops.ivlm_test.modal_probe() == {"FINISHED"}

    ticks = PROBE["ticks"]
    durations = [seconds for seconds, *_ in ticks]
    results = [result for _, result, *_ in ticks]
    assert max(durations) < TICK_LIMIT_S, f"slowest modal() call {max(durations) * 1000:.1f} ms"
    assert PROBE["stop_s"] < TICK_LIMIT_S, f"{stop_with} took {PROBE['stop_s'] * 1000:.1f} ms"
    # the job spanned many slow answers (submit, polls, cancel, the final poll) and the UI ticked through them
    assert server.requests[0] == "POST /v1/jobs" and f"POST /v1/jobs/{JOB_ID}/cancel" in server.requests
    assert len(server.requests) >= 5 and len(ticks) >= 20, (server.requests, len(ticks))
    assert PROBE["stop"] == ({"FINISHED"} if stop_with == "cancel" else {"PASS_THROUGH"})
    # progress reached the UI while the job ran; then the job ended as cancelled, and the operator with it
    assert any(progress == pytest.approx(0.3) and stage == "contact" for *_, progress, stage in ticks)
    assert all(r == {"RUNNING_MODAL"} for r in results[:-1]) and results[-1] == {"CANCELLED"}
    state = bpy.context.window_manager.ivlm
    assert not state.running and "cancelled" in state.last_error.lower()
    assert not PROBE["thread_alive"] and not operators._JOB
    assert "InteractVLM" not in bpy.data.collections  # nothing was built
    assert not bpy.ops.ivlm.cancel.poll() and bpy.ops.ivlm.estimate_contact.poll()
