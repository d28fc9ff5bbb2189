"""The add-on's bpy-free core in plain Python: codec, frames (against ivlm_core's), contact batches, and the
client and job state machine against a fake server that refuses, stalls, fails, is busy or speaks another schema."""

from __future__ import annotations

import array
import json
import math
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from blender_addon.core import codec, contact, frames, rig
from blender_addon.core.client import ServerClient
from blender_addon.core.jobs import JobRunner
from blender_addon.core.protocol import API_SCHEMA_VERSION, ServerError


def test_codec_round_trip_matches_the_server_codec() -> None:
    from server import arrays

    values = np.arange(30, dtype=np.float32).reshape(10, 3) / 7
    payload = codec.encode(array.array("f", values.ravel()), "float32", [10, 3])
    assert np.array_equal(arrays.decode(arrays.ArrayData(**payload), "x", dtype="float32", shape=(10, 3)), values)
    back, shape = codec.decode(arrays.encode(values).model_dump())
    assert shape == [10, 3] and np.array_equal(np.frombuffer(back, np.float32).reshape(10, 3), values)
    with pytest.raises(ValueError, match="do not fill"):
        codec.encode(array.array("f", [1.0]), "float32", [2])


def test_frames_agree_with_ivlm_core() -> None:
    from ivlm_core import frames as core_frames

    # world <- GL camera from ivlm_core: world <- body (Y-up to Z-up) is the same +90 degree turn about X
    assert np.allclose(np.array(frames.WORLD_FROM_GL_CAMERA), core_frames.BLENDER_WORLD_FROM_BODY)
    assert np.allclose(np.array(frames.CV_CAMERA_FROM_GL_CAMERA), core_frames.CV_CAMERA_FROM_GL_CAMERA)
    # known points: 2 m in front of the camera is +Y in the world; "down" in the photo is -Z
    assert frames.cv_points_to_world([0.0, 0.0, 2.0, 0.0, 1.0, 0.0]) == [0.0, 2.0, 0.0, 0.0, 0.0, -1.0]
    move = [[1, 0, 0, 0.5], [0, 1, 0, 0.2], [0, 0, 1, 3.0], [0, 0, 0, 1]]
    world = np.array(frames.world_from_object(move))
    assert np.allclose(world @ [0, 0, 0, 1], [0.5, 3.0, -0.2, 1])


def test_camera_settings_reproduce_the_intrinsics() -> None:
    k = [[500.0, 0, 240.0], [0, 500.0, 320.0], [0, 0, 1]]
    cam = frames.camera_settings(k, [640, 480])
    assert cam["sensor_fit"] == "VERTICAL" and cam["resolution_x"] == 480 and cam["resolution_y"] == 640
    assert cam["lens"] == pytest.approx(500 * 36 / 640) and cam["shift_x"] == 0 and cam["shift_y"] == 0
    off = frames.camera_settings([[800.0, 0, 300.0], [0, 800.0, 200.0], [0, 0, 1]], [400, 800])
    assert off["shift_x"] == pytest.approx((400 - 300) / 800) and off["shift_y"] == pytest.approx(0.0)


def test_contact_batches_and_names() -> None:
    batches = contact.weight_batches([0.0, 1.0, 0.5, 0.501, 0.2], threshold=0.1)
    assert batches[1.0] == [1] and sorted(sum(batches.values(), [])) == [1, 2, 3, 4]
    assert len({round(w, 6) for w in batches}) == len(batches)
    assert contact.group_name("sports ball!") == "contact_sports_ball"
    assert contact.group_name("   ") == "contact_object"


def test_bone_layout_known_values() -> None:
    names = ["pelvis", "spine1", "left_hip", "spine3", "neck", "head", "left_collar", "dup"]
    parents = [-1, 0, 0, 1, 3, 4, 3, 5]
    joints = [(0, 0, 1.0), (0, 0, 1.2), (0.1, 0, 0.9), (0, 0, 1.4), (0, 0, 1.6), (0, 0, 1.7), (0.1, 0, 1.5),
              (0, 0, 1.7)]  # fmt: skip
    layout = rig.bone_layout(names, parents, joints)
    assert [head for head, _ in layout] == joints  # every bone starts on its joint
    assert layout[0][1] == (0, 0, 1.2)  # pelvis has two children: it points at spine1, the chain that goes on
    assert layout[3][1] == (0, 0, 1.6)  # spine3 -> neck, not the collar
    step = 0.1 / math.sqrt(2)  # leaf: along pelvis->hip (45 degrees down), half the pelvis bone's 0.2 m
    assert layout[2][1] == pytest.approx((0.1 + step, 0, 0.9 - step))
    # head's only child sits on it (zero length), so head is treated as a leaf; bones never get shorter than 1 cm
    assert layout[5][1] == pytest.approx((0, 0, 1.75))
    assert layout[7][1] == pytest.approx((0, 0, 1.725))  # leaf of a 5 cm bone with no direction of its own: +Z
    assert all(math.dist(h, t) >= rig.MIN_BONE_LENGTH for h, t in layout)
    with pytest.raises(ValueError, match="does not come before"):
        rig.bone_layout(["a", "b"], [1, -1], [(0, 0, 0), (0, 0, 1)])


