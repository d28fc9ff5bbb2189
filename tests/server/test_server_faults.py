"""Attacks on the real server (uvicorn on 127.0.0.1) beyond well-formed bad input: a full disk, damaged or
deleted job files, labels and photo shapes the pipeline refuses, phone photos (MPO, EXIF orientation and focal
length), JSON the standard does not define, slow and idle connections.

Every error answer these tests get is checked for server paths (`_error`): no client may learn where the server
keeps its files.
"""

from __future__ import annotations

import base64
import io
import json
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import ExifTags, Image

from ivlm_core import paths
from server.client import ApiError, estimate_request, fit_request

pytestmark = pytest.mark.slow
NO_OPTIONAL_STAGES = {"stages": []}  # perceive + contact only: the quickest real job
FOCAL_35MM = 26  # mm, a typical phone's main camera


@pytest.fixture(scope="module")
def server_paths(server, empty_models_dir) -> list[str]:
    """Folders of the server's machine that no answer may name."""
    return [str(server.data_dir), str(empty_models_dir), str(paths.cache_dir()), str(Path.home())]


def _assert_no_server_path(text: str, server_paths: list[str]) -> None:
    named = [path for path in server_paths if path in text]
    assert not named, f"an answer names server paths {named}: {text}"


def _error(call, server_paths: list[str]) -> ApiError:
    with pytest.raises(ApiError) as info:
        call()
    _assert_no_server_path(json.dumps(info.value.body), server_paths)
    return info.value


def _submit(client, scene, label=None, **options):
    return client.submit(estimate_request(scene.png, [(label or scene.label, scene.vertices, scene.faces)], **options))


