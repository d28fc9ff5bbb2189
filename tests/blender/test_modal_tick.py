"""Estimate Contact's modal timer tick never waits on the network, and Cancel / Esc stop the job.

The modal path keeps network calls on a worker thread; the tick only mirrors progress. Checked by structure, not
by timing: the server holds its answers until the test releases them (while a request is held, modal() must still
come back), and the client is wrapped so that any request made on Blender's main thread (where modal() runs) fails
the test. How long a tick takes is measured in benchmarks/bench_addon_modal.py.

Headless bpy cannot start an operator modally (INVOKE needs a window event; timers never fire), so a test operator
built from Estimate Contact's own parts (its base class with modal() and tick(), its kind and _prepare) starts the
job as invoke() does and calls modal() with timer events from inside its execute(), where it is a real operator
instance. (Subclassing the registered operator itself confuses Blender's class lookup for it.)
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

bpy = pytest.importorskip("bpy")
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
import fake_server
import legacy_addon

import build_addon

WAIT_S = 60.0  # an upper bound for waiting on the worker thread; never a measure of speed

# what the probe operator saw; filled by its execute(), read by the tests
PROBE: dict[str, Any] = {}


def _wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.01)


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
            results: list[set[str]] = []
            timer = SimpleNamespace(type="TIMER")  # modal() reads only event.type
            body, info = self._prepare(context)  # what invoke() does, less the timer and the modal handler
            job = operators._start(context, self.kind, body, info)

            _wait_for(lambda: "POST /v1/jobs" in server.requests, "the submit to reach the server")
            for _ in range(3):  # the submit is held by the server: the UI ticks on
                results.append(self.modal(context, timer))
            PROBE["while_held"] = (context.window_manager.ivlm.stage, list(server.answered))

            server.gate.set()  # answers flow; the job runs on the server until cancelled
            _wait_for(lambda: job.runner.stage == "contact", "the job to report its first stage")
            results.append(self.modal(context, timer))
            state = context.window_manager.ivlm
            PROBE["mirrored"] = (state.stage, state.progress)

            if stop_with == "cancel":
                PROBE["stop"] = bpy.ops.ivlm.cancel()
            else:
                PROBE["stop"] = self.modal(context, SimpleNamespace(type="ESC"))
            _wait_for(lambda: job.finished, "the job to end")
            results.append(self.modal(context, timer))
            PROBE.update(results=results, thread_alive=job._thread.is_alive())
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


@pytest.fixture()
def main_thread_calls(operators: Any) -> Iterator[list[str]]:
    """Wraps the add-on's HTTP client: a request made on the main thread (where modal() runs) is recorded and fails
    there; requests from the worker thread go through."""
    client_class = sys.modules[operators.__name__.rsplit(".", 2)[0] + ".core.client"].ServerClient
    real = client_class.request
    calls: list[str] = []

    def guarded(self: Any, method: str, path: str, *args: Any, **kwargs: Any) -> dict:
        if threading.current_thread() is threading.main_thread():
            calls.append(f"{method} {path}")
            raise AssertionError(f"a network call ({method} {path}) on Blender's main thread")
        return real(self, method, path, *args, **kwargs)

    client_class.request = guarded
    try:
        yield calls
    finally:
        client_class.request = real


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
def test_modal_ticks_never_wait_on_the_server_and_stop_cancels(
    operators: Any, main_thread_calls: list[str], tmp_path: Path, stop_with: str
) -> None:
    _scene(tmp_path)
    with fake_server.running() as server:
        server.finish.clear()  # the job runs until it is cancelled
        server.gate.clear()  # every answer is held until the probe releases them
        prefs = bpy.context.preferences.addons[legacy_addon.MODULE].preferences
        prefs.server_url = server.url
        PROBE.clear()
        PROBE.update(server=server, stop_with=stop_with)

        assert bpy.ops.ivlm_test.modal_probe() == {"FINISHED"}

        results = PROBE["results"]
        assert main_thread_calls == []  # modal(), Cancel and Esc made no network call themselves
        # while the server held the submit, modal() came back three times and nothing had been answered
        assert results[:3] == [{"RUNNING_MODAL"}] * 3 and PROBE["while_held"] == ("submitting", [])
        # progress reached the UI while the job ran; the stop asked the server to cancel; the job ended so
        assert results[3] == {"RUNNING_MODAL"} and PROBE["mirrored"][0] == "contact"
        assert PROBE["mirrored"][1] == pytest.approx(0.3)
        assert PROBE["stop"] == ({"FINISHED"} if stop_with == "cancel" else {"PASS_THROUGH"})
        assert f"POST /v1/jobs/{server.job_id()}/cancel" in server.requests
        assert results[-1] == {"CANCELLED"}
    state = bpy.context.window_manager.ivlm
    assert not state.running and "cancelled" in state.last_error.lower()
    assert not PROBE["thread_alive"] and not operators._JOB
    assert "InteractVLM" not in bpy.data.collections  # nothing was built
    assert not bpy.ops.ivlm.cancel.poll() and bpy.ops.ivlm.estimate_contact.poll()
