"""The add-on's bpy-free core in plain Python: codec, frames (against ivlm_core's), contact batches, messages, and
the client, job state machine and health checker against a fake server that refuses, stalls, fails, is busy or
speaks another schema. No assertion here depends on wall time: a stalled server holds its answer until the test
ends, and deadlines run on a fake clock (the timings are in benchmarks/bench_addon_modal.py)."""

from __future__ import annotations

import array
import json
import math
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import numpy as np
import pytest

from blender_addon.core import codec, contact, frames, messages, rig
from blender_addon.core.client import ServerClient
from blender_addon.core.health import HealthChecker, summarize
from blender_addon.core.jobs import BackgroundJob, JobRunner
from blender_addon.core.protocol import API_SCHEMA_VERSION, InputError, ServerError


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
    points = [0.3, -1.2, 2.5, -0.7, 0.4, 1.9]  # and back: what Refit sends of the body as shown
    assert frames.world_points_to_cv(frames.cv_points_to_world(points)) == points
    move = [[1, 0, 0, 0.5], [0, 1, 0, 0.2], [0, 0, 1, 3.0], [0, 0, 0, 1]]
    world = np.array(frames.world_from_object(move))
    assert np.allclose(world @ [0, 0, 0, 1], [0.5, 3.0, -0.2, 1])


def test_camera_from_object_inverts_world_from_object_and_takes_the_scale_out() -> None:
    angle = 0.7
    pose = np.eye(4)
    pose[:3, :3] = [[np.cos(angle), 0.0, np.sin(angle)], [0.0, 1.0, 0.0], [-np.sin(angle), 0.0, np.cos(angle)]]
    pose[:3, 3] = (0.2, -0.1, 2.5)
    world = np.array(frames.world_from_object(pose.tolist()))
    scaled = world @ np.diag([0.5, 2.0, 3.0, 1.0])  # a non-uniform object scale, as Blender keeps it
    assert np.allclose(frames.camera_from_object(scaled.tolist()), pose, atol=1e-12)
    assert frames.camera_from_object((world @ np.diag([1.0, 1.0, -1.0, 1.0])).tolist()) is None  # mirrored
    assert frames.camera_from_object((world @ np.diag([1.0, 0.0, 1.0, 1.0])).tolist()) is None  # flattened


def test_camera_settings_reproduce_the_intrinsics() -> None:
    k = [[500.0, 0, 240.0], [0, 500.0, 320.0], [0, 0, 1]]
    cam = frames.camera_settings(k, [640, 480])
    assert cam["sensor_fit"] == "VERTICAL" and cam["resolution_x"] == 480 and cam["resolution_y"] == 640
    assert cam["lens"] == pytest.approx(500 * 36 / 640) and cam["shift_x"] == 0 and cam["shift_y"] == 0
    off = frames.camera_settings([[800.0, 0, 300.0], [0, 800.0, 200.0], [0, 0, 1]], [400, 800])
    assert off["shift_x"] == pytest.approx((400 - 300) / 800) and off["shift_y"] == pytest.approx(0.0)


def test_contact_batches_and_names() -> None:
    batches = contact.weight_batches([0.0, 1.0, 0.5, 0.501, 0.2], threshold=0.1)
    assert batches[1.0] == [1] and sorted(i for indices in batches.values() for i in indices) == [1, 2, 3, 4]
    assert len({round(w, 6) for w in batches}) == len(batches)
    assert contact.group_name("sports ball!") == "contact_sports_ball"
    assert contact.group_name("   ") == "contact_object"