def _wait_state(client, job_id: str, states: tuple[str, ...], timeout: float = 300.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        status = client.status(job_id)
        if status["state"] in states or time.monotonic() > deadline:
            assert status["state"] in states, f"job {job_id} never reached {states}; last {status}"
            return status
        time.sleep(0.05)


def _wait_health(client, check, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        health = client.health()
        if check(health) or time.monotonic() > deadline:
            assert check(health), health
            return health
        time.sleep(0.1)


def _inputs(server, job_id: str) -> dict[str, np.ndarray]:
    with np.load(server.data_dir / "jobs" / job_id / "inputs.npz") as data:
        return {name: data[name] for name in data.files}


# -- health ---------------------------------------------------------------------------------------------------


def test_health_names_no_server_path(server, server_paths) -> None:
    health = server.client().health()
    _assert_no_server_path(json.dumps(health), server_paths)
    shown = {m["name"]: m["path"] for m in health["missing_model_files"]}
    assert shown["SMPL-X body model"] == "body_models/smplx/SMPLX_NEUTRAL.npz"  # relative to the models folder
    assert all(not path.startswith("/") for path in shown.values()), shown


# -- labels and photos the pipeline cannot use: refused at submit --------------------------------------------


@pytest.mark.parametrize(
    ("label", "why"),
    [
        ("../../etc/passwd", "contains '.'"),
        ("cup\x00", "control character"),
        ("\u200b", "no visible"),
        ("mug\nsofa", "line break"),
        ("a <image> b", "special token"),
    ],
)
def test_a_label_the_pipeline_refuses_is_refused_at_submit_naming_its_object(
    server, demo_scene, server_paths, label, why
) -> None:
    """One bad label among good ones used to fail the whole job after it had queued and run perception."""
    client = server.client()
    objects = [
        (demo_scene.label, demo_scene.vertices, demo_scene.faces),
        (label, demo_scene.vertices, demo_scene.faces),
    ]
    error = _error(lambda: client.submit(estimate_request(demo_scene.png, objects)), server_paths)
    assert (error.status, error.code) == (400, "BAD_INPUT"), error.body
    assert error.body["message"].startswith("objects[1]:") and why in error.body["message"], error.body
    assert error.body["hint"]
    assert client.health()["queue"]["length"] == 0


def _png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (90, 120, 150)).save(buffer, "PNG")
    return buffer.getvalue()


def test_a_photo_too_thin_for_the_pipeline_is_refused_at_submit(server, demo_scene, server_paths) -> None:
    """A valid 20000x16 PNG was accepted, then failed INTERNAL inside the detector's image processor."""
    client = server.client()
    objects = [(demo_scene.label, demo_scene.vertices, demo_scene.faces)]
    for width, height in ((20000, 16), (16, 20000)):
        error = _error(lambda w=width, h=height: client.submit(estimate_request(_png(w, h), objects)), server_paths)
        assert (error.status, error.code) == (400, "BAD_INPUT"), error.body
        assert "times its short side" in error.body["message"] and error.body["hint"], error.body
    assert client.health()["queue"]["length"] == 0


def test_an_mpo_photo_is_read_from_its_first_frame(server, demo_scene) -> None:
    """Many phone cameras write MPO (JPEG with extra frames); it was refused as 'a MPO file'."""
    first = Image.open(io.BytesIO(demo_scene.png)).convert("RGB")
    second = Image.new("RGB", first.size, (255, 0, 0))
    buffer = io.BytesIO()
    first.save(buffer, "MPO", quality=95, save_all=True, append_images=[second])
    assert Image.open(io.BytesIO(buffer.getvalue())).format == "MPO"
    client = server.client()
    job = client.submit(
        estimate_request(
            buffer.getvalue(), [(demo_scene.label, demo_scene.vertices, demo_scene.faces)], **NO_OPTIONAL_STAGES
        )
    )
    assert client.wait_finished(job["job_id"])["state"] == "done"
    analysed = _inputs(server, job["job_id"])["image"].astype(np.int16)
    assert analysed.shape == np.asarray(first).shape
    assert np.abs(analysed - np.asarray(first, np.int16)).mean() < 3.0  # the first frame, within JPEG loss


def test_a_rotated_phone_photo_is_analysed_upright_and_returned_as_analysed(server, demo_scene) -> None:
    """EXIF orientation 6 (stored lying on its side, shown upright): the server analyses the upright photo,
    says so in the camera, returns the analysed pixels, and still reads the focal length from the EXIF."""
    upright = np.asarray(Image.open(io.BytesIO(demo_scene.png)).convert("RGB"))
    stored = np.ascontiguousarray(np.rot90(upright, k=1))  # orientation 6: turn 90 degrees clockwise to show
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.FocalLengthIn35mmFilm] = FOCAL_35MM
    buffer = io.BytesIO()
    Image.fromarray(stored).save(buffer, "JPEG", quality=95, exif=exif)
    client = server.client()
    job = client.submit(
        estimate_request(
            buffer.getvalue(), [(demo_scene.label, demo_scene.vertices, demo_scene.faces)], **NO_OPTIONAL_STAGES
        )
    )
    result = client.wait(job["job_id"])
    camera = result["camera"]
    height, width = upright.shape[:2]
    assert camera["exif_orientation"] == 6
    assert camera["image_size_hw"] == [height, width]  # the upright size, not the stored one
    assert camera["focal_source"] == "exif"
    assert camera["focal_px"] == pytest.approx(FOCAL_35MM / np.hypot(36, 24) * np.hypot(width, height), rel=1e-6)
    analysed = _inputs(server, job["job_id"])["image"]
    assert analysed.shape == upright.shape
    assert np.abs(analysed.astype(np.int16) - upright).mean() < 3.0  # upright, within JPEG loss
    returned = np.asarray(Image.open(io.BytesIO(base64.b64decode(result["upright_photo"]))).convert("RGB"))
    assert returned.shape == analysed.shape
    assert np.abs(returned.astype(np.int16) - analysed).mean() < 2.0  # exactly what was analysed, as JPEG q95


# -- JSON -----------------------------------------------------------------------------------------------------