def test_skinning_batches_group_vertices_by_weight() -> None:
    batches = rig.weight_batches([0, 1, 2, 2], [0, 0, 0, 1], [1.0, 1.0, 0.25, 0.75], 2)
    assert batches == [{1.0: [0, 1], 0.25: [2]}, {0.75: [2]}]
    with pytest.raises(ValueError, match="joints 5..5"):
        rig.weight_batches([0], [5], [1.0], 2)


class _Fake:
    """What the fake server answers; tests set `mode`."""

    mode = "ok"
    polls = 0


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass

    def _send(self, status: int, body: dict | str) -> None:
        raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def do_GET(self) -> None:
        mode = _Fake.mode
        if mode == "slow":
            time.sleep(2.0)
        if mode == "500":
            return self._send(500, "<html>Internal Server Error</html>")
        if self.path == "/v1/health":
            version = "ivlm-api-0" if mode == "schema" else API_SCHEMA_VERSION
            return self._send(200, {"status": "ok", "api_schema_version": version, "demo": True})
        if self.path.endswith("/result"):
            return self._send(200, {"job_id": "a" * 32, "demo": True, "objects": []})
        _Fake.polls += 1
        state = "done" if _Fake.polls >= 3 else "running"
        if mode == "fails":
            return self._send(
                200,
                {
                    "state": "failed",
                    "stage": "contact",
                    "progress": 0.4,
                    "message": "x",
                    "error": {"code": "GPU_OOM", "message": "out of memory", "hint": "free it"},
                },
            )
        return self._send(
            200,
            {"state": state, "stage": "contact", "progress": 0.5 if state == "running" else 1.0, "message": "working"},
        )

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if _Fake.mode == "busy":
            return self._send(429, {"code": "SERVER_BUSY", "message": "16 jobs are waiting", "hint": "retry"})
        if self.path.endswith("/cancel"):
            return self._send(200, {"state": "cancelled"})
        _Fake.polls = 0
        return self._send(
            202,
            {
                "job_id": "a" * 32,
                "state": "queued",
                "stage": "queued",
                "progress": 0.0,
                "message": "waiting",
                "demo": True,
            },
        )


@pytest.fixture()
def fake_server():
    _Fake.mode, _Fake.polls = "ok", 0
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_job_runs_to_done_step_by_step(fake_server) -> None:
    runner = JobRunner(ServerClient(fake_server), {"x": 1}, poll_interval_s=0.0)
    states = []
    while not runner.finished:
        states.append(runner.step())
    assert states[0] == "poll" and states[-1] == "done" and "fetch" in states
    assert runner.result["job_id"] == "a" * 32 and runner.demo and runner.progress == 1.0


@pytest.mark.parametrize(
    ("mode", "code"),
    [("500", "BAD_RESPONSE"), ("busy", "SERVER_BUSY"), ("slow", "TIMEOUT"), ("fails", "GPU_OOM")],
)
def test_failures_end_the_job_with_a_clear_error(fake_server, mode: str, code: str) -> None:
    _Fake.mode = mode
    client = ServerClient(fake_server, read_timeout=0.3)
    runner = JobRunner(client, {"x": 1}, poll_interval_s=0.0, busy_give_up_s=0.0)
    if mode in ("slow", "500"):
        runner.state, runner.job_id = "poll", "a" * 32
    started = time.monotonic()
    assert runner.run_blocking(timeout_s=10) == "failed"
    assert time.monotonic() - started < 3  # never hangs: each call is bounded by its timeout
    assert runner.error.code == code and runner.message


def test_busy_server_is_retried_until_it_frees_up(fake_server) -> None:
    _Fake.mode = "busy"
    now = [0.0]
    runner = JobRunner(
        ServerClient(fake_server), {"x": 1}, poll_interval_s=0.0, busy_give_up_s=10, clock=lambda: now[0]
    )
    assert runner.step() == "submit" and "busy" in runner.message
    _Fake.mode = "ok"
    assert runner.step() == "submit"  # not yet: it waits before retrying
    now[0] += 2.5
    assert runner.step() == "poll"


def test_refused_connection_and_schema_mismatch(fake_server) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free_port = probe.getsockname()[1]
    with pytest.raises(ServerError) as info:
        ServerClient(f"http://127.0.0.1:{free_port}").health()
    assert info.value.code == "CONNECTION_REFUSED" and "Start the server" in info.value.user_text()
    _Fake.mode = "schema"
    with pytest.raises(ServerError) as info:
        ServerClient(fake_server).health()
    assert info.value.code == "SCHEMA_MISMATCH"
    with pytest.raises(ServerError, match="not this machine"):
        ServerClient("http://example.com:8765")


def test_cancel_before_and_after_submit(fake_server) -> None:
    runner = JobRunner(ServerClient(fake_server), {"x": 1})
    runner.cancel()
    assert runner.step() == "cancelled"
    runner = JobRunner(ServerClient(fake_server), {"x": 1})
    runner.step()
    runner.cancel()
    assert runner.message == "cancelling"


def test_every_server_error_code_has_a_user_message() -> None:
    """The add-on cannot import the server (stdlib only), so its table of messages mirrors server.errors."""
    from blender_addon.core.protocol import USER_MESSAGES
    from server.errors import HTTP_STATUS

    unexplained = {"BAD_HOST", "JOB_NOT_FINISHED", "JOB_FINISHED", "UNSUPPORTED_MEDIA_TYPE"}  # never reach a user
    assert set(HTTP_STATUS) - unexplained <= set(USER_MESSAGES), set(HTTP_STATUS) - unexplained - set(USER_MESSAGES)