def test_bone_layout_known_values() -> None:
    names = ["pelvis", "spine1", "left_hip", "spine3", "neck", "head", "left_collar", "dup"]
    parents = [-1, 0, 0, 1, 3, 4, 3, 5]
    joints = [
        (0, 0, 1.0),
        (0, 0, 1.2),
        (0.1, 0, 0.9),
        (0, 0, 1.4),
        (0, 0, 1.6),
        (0, 0, 1.7),
        (0.1, 0, 1.5),
        (0, 0, 1.7),
    ]
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
    """What the fake server answers; tests set `mode`. In "stall" mode a GET waits for `release` (set at the end of
    every test), so only the client's own read timeout can end the call; `requests` lists what was asked."""

    mode = "ok"
    polls = 0
    release = threading.Event()
    requests: ClassVar[list[str]] = []
    health: ClassVar[dict] = {}


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
        _Fake.requests.append(f"GET {self.path}")
        if mode == "stall":
            _Fake.release.wait()
        if mode == "500":
            return self._send(500, "<html>Internal Server Error</html>")
        if self.path == "/v1/health":
            version = "ivlm-api-0" if mode == "schema" else API_SCHEMA_VERSION
            return self._send(200, {"status": "ok", "api_schema_version": version, "demo": True, **_Fake.health})
        if self.path.endswith("/result"):
            return self._send(200, {"job_id": "a" * 32, "demo": True, "objects": []})
        _Fake.polls += 1
        state = "done" if _Fake.polls >= 3 and mode != "endless" else "running"
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
        _Fake.requests.append(f"POST {self.path}")
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
    _Fake.mode, _Fake.polls, _Fake.requests, _Fake.health = "ok", 0, [], {}
    _Fake.release.clear()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    _Fake.release.set()
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
    [("500", "BAD_RESPONSE"), ("busy", "SERVER_BUSY"), ("stall", "TIMEOUT"), ("fails", "GPU_OOM")],
)
def test_failures_end_the_job_with_a_clear_error(fake_server, mode: str, code: str) -> None:
    """A stalled server holds its answer until the test ends, so a TIMEOUT can only come from the client's read
    timeout: each call is bounded by it (how long that takes is measured in the benchmark, not asserted)."""
    _Fake.mode = mode
    client = ServerClient(fake_server, read_timeout=0.3)
    runner = JobRunner(client, {"x": 1}, poll_interval_s=0.0, busy_give_up_s=0.0)
    if mode in ("stall", "500"):
        runner.state, runner.job_id = "poll", "a" * 32
    assert runner.run_blocking(timeout_s=600) == "failed"
    assert runner.error.code == code and runner.message
    assert not _Fake.release.is_set()  # the stalled answer never came: the call ended on the client's side


def test_a_job_past_its_deadline_is_cancelled_and_fails_on_a_fake_clock(fake_server) -> None:
    """run_blocking's deadline runs on the runner's clock: submit at 0 s, polls at 10 and 20 s, cancelled at 30 s."""
    _Fake.mode = "endless"
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += 10.0

    runner = JobRunner(ServerClient(fake_server), {"x": 1}, poll_interval_s=0.0, clock=lambda: now[0])
    assert runner.run_blocking(timeout_s=25.0, sleep=sleep) == "failed"
    assert runner.error.code == "TIMEOUT" and "25 s" in runner.message
    polls = [r for r in _Fake.requests if r == f"GET /v1/jobs/{'a' * 32}"]
    assert len(polls) == 2 and _Fake.requests[-1] == f"POST /v1/jobs/{'a' * 32}/cancel"


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
    _assert_whole_sentences(info.value.user_text())
    _Fake.mode = "schema"
    with pytest.raises(ServerError) as info:
        ServerClient(fake_server).health()
    assert info.value.code == "SCHEMA_MISMATCH"
    with pytest.raises(InputError, match="not this machine") as refused:
        ServerClient("http://example.com:8765")
    assert not refused.value.user_text().startswith("The server could not")  # the add-on's own check, no server
    with pytest.raises(InputError, match="not an address"):
        ServerClient("ftp://127.0.0.1")


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


def _assert_whole_sentences(text: str) -> None:
    """Every sentence starts with a capital (or a digit or quote) and the text ends with a full stop."""
    sentences = [part for part in text.split(". ") if part]
    assert text.endswith("."), text
    assert all(part[0].isupper() or part[0].isdigit() or part[0] in "'\"" for part in sentences), text


def test_messages_are_whole_sentences() -> None:
    assert messages.sentence("nothing listens on 127.0.0.1:8765") == "Nothing listens on 127.0.0.1:8765."
    assert messages.sentence("sports_ball has no vertices") == "sports_ball has no vertices."  # a name keeps case
    assert messages.sentence("Done!") == "Done!" and messages.sentence("  ") == ""
    glued = ServerError("CONNECTION_REFUSED", "nothing listens on 127.0.0.1:9", "start the server").user_text()
    assert glued == (
        "The InteractVLM server is not running at this address. Nothing listens on 127.0.0.1:9. Start the server."
    )
    own = InputError("Two selected objects have the same label (cup)", "Give each object its own Label.")
    assert own.user_text() == "Two selected objects have the same label (cup). Give each object its own Label."
    _assert_whole_sentences(ServerError("GPU_OOM", "out of memory", "free it").user_text())


