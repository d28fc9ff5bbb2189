"""The server against a real uvicorn process on 127.0.0.1 (random port), on DEMO assets."""

from __future__ import annotations

import base64
import http.client
import json
import os
import signal
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest

from server.client import ApiError, array_payload, array_value, estimate_request, fit_request
from server.schemas import API_SCHEMA_VERSION, FINISHED_STATES

pytestmark = pytest.mark.slow
NO_OPTIONAL_STAGES = {"stages": []}  # perceive + contact only: the quickest real job
HOLD_LABEL = "simulate-long-stage"


def _submit(client, scene, label=None, **options):
    return client.submit(estimate_request(scene.png, [(label or scene.label, scene.vertices, scene.faces)], **options))


def _error(call) -> ApiError:
    with pytest.raises(ApiError) as info:
        call()
    return info.value


def _chunked_post(url: str, path: str, token: str, chunks: int, chunk_bytes: int) -> tuple[int, dict]:
    """POSTs a body with no Content-Length (chunked), so the size is only known while it streams in."""
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    connection.request(
        "POST", path, body=(b" " * chunk_bytes for _ in range(chunks)), headers=headers, encode_chunked=True
    )
    answer = connection.getresponse()
    try:
        return answer.status, json.loads(answer.read())
    finally:
        connection.close()


def _wait_state(client, job_id: str, states: tuple[str, ...], timeout: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = client.status(job_id)
        if status["state"] in states:
            return status
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} never reached {states}; last {status}")


@pytest.fixture(scope="module")
def finished_job(server, demo_scene):
    """One full estimate job, watched while it runs: (job id, result, statuses seen, health answers while running)."""
    client = server.client()
    job = _submit(client, demo_scene)
    seen, healths = [job], []
    while seen[-1]["state"] not in FINISHED_STATES:
        seen.append(client.status(job["job_id"]))
        if seen[-1]["state"] == "running":
            healths.append(client.health())
        time.sleep(0.05)
    assert seen[-1]["state"] == "done", seen[-1]
    return job["job_id"], client.result(job["job_id"]), seen, healths


def test_health_reports_versions_demo_mode_and_missing_files(server) -> None:
    health = server.client().health()
    assert health["status"] == "ok"
    assert health["api_schema_version"] == API_SCHEMA_VERSION
    assert health["demo"] is True and "missing" in health["demo_reason"]
    assert health["device"] == "cpu" and health["gpu"] is None
    names = " ".join(m["name"] for m in health["missing_model_files"])
    assert "SMPL-X" in names and "interactvlm-3d-hcontact-damon-fix" in names
    assert all(m["hint"] and m["source"] for m in health["missing_model_files"])
    assert health["models_loaded"] and all(name.startswith("DEMO") for name in health["models_loaded"])
    assert "DEMO MODE" in "".join(server.log)  # said at start too


def test_estimate_job_end_to_end(server, demo_scene, finished_job) -> None:
    job_id, result, _, _ = finished_job
    assert result["job_id"] == job_id and result["kind"] == "estimate"
    assert result["demo"] is True and any(note.startswith("DEMO") for note in result["notes"])
    models = result["models"]
    assert all(models[part].startswith("DEMO") for part in ("human_contact", "object_contact", "body_model"))
    assert {"configuration", "language_model_precision", "dtype"} <= set(models)  # the memory plan's choice
    assert result["thresholds"] == {"body_contact": 0.5, "object_contact": 0.5}
    body = result["body"]
    assert body["source"] == "demo" and any("standing SMPL-X body" in note for note in result["notes"])
    assert array_value(body["vertices"]).shape == (10475, 3)
    assert array_value(body["faces"]).shape == (20908, 3)
    assert np.isfinite(array_value(body["vertices"])).all()
    camera = result["camera"]
    assert camera["image_size_hw"] == [640, 480]
    assert np.allclose(np.array(camera["intrinsics"])[2], [0, 0, 1])
    (obj,) = result["objects"]
    assert obj["label"] == demo_scene.label
    # The DEMO models predict contact above the 0.5 thresholds on this scene (max ~0.60 on the ball, ~0.57 on
    # the body), a margin no CPU's rounding can cross, so the ball is placed.
    assert obj["status"] == "placed" and obj["reason"], obj["reason"]
    assert array_value(obj["object_contact"]).shape == (len(demo_scene.vertices),)
    assert array_value(obj["body_contact"]).shape == (10475,)
    transform = np.array(obj["camera_from_object"])
    assert transform.shape == (4, 4) and np.allclose(transform[3], [0, 0, 0, 1])
    assert np.allclose(transform[:3, :3] @ transform[:3, :3].T, np.eye(3), atol=1e-4)
    assert camera["exif_orientation"] == 1 and result["upright_photo"] is None  # a PNG is analysed as stored
    assert set(result["timings_s"]) == {"perceive", "body", "contact", "fit"}
    assert (server.data_dir / "jobs" / job_id / "result.json").is_file()  # on disk before it was reported done