def test_json_with_duplicate_keys_or_non_finite_numbers_is_refused(server, demo_scene, server_paths) -> None:
    """`{"schema_version":"evil","schema_version":"ivlm-api-1"}` got 202 (the last key won), and NaN/Infinity
    reached the job as numbers."""
    client = server.client()
    good = estimate_request(demo_scene.png, [(demo_scene.label, demo_scene.vertices, demo_scene.faces)])
    text = json.dumps(good)
    duplicate = text.replace('{"schema_version": ', '{"schema_version": "evil", "schema_version": ', 1)
    params = {"betas": [0.0] * 10, "global_orient": [0.0] * 3, "body_pose": [0.0] * 63, "transl": [0.0, 0.0, 3.0]}
    for value in (float("nan"), float("inf")):
        body = {**good, "options": {"body": {"params": {**params, "betas": [value] + [0.0] * 9}}}}
        error = _error(lambda b=body: client.request("POST", "/v1/jobs", json.dumps(b).encode()), server_paths)
        assert error.status in (400, 422) and error.code == "BAD_INPUT", error.body
        assert "NaN" in error.body["message"] or "Infinity" in error.body["message"], error.body
    error = _error(lambda: client.request("POST", "/v1/jobs", duplicate.encode()), server_paths)
    assert error.status in (400, 422) and error.code == "BAD_INPUT", error.body
    assert "duplicate" in error.body["message"].lower() and "schema_version" in error.body["message"], error.body
    assert client.health()["queue"]["length"] == 0


# -- damaged and deleted job files ----------------------------------------------------------------------------