def test_wrap_keeps_every_word_within_the_width() -> None:
    text = ServerError(
        "CONNECTION_REFUSED",
        "nothing listens on 127.0.0.1:8765",
        "Start the server (./run.sh) or check the URL in the add-on preferences.",
    ).user_text()
    lines = messages.wrap(text, 40)
    assert len(lines) > 3 and all(len(line) <= 40 for line in lines)
    assert " ".join(lines) == text  # nothing lost, nothing cut
    assert messages.wrap("a\n\nb", 40) == ["a", "", "b"] and messages.wrap("", 40) == []
    path = "/a/very/long/path/without/any/space/that/is/longer/than/the/line.png"
    assert all(len(line) <= 20 for line in messages.wrap(path, 20)) and "".join(messages.wrap(path, 20)) == path
    assert messages.chars_for_width(300) < messages.chars_for_width(600) and messages.chars_for_width(10) == 20
    assert messages.chars_for_width(600, ui_scale=2.0) < messages.chars_for_width(600)


def test_photo_stem_strips_windows_and_posix_folders() -> None:
    assert contact.photo_stem("C:\\Users\\me\\Photos\\IMG_0001.JPG") == "IMG_0001"
    assert contact.photo_stem("/home/me/shots.2024/chair.png") == "chair"
    assert contact.photo_stem("//photos\\chair.jpeg") == "chair"  # Blender-relative, made on Windows
    assert contact.photo_stem("\\\\server\\share\\cup.png") == "cup"
    assert contact.photo_stem("photo") == "photo" and contact.photo_stem("") == "photo"


def test_health_summary_reads_as_sentences() -> None:
    health = {
        "status": "ok",
        "server_version": "0.1.0",
        "device": "cpu",
        "demo": True,
        "demo_reason": "started with --demo",
        "missing_model_files": [{"name": f"file {i}"} for i in range(5)],
    }
    report = summarize(health, checked_at=0.0)
    assert report.reachable and report.demo
    assert report.lines[0] == "Server 0.1.0 on cpu is ok."
    assert report.lines[1] == "DEMO mode. Started with --demo. Results are not meaningful."
    assert report.lines[2:5] == (
        "Missing model file: file 0.",
        "Missing model file: file 1.",
        "Missing model file: file 2.",
    )
    assert report.lines[5] == "2 more model files are missing." and report.lines[6].startswith("Checked at ")


def test_health_summary_says_when_no_contact_model_is_loaded() -> None:
    meaning = "contacts are not predicted: paint them on the body and the object (or mark them) and press Refit"
    health = {
        "status": "ok",
        "server_version": "0.1.0",
        "device": "cpu",
        "demo": False,
        "demo_reason": "",
        "parts": [
            {"part": "body_model", "title": "SMPL-X", "source": "yours", "meaning": ""},
            {"part": "human_contact", "title": "h", "source": "absent", "meaning": meaning},
            {"part": "object_contact", "title": "o", "source": "absent", "meaning": meaning},
            {"part": "canonical_views", "title": "v", "source": "absent", "meaning": "not needed"},
        ],
        "missing_model_files": [],
    }
    report = summarize(health, checked_at=0.0)
    assert not report.demo
    assert report.lines[1] == f"No contact model is loaded. {meaning[0].upper()}{meaning[1:]}."
    assert report.lines[2].startswith("Checked at ")


def test_health_check_never_waits_and_refreshes_on_a_fake_clock(fake_server) -> None:
    _Fake.mode = "stall"
    now = [0.0]
    checker = HealthChecker(refresh_s=10.0, clock=lambda: now[0])
    assert checker.start(ServerClient(fake_server, read_timeout=60.0))
    while "GET /v1/health" not in _Fake.requests:  # the request reached the server, which holds it
        time.sleep(0.01)
    assert checker.busy and checker.latest is None  # start() came back while the server had not answered
    assert not checker.start(ServerClient(fake_server))  # one check at a time
    _Fake.release.set()
    checker.join(timeout=30)
    assert checker.latest is not None and checker.latest.reachable and checker.generation == 1
    assert not checker.due()
    now[0] += 9.9
    assert not checker.due()
    now[0] += 0.2
    assert checker.due()  # the answer is 10 s old: time to ask again
    _Fake.mode, _Fake.health = "ok", {"demo": False}  # the server came back with its models
    assert checker.start(ServerClient(fake_server))
    checker.join(timeout=30)
    assert checker.generation == 2 and not checker.latest.demo


def test_an_abandoned_job_is_cancelled_on_the_server(fake_server) -> None:
    """When Blender quits or a file loads, the worker thread dies with it: abandon() sends the cancel itself."""
    _Fake.mode = "endless"
    job = BackgroundJob(JobRunner(ServerClient(fake_server), {"x": 1}, poll_interval_s=60.0))
    while job.runner.job_id is None:
        time.sleep(0.01)
    job.abandon()
    assert f"POST /v1/jobs/{'a' * 32}/cancel" in _Fake.requests