def test_progress_is_reported_stage_by_stage(finished_job) -> None:
    _, _, seen, _ = finished_job
    order = ["queued", "starting", "perceive", "body", "contact", "fit", "done"]
    stages = [s["stage"] for s in seen]
    assert [order.index(s) for s in stages] == sorted(order.index(s) for s in stages)
    progress = [s["progress"] for s in seen]
    assert progress == sorted(progress) and progress[-1] == 1.0
    assert {"contact", "done"} <= set(stages)


def test_health_answers_while_a_job_runs(finished_job) -> None:
    job_id, _, _, healths = finished_job
    assert healths, "the job finished before health could be asked"
    assert all(h["status"] == "ok" for h in healths)
    assert any(h["queue"]["running"] == job_id for h in healths)


def _painted(vertices: np.ndarray, body: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Contacts a user painted: the object's top cap and the body's feet (y points down in the camera frame)."""
    object_contact = (vertices[:, 1] > np.quantile(vertices[:, 1], 0.8)).astype(np.float32)
    return object_contact, (body[:, 1] > np.quantile(body[:, 1], 0.97)).astype(np.float32)


def test_fit_only_job_places_from_edited_contacts(server, demo_scene, finished_job) -> None:
    job_id, result, _, _ = finished_job
    client = server.client()
    vertices, body = demo_scene.vertices, array_value(result["body"]["vertices"])
    object_contact, body_contact = _painted(vertices, body)
    fit = client.submit_fit(fit_request(job_id, {demo_scene.label: (object_contact, body_contact)}))
    assert fit["kind"] == "fit"
    refit = client.wait(fit["job_id"])
    assert refit["kind"] == "fit" and refit["source_job_id"] == job_id and refit["demo"] is True
    assert set(refit["timings_s"]) == {"fit"}  # no perception, no language model
    (obj,) = refit["objects"]
    assert obj["status"] == "placed", obj["reason"]
    assert np.array_equal(array_value(obj["object_contact"]), object_contact)
    placed = np.array(obj["camera_from_object"])
    moved = vertices @ placed[:3, :3].T + placed[:3, 3]
    touching = moved[object_contact > 0.5]
    feet = body[body_contact > 0.5]
    gap = np.linalg.norm(touching[:, None] - feet[None], axis=2).min()
    assert gap < 0.05, f"the painted cap ends {gap:.3f} m from the painted feet"


def test_fit_only_job_starts_from_where_the_client_left_the_object(server, demo_scene, finished_job) -> None:
    """An artist who turned or moved the object after a Refit sends its pose with the next one; the search starts
    from it (from the last placement the server made otherwise), and the result says so."""
    job_id, result, _, _ = finished_job
    client = server.client()
    vertices, body = demo_scene.vertices, array_value(result["body"]["vertices"])
    object_contact, body_contact = _painted(vertices, body)
    contacts = {demo_scene.label: (object_contact, body_contact)}
    started_there = f"the search started from where '{demo_scene.label}' was in your scene"

    first = client.wait(client.submit_fit(fit_request(job_id, contacts))["job_id"])
    (obj,) = first["objects"]
    assert obj["status"] == "placed" and started_there not in obj["notes"], obj
    quarter_turn = np.eye(4)
    quarter_turn[:3, :3] = [[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]]  # about the camera's vertical
    moved = np.array(obj["camera_from_object"]) @ quarter_turn
    moved[:3, 3] += (0.1, 0.0, 0.05)
    second = client.wait(client.submit_fit(fit_request(job_id, contacts, {demo_scene.label: moved}))["job_id"])
    (obj,) = second["objects"]
    assert obj["status"] == "placed" and started_there in obj["notes"], obj


def test_fit_only_job_places_against_the_body_the_client_sent(server, demo_scene, finished_job) -> None:
    """An artist who moved the rigged body (or posed it) refits against the body as it is in the scene: the objects
    are placed against the body sent in options.body, not the estimate's, and the result says so."""
    job_id, result, _, _ = finished_job
    client = server.client()
    vertices, body = demo_scene.vertices, array_value(result["body"]["vertices"])
    object_contact, body_contact = _painted(vertices, body)
    contacts = {demo_scene.label: (object_contact, body_contact)}
    first = client.wait(client.submit_fit(fit_request(job_id, contacts))["job_id"])
    (obj,) = first["objects"]
    shift = np.array([1.0, 0.0, 0.0])  # the body moved a metre to the side; the object with it
    start = np.array(obj["camera_from_object"])
    start[:3, 3] += shift
    sent = (body + shift).astype(np.float32)
    request = fit_request(job_id, contacts, {demo_scene.label: start}, body={"vertices": array_payload(sent)})
    refit = client.wait(client.submit_fit(request)["job_id"])
    assert any("the body you sent" in note for note in refit["notes"]), refit["notes"]
    (obj,) = refit["objects"]
    assert obj["status"] == "placed", obj["reason"]
    placed = np.array(obj["camera_from_object"])
    touching = (vertices @ placed[:3, :3].T + placed[:3, 3])[object_contact > 0.5]
    for feet, near in ((sent[body_contact > 0.5], True), (body[body_contact > 0.5], False)):
        gap = np.linalg.norm(touching[:, None] - feet[None], axis=2).min()
        assert (gap < 0.05) if near else (gap > 0.5), f"the painted cap ends {gap:.3f} m from the feet (sent: {near})"


def test_fit_only_job_bad_inputs(server, demo_scene, finished_job) -> None:
    job_id, _, _, _ = finished_job
    client = server.client()
    n = len(demo_scene.vertices)
    ok_object, ok_body = np.zeros(n, np.float32), np.zeros(10475, np.float32)
    cases = [
        (fit_request(job_id, {"table": (ok_object, ok_body)}), 400, "BAD_INPUT", "not an object of job"),
        (fit_request(job_id, {demo_scene.label: (ok_object[:-1], ok_body)}), 400, "BAD_INPUT", "shape"),
        (fit_request(job_id, {demo_scene.label: (ok_object + 2, ok_body)}), 400, "BAD_INPUT", "outside 0-1"),
        (fit_request("0" * 32, {demo_scene.label: (ok_object, ok_body)}), 404, "NOT_FOUND", "no job"),
    ]
    scaled, mirrored, projective = np.diag([2.0, 2.0, 2.0, 1.0]), np.diag([1.0, 1.0, -1.0, 1.0]), np.eye(4)
    projective[3, 2] = 1.0
    for pose, words in ((scaled, "scales, shears or mirrors"), (mirrored, "mirrors"), (projective, "last row")):
        request = fit_request(job_id, {demo_scene.label: (ok_object, ok_body)}, {demo_scene.label: pose})
        cases.append((request, 400, "BAD_INPUT", words))
    cut = fit_request(job_id, {demo_scene.label: (ok_object, ok_body)}, {demo_scene.label: np.eye(4)[:3]})
    cases.append((cut, 400, "BAD_INPUT", "4x4"))
    short = array_payload(np.zeros((100, 3), np.float32))
    cases.append(
        (
            fit_request(job_id, {demo_scene.label: (ok_object, ok_body)}, body={"vertices": short}),
            400,
            "BAD_INPUT",
            "options.body.vertices has shape",
        )
    )
    for body, status, code, words in cases:
        error = _error(lambda b=body: client.submit_fit(b))
        assert (error.status, error.code) == (status, code) and words in error.body["message"], error.body
        assert error.body["hint"]


def test_cancel_queued_and_running_jobs(server, demo_scene) -> None:
    client = server.client()
    running = _submit(client, demo_scene)
    _wait_state(client, running["job_id"], ("running",))
    queued = _submit(client, demo_scene)
    assert client.status(queued["job_id"])["state"] == "queued"
    assert client.cancel(queued["job_id"])["state"] == "cancelled"  # at once: it never started
    client.cancel(running["job_id"])
    status = _wait_state(client, running["job_id"], FINISHED_STATES)
    assert status["state"] == "cancelled" and status["error"]["code"] == "CANCELLED"
    error = _error(lambda: client.result(running["job_id"]))
    assert (error.status, error.code) == (409, "CANCELLED")
    error = _error(lambda: client.cancel(running["job_id"]))
    assert (error.status, error.code) == (409, "JOB_FINISHED")
    assert client.health()["queue"]["length"] == 0


def test_out_of_memory_fails_the_job_and_the_server_keeps_serving(server, demo_scene, oom_label) -> None:
    client = server.client()
    job = _submit(client, demo_scene, label=oom_label, **NO_OPTIONAL_STAGES)
    status = client.wait_finished(job["job_id"])
    assert status["state"] == "failed" and status["error"]["code"] == "GPU_OOM"
    assert "keeps serving" in status["error"]["hint"]
    error = _error(lambda: client.result(job["job_id"]))
    assert error.code == "GPU_OOM"
    after = _submit(client, demo_scene, **NO_OPTIONAL_STAGES)
    assert client.wait_finished(after["job_id"])["state"] == "done"


def test_a_crashed_worker_fails_only_its_job_and_is_restarted(server, demo_scene, crash_label) -> None:
    """Model work runs in a child process: if it dies (a segfault, the kernel's OOM killer), the API keeps
    answering, the job it was running fails with WORKER_CRASHED, and a new worker takes the next job."""
    client = server.client()
    job = _submit(client, demo_scene, label=crash_label, **NO_OPTIONAL_STAGES)
    queued_behind = _submit(client, demo_scene, **NO_OPTIONAL_STAGES)
    status = client.wait_finished(job["job_id"])
    assert status["state"] == "failed" and status["error"]["code"] == "WORKER_CRASHED", status
    assert "new worker" in status["error"]["hint"]
    assert client.health()["status"] in ("loading", "ok")  # the API never went away
    assert client.wait_finished(queued_behind["job_id"])["state"] == "done"  # run by the new worker
    assert client.health()["status"] == "ok"


def _png_header(width: int, height: int) -> bytes:
    """A PNG that claims width x height pixels (valid signature, IHDR and CRC; no pixel data)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b"")
    )


def _bad_requests(scene) -> list:
    good = estimate_request(scene.png, [(scene.label, scene.vertices, scene.faces)])
    nan_vertices = scene.vertices.copy()
    nan_vertices[7] = np.nan
    many_faces = np.zeros((3_000_000, 3), np.int32)
    out_of_range = scene.faces.copy()
    out_of_range[0, 0] = len(scene.vertices) + 5
    return [
        (
            "truncated PNG",
            {**good, "image": base64.b64encode(scene.png[: len(scene.png) // 2]).decode()},
            400,
            "BAD_INPUT",
        ),
        (
            "PNG claiming 50000x50000",
            {**good, "image": base64.b64encode(_png_header(50000, 50000)).decode()},
            413,
            "PAYLOAD_TOO_LARGE",
        ),
        ("not an image", {**good, "image": base64.b64encode(b"hello").decode()}, 400, "BAD_INPUT"),
        ("wrong schema version", {**good, "schema_version": "ivlm-api-0"}, 400, "SCHEMA_MISMATCH"),
        ("NaN vertices", estimate_request(scene.png, [(scene.label, nan_vertices, scene.faces)]), 400, "BAD_INPUT"),
        (
            "3 million faces",
            estimate_request(scene.png, [(scene.label, scene.vertices, many_faces)]),
            413,
            "PAYLOAD_TOO_LARGE",
        ),
        (
            "face index out of range",
            estimate_request(scene.png, [(scene.label, scene.vertices, out_of_range)]),
            400,
            "BAD_INPUT",
        ),
        ("missing objects", {k: v for k, v in good.items() if k != "objects"}, 422, "BAD_INPUT"),
        (
            "vertices not base64",
            {**good, "objects": [{**good["objects"][0], "vertices": {**array_payload(scene.vertices), "data": "***"}}]},
            400,
            "BAD_INPUT",
        ),
        ("repeated labels", {**good, "objects": good["objects"] * 2}, 400, "BAD_INPUT"),
    ]


def test_bad_inputs_give_their_error_codes(server, demo_scene) -> None:
    client = server.client()
    for name, body, status, code in _bad_requests(demo_scene):
        error = _error(lambda b=body: client.submit(b))
        assert (error.status, error.code) == (status, code), (name, error.body)
        assert error.body["message"] and error.body["hint"], name
    assert client.health()["status"] == "ok" and client.health()["queue"]["length"] == 0


def test_bad_requests_outside_the_schema(server) -> None:
    client = server.client()
    cases = [
        (lambda: client.request("GET", "/v1/jobs/not-a-job-id"), 422, "BAD_INPUT"),
        (lambda: client.request("GET", "/v1/jobs/../../etc/passwd"), 404, "NOT_FOUND"),
        (lambda: client.status("f" * 32), 404, "NOT_FOUND"),
        (lambda: client.request("GET", "/v1/nothing"), 404, "NOT_FOUND"),
        (lambda: client.request("POST", "/v1/jobs", b"{not json"), 422, "BAD_INPUT"),
        (lambda: client.request("POST", "/v1/jobs", b"{}", {"Content-Type": "text/plain"}), 422, "BAD_INPUT"),
        (lambda: client.request("GET", "/v1/health", None, {"Host": "evil.example"}), 400, "BAD_HOST"),
    ]
    for call, status, code in cases:
        error = _error(call)
        assert (error.status, error.code) == (status, code), error.body
    assert client.health()["status"] == "ok"


def test_token_queue_and_size_limits(start_server, demo_scene) -> None:
    token = "a-long-random-test-token-0123456789"
    server = start_server("--queue-capacity", "1", "--max-request-mb", "1", token=token)
    anonymous, wrong, client = server.client(), server.client("x" * 40), server.client(token)
    for other in (anonymous, wrong):
        error = _error(other.health)
        assert (error.status, error.code) == (401, "UNAUTHORIZED")
    assert client.health()["status"] == "ok"

    # Declared sizes well past the socket buffers: the client must still read the answer, not a broken pipe.
    for megabytes in (2, 24):
        body = b"{" + b" " * (megabytes * 1024 * 1024) + b"}"
        error = _error(lambda body=body: client.request("POST", "/v1/jobs", body))
        assert (error.status, error.code) == (413, "PAYLOAD_TOO_LARGE")
    status, answer = _chunked_post(server.url, "/v1/jobs", token, chunks=24, chunk_bytes=1024 * 1024)
    assert (status, answer["code"]) == (413, "PAYLOAD_TOO_LARGE")
    assert "limit is 1,048,576" in answer["message"]

    running = _submit(client, demo_scene)  # all stages: it runs while the queue fills
    _wait_state(client, running["job_id"], ("running",))
    waiting = _submit(client, demo_scene, **NO_OPTIONAL_STAGES)  # the one queue slot
    for _ in range(2):
        error = _error(lambda: _submit(client, demo_scene, **NO_OPTIONAL_STAGES))
        assert (error.status, error.code) == (429, "SERVER_BUSY")
        assert error.headers.get("retry-after") or error.headers.get("Retry-After")
    assert client.health()["status"] == "ok"
    assert client.cancel(waiting["job_id"])["state"] == "cancelled"
    client.cancel(running["job_id"])


def _wait_stage(client, job_id: str, stage: str, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while client.status(job_id)["stage"] != stage:
        assert time.monotonic() < deadline, f"job {job_id} never reached its {stage} stage"
        time.sleep(0.05)


def _worker_pids(server_pid: int) -> list[int]:
    """The server's model worker process(es) (Linux /proc; the multiprocessing spawn children)."""
    children = []
    for task in Path(f"/proc/{server_pid}/task").iterdir():
        children += [int(pid) for pid in (task / "children").read_text().split()]
    return [pid for pid in children if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()]


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state == "Z"  # exited, waiting to be reaped by whoever adopted it


def _plant_damaged_jobs(jobs: Path, model_job: str) -> dict[str, str]:
    """Job folders as a crash or a careless hand could leave them (copied from a good job): garbage or an
    unknown state in status.json, or no status.json at all."""
    planted = {"1" * 32: "garbage", "2" * 32: "unknown state", "3" * 32: "no status.json"}
    status = json.loads((jobs / model_job / "status.json").read_text())
    for job_id in planted:
        (jobs / job_id).mkdir()
        (jobs / job_id / "request.json").write_bytes((jobs / model_job / "request.json").read_bytes())
    (jobs / ("1" * 32) / "status.json").write_bytes(b"\x00{not json")
    (jobs / ("2" * 32) / "status.json").write_text(json.dumps({**status, "job_id": "2" * 32, "state": "paused"}))
    return planted


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads the process tree from Linux /proc")
def test_a_restart_keeps_results_interrupts_unfinished_jobs_and_expiry_cleans_up(
    start_server, demo_scene, tmp_path
) -> None:
    """kill -9 of the server: its worker exits at once (it ran its job on, here a stage of minutes), a restart serves the
    results it reported, marks the jobs it had running or queued exactly INTERRUPTED and damaged job folders
    failed (they vanished, and were never cleaned); a server with a short TTL then deletes them all."""
    first = start_server(data_dir=tmp_path, env={"IVLM_SERVER_TEST_FAULTS": f"hold-label={HOLD_LABEL}"})
    client = first.client()
    done = _submit(client, demo_scene, **NO_OPTIONAL_STAGES)
    result = client.wait(done["job_id"])
    running = _submit(client, demo_scene, label=HOLD_LABEL)  # held for minutes in one stage, reporting nothing
    queued = _submit(client, demo_scene, **NO_OPTIONAL_STAGES)
    _wait_state(client, running["job_id"], ("running",))
    _wait_stage(client, running["job_id"], "contact")
    (worker,) = _worker_pids(first.process.pid)
    first.process.kill()
    first.process.wait(30)
    deadline = time.monotonic() + 10
    while not _gone(worker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _gone(worker), "the worker went on after its server was killed"
    jobs = tmp_path / "jobs"
    planted = _plant_damaged_jobs(jobs, done["job_id"])

    second = start_server(data_dir=tmp_path)
    client = second.client()
    assert client.status(done["job_id"])["state"] == "done"
    assert client.result(done["job_id"]) == result
    for job in (running, queued):
        status = client.status(job["job_id"])
        assert status["state"] == "failed" and status["error"]["code"] == "INTERRUPTED", status
    for job_id, what in planted.items():
        status = client.status(job_id)
        assert status["state"] == "failed" and status["error"]["code"] == "JOB_DAMAGED", (what, status)
        assert status["error"]["hint"], what
        with pytest.raises(ApiError) as info:
            client.result(job_id)
        assert info.value.code == "JOB_DAMAGED", what
    assert second.stop() == 0

    third = start_server("--job-ttl-hours", str(2.0 / 3600), data_dir=tmp_path)  # a 2 s TTL
    assert not list(jobs.iterdir())  # every finished job, damaged ones too, was older than that
    client = third.client()
    job = _submit(client, demo_scene, **NO_OPTIONAL_STAGES)
    assert client.wait_finished(job["job_id"])["state"] == "done"
    deadline = time.monotonic() + 60
    while (jobs / job["job_id"]).exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not (jobs / job["job_id"]).exists(), "a finished job outlived its TTL"
    with pytest.raises(ApiError) as info:
        client.status(job["job_id"])
    assert info.value.code == "NOT_FOUND"


def test_cors_is_off(server) -> None:
    """A web page the user visits must not be able to drive the server from their browser."""
    host, port = server.url.removeprefix("http://").split(":")
    origin = {"Origin": "http://evil.example"}
    preflight = {**origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}
    for method, path, headers in (("GET", "/v1/health", origin), ("OPTIONS", "/v1/jobs", preflight)):
        connection = http.client.HTTPConnection(host, int(port), timeout=30)
        connection.request(method, path, headers=headers)
        answer = connection.getresponse()
        answer.read()
        connection.close()
        assert not [name for name, _ in answer.getheaders() if name.lower().startswith("access-control-")], method
        assert answer.status == (200 if method == "GET" else 405)


def test_ctrl_c_stops_the_server_and_its_worker_cleanly(start_server, demo_scene, tmp_path) -> None:
    """Ctrl+C in a terminal reaches the server and its worker process: the running job must end cancelled (its
    status on disk), not be taken for a worker crash, and the server must exit cleanly."""
    server = start_server(data_dir=tmp_path)
    client = server.client()
    job = _submit(client, demo_scene)
    _wait_state(client, job["job_id"], ("running",))
    os.killpg(server.process.pid, signal.SIGINT)
    assert server.process.wait(60) == 0
    deadline = time.monotonic() + 10
    while "IVLM server stopped" not in "".join(server.log) and time.monotonic() < deadline:
        time.sleep(0.1)  # the log is read by a thread
    log = "".join(server.log)
    assert "IVLM server stopped" in log and "stopped unexpectedly" not in log and "Traceback" not in log, log
    status = json.loads((tmp_path / "jobs" / job["job_id"] / "status.json").read_text())
    assert status["state"] == "cancelled", status