def test_damaged_or_deleted_job_files_are_never_served(server, demo_scene, server_paths) -> None:
    """A truncated result.json was served as 200 with invalid JSON; a deleted one, or a deleted job folder, gave
    500; a fit on a source whose state.npz was gone failed naming an absolute path of the server's disk."""
    client = server.client()
    jobs = [_submit(client, demo_scene, **NO_OPTIONAL_STAGES)["job_id"] for _ in range(5)]
    for job_id in jobs:
        assert client.wait_finished(job_id)["state"] == "done"
    truncated, deleted_result, deleted_state, *deleted_folders = jobs
    folder = server.data_dir / "jobs"
    result = folder / truncated / "result.json"
    result.write_bytes(result.read_bytes()[: result.stat().st_size // 2])
    (folder / deleted_result / "result.json").unlink()
    (folder / deleted_state / "state.npz").unlink()
    for job_id in deleted_folders:
        for path in (folder / job_id).iterdir():
            path.unlink()
        (folder / job_id).rmdir()

    for job_id in (truncated, deleted_result):
        error = _error(lambda j=job_id: client.result(j), server_paths)
        assert (error.status, error.code) == (410, "JOB_DAMAGED"), error.body
        assert "submit the job again" in error.body["hint"].lower(), error.body
        status = client.status(job_id)
        assert status["state"] == "failed" and status["error"]["code"] == "JOB_DAMAGED", status

    contacts = {demo_scene.label: (np.zeros(len(demo_scene.vertices), np.float32), np.zeros(10475, np.float32))}
    error = _error(lambda: client.submit_fit(fit_request(deleted_state, contacts)), server_paths)
    assert (error.status, error.code) == (410, "JOB_DAMAGED"), error.body
    assert "state" in error.body["message"] and "Estimate" in error.body["hint"], error.body

    asked_result, asked_fit = deleted_folders
    for call in (lambda: client.result(asked_result), lambda: client.submit_fit(fit_request(asked_fit, contacts))):
        error = _error(call, server_paths)
        assert (error.status, error.code) == (404, "NOT_FOUND"), error.body
        assert "deleted" in error.body["message"] and error.body["hint"], error.body
    for job_id in deleted_folders:  # and the server has forgotten them
        assert _error(lambda j=job_id: client.status(j), server_paths).code == "NOT_FOUND"
    assert client.health()["status"] == "ok"


# -- a full disk ----------------------------------------------------------------------------------------------


def test_a_full_disk_fails_the_running_job_refuses_submits_and_the_server_recovers(
    server, demo_scene, disk_full_flag, server_paths
) -> None:
    """The data folder filling up while a job ran killed the supervisor thread: that job stayed running and later
    ones queued for good, health said ok and submits got 202 (a submit on a full disk got 500 INTERNAL)."""
    client = server.client()
    try:
        disk_full_flag.touch()
        error = _error(lambda: _submit(client, demo_scene, **NO_OPTIONAL_STAGES), server_paths)
        assert (error.status, error.code) == (507, "STORAGE_FULL"), error.body
        assert "data folder" in error.body["hint"], error.body
        assert client.health()["storage_error"]["code"] == "STORAGE_FULL"
        disk_full_flag.unlink()
        _wait_health(client, lambda h: h["storage_error"] is None)  # it notices the space by itself

        running = _submit(client, demo_scene)  # all stages: it runs long enough to fill the disk under it
        waiting = _submit(client, demo_scene, **NO_OPTIONAL_STAGES)
        _wait_state(client, running["job_id"], ("running",))
        disk_full_flag.touch()
        status = client.wait_finished(running["job_id"])
        assert status["state"] == "failed" and status["error"]["code"] == "STORAGE_FULL", status
        assert _error(lambda: client.result(running["job_id"]), server_paths).code == "STORAGE_FULL"
        health = _wait_health(client, lambda h: h["storage_error"] is not None)
        assert health["status"] == "ok" and health["storage_error"]["code"] == "STORAGE_FULL"
        assert client.status(waiting["job_id"])["state"] == "queued"  # waits for space instead of failing
        assert _error(lambda: _submit(client, demo_scene, **NO_OPTIONAL_STAGES), server_paths).status == 507
    finally:
        disk_full_flag.unlink(missing_ok=True)
    assert client.wait_finished(waiting["job_id"])["state"] == "done"  # the server went on by itself
    assert client.health()["storage_error"] is None
    assert not (server.data_dir / "jobs" / running["job_id"] / "result.json").exists()  # nothing half-written


# -- slow and idle connections --------------------------------------------------------------------------------


def _address(server) -> tuple[str, int]:
    host, port = server.url.removeprefix("http://").split(":")
    return host, int(port)


def _closed_by_server(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (the socket's timeout fails the wait)."""
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def _wait_until_ended_by_server(sock: socket.socket) -> None:
    """Returns when the server has ended the connection: a close, or a reset when it closed with our bytes
    unread; the socket's timeout fails the test if it never does."""
    try:
        _closed_by_server(sock)
    except ConnectionResetError:
        pass


def _open_body(address: tuple[str, int]) -> socket.socket:
    """A connection that has sent a request head announcing a 100 kB body, and one byte of it."""
    sock = socket.create_connection(address, timeout=120)
    sock.sendall(
        b"POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"
    )
    return sock


def test_slow_and_idle_connections_are_dropped_while_health_answers(server) -> None:
    """Connections that sent nothing stayed open for good, and one sending its body a byte at a time stayed
    open as long as it kept sending."""
    address = _address(server)
    idle = [socket.create_connection(address, timeout=120) for _ in range(8)]
    stalled, trickling = _open_body(address), _open_body(address)
    stop = threading.Event()

    def trickle() -> None:  # a byte every 0.2 s: it never pauses long, it just never finishes
        try:
            while not stop.wait(0.2):
                trickling.sendall(b" ")
        except OSError:
            pass  # the server closed the connection

    sender = threading.Thread(target=trickle, daemon=True)
    sender.start()
    try:
        client = server.client(timeout=10)
        for _ in range(5):
            assert client.health()["status"] == "ok"  # answers while they hold their connections
        answer = _closed_by_server(stalled)
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        error = json.loads(answer.split(b"\r\n\r\n", 1)[1])
        assert error["code"] == "REQUEST_TIMEOUT" and "plus 1 s per MiB" in error["hint"], error
        _wait_until_ended_by_server(trickling)
        for sock in idle:
            assert _closed_by_server(sock) == b""  # closed without an answer: it never asked anything
        assert client.health()["status"] == "ok"
    finally:
        stop.set()
        for sock in [*idle, stalled, trickling]:
            sock.close()


def test_connections_beyond_the_cap_are_refused_until_the_idle_ones_are_dropped(server) -> None:
    address = _address(server)
    health = server.client(timeout=10)
    cap = health.health()["limits"]["max_connections"]
    idle = [socket.create_connection(address, timeout=120) for _ in range(cap)]
    try:
        with pytest.raises(ApiError) as info:
            health.health()
        assert info.value.status == 503
        for sock in idle:
            assert _closed_by_server(sock) == b""
        assert health.health()["status"] == "ok"
    finally:
        for sock in idle:
            sock.close()
