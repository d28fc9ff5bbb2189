"""Server parts that need no running server: settings, token check, arrays, job store clean-up, doctor."""

from __future__ import annotations

import base64
import time

import numpy as np
import pytest

from ivlm_core.errors import BadInputError
from server import arrays
from server.schemas import ArrayData, EstimateOptions, JobStatus
from server.security import token_matches
from server.settings import ServerSettings, is_loopback
from server.store import EstimateRecord, JobStore


def test_binding_beyond_loopback_needs_a_long_token(tmp_path) -> None:
    ServerSettings(host="127.0.0.1", data_dir=tmp_path, token=None).check()
    with pytest.raises(BadInputError, match="without a token"):
        ServerSettings(host="0.0.0.0", data_dir=tmp_path, token=None).check()
    with pytest.raises(BadInputError, match="shorter than 16"):
        ServerSettings(host="0.0.0.0", data_dir=tmp_path, token="short").check()
    ServerSettings(host="0.0.0.0", data_dir=tmp_path, token="x" * 32).check()
    assert is_loopback("::1") and is_loopback("localhost") and not is_loopback("192.168.1.4")


def test_token_check() -> None:
    token = "s3cret-token-0123456789"
    assert token_matches(f"Bearer {token}", token) and token_matches(f"bearer {token}", token)
    assert not token_matches(None, token) and not token_matches(token, token)
    assert not token_matches(f"Bearer {token}x", token) and not token_matches(f"Basic {token}", token)


def test_arrays_round_trip_and_reject_bad_payloads() -> None:
    values = np.arange(12, dtype=np.float32).reshape(4, 3)
    payload = arrays.encode(values)
    assert np.array_equal(arrays.decode(payload, "v", dtype="float32", shape=(None, 3)), values)
    with pytest.raises(BadInputError, match=r"shape \[4, 3\]; expected \[N, 2\]"):
        arrays.decode(payload, "v", dtype="float32", shape=(None, 2))
    with pytest.raises(BadInputError, match="dtype float32; expected int32"):
        arrays.decode(payload, "v", dtype="int32", shape=(None, 3))
    short = ArrayData(dtype="float32", shape=[4, 3], data=base64.b64encode(b"\0" * 8).decode())
    with pytest.raises(BadInputError, match="holds 8 bytes"):
        arrays.decode(short, "v", dtype="float32", shape=(None, 3))
    bad = values.copy()
    bad[1, 1] = np.inf
    with pytest.raises(BadInputError, match="1 NaN or infinite"):
        arrays.decode(arrays.encode(bad), "v", dtype="float32", shape=(None, 3))


def test_stepwise_base64_agrees_with_the_standard_library(monkeypatch) -> None:
    """The step-by-step decoder accepts and refuses exactly what b64decode(validate=True) does, at step edges too."""
    import binascii

    monkeypatch.setattr(arrays, "BASE64_STEP", 8)
    rng = np.random.default_rng(0)
    good = [base64.b64encode(rng.bytes(n)).decode() for n in (0, 1, 2, 3, 5, 6, 7, 12, 13, 14, 30)]
    bad = [
        "QUJD" + "RA==" + "QUJD",  # data after padding, across a step edge
        "QUJDRA==QUJD",  # ...and inside one step
        "QUJDRA=",  # padding cut short
        "QUJD RA==",  # a space
        "QUJD-A==",  # urlsafe alphabet
        "QUJDRA\u00e9=",  # not ASCII
        "QUJDR",  # not a whole quantum
    ]
    for text in good:
        assert arrays.decode_base64(text) == base64.b64decode(text, validate=True)
    for text in bad:
        with pytest.raises((binascii.Error, ValueError)):
            base64.b64decode(text, validate=True)
        with pytest.raises((binascii.Error, ValueError)):
            arrays.decode_base64(text)


def _status(job_id: str, state: str, age_s: float) -> JobStatus:
    then = time.time() - age_s
    return JobStatus(
        job_id=job_id,
        kind="estimate",
        state=state,
        stage=state,
        progress=0.0,
        message="",
        demo=True,
        created_at=then,
        updated_at=then,
    )


def _record() -> EstimateRecord:
    return EstimateRecord(labels=["cup"], options=EstimateOptions())


def test_store_expires_only_old_finished_jobs(tmp_path) -> None:
    store = JobStore(tmp_path)
    jobs = [
        _status("a" * 32, "done", 100),
        _status("b" * 32, "failed", 100),
        _status("c" * 32, "done", 1),
        _status("d" * 32, "queued", 100),
    ]
    for status in jobs:
        store.create(status, _record(), {"x": np.zeros(2)}, b"photo")
    assert {s.job_id for s in store.load_all()} == {s.job_id for s in jobs}
    expired = store.expired(store.load_all(), ttl_s=50)
    assert sorted(expired) == ["a" * 32, "b" * 32]
    for job_id in expired:
        store.delete(job_id)
    assert sorted(p.name for p in (tmp_path / "jobs").iterdir()) == ["c" * 32, "d" * 32]
    assert store.request("c" * 32) == _record()  # the stored record reads back as the same typed model
    with pytest.raises(ValueError, match="not a job id"):
        store.folder("../escape")


def test_doctor_lists_every_missing_item_with_where_to_get_it(tmp_path, capsys) -> None:
    from ivlm_core.cli import main
    from ivlm_core.doctor import check_model_files, check_optional_model_files

    statuses = check_model_files(tmp_path)
    assert len(statuses) == 9 and not any(s.present for s in statuses)
    assert all(s.problem and s.source and str(tmp_path) in s.path for s in statuses)
    optional = check_optional_model_files(tmp_path)
    assert [s.name for s in optional][:2] == [
        "the ViTPose whole-body (COCO-WholeBody 133) keypoint estimator (vitpose-wholebody)",
        "VPoser v2.0 pose prior",
    ]
    assert not any(s.present for s in optional) and all(s.source for s in optional)
    assert main(["doctor", "--models", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert text.count("[MISSING]") == 9 and text.count("[absent]") == len(optional)  # optional items have fallbacks
    assert "https://smpl-x.is.tue.mpg.de" in text and "IDEA-Research/grounding-dino-tiny" in text
    assert "DEMO mode" in text


def test_doctor_sees_files_that_are_in_place(tmp_path, synthetic_body_files, tiny_perception) -> None:
    import shutil

    from ivlm_core import paths
    from ivlm_core.doctor import check_model_files, check_optional_model_files

    shutil.copytree(paths.body_models_dir(synthetic_body_files.root), paths.body_models_dir(tmp_path))
    for name, folder in tiny_perception.items():
        shutil.copytree(folder, paths.perception_dir(name, tmp_path))
    present = {s.name for s in check_model_files(tmp_path) if s.present}
    assert "SMPL-X body model" in present
    assert any("canonical body views" in name for name in present)  # regenerable from the SMPL-H file
    assert sum("grounding-dino" in n or "(sam)" in n or "vitpose" in n for n in present) == 3
    assert any("whole-body" in s.name for s in check_optional_model_files(tmp_path) if s.present)


def test_accepted_connections_have_nagle_off() -> None:
    """With Nagle on, a kept-alive client waits ~40 ms (delayed ACK) for each answer; asyncio turns it off only
    on sockets whose proto says TCP, so the socket the server listens on must say so."""
    import asyncio
    import socket

    from server.main import listening_socket

    async def accept_one() -> int:
        sock = listening_socket("127.0.0.1", 0)
        accepted: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        class Probe(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                conn = transport.get_extra_info("socket")
                accepted.set_result(conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
                transport.close()

        server = await asyncio.get_running_loop().create_server(Probe, sock=sock)
        _, writer = await asyncio.open_connection(*sock.getsockname()[:2])
        try:
            return await asyncio.wait_for(accepted, 10)
        finally:
            writer.close()
            server.close()

    assert asyncio.run(accept_one()) != 0


def test_the_add_on_knows_the_same_finished_states() -> None:
    """The add-on is standard-library only and cannot import the server; its copy must match the owner's."""
    from blender_addon.core.protocol import FINISHED_STATES as ADDON_FINISHED
    from server.schemas import FINISHED_STATES

    assert tuple(ADDON_FINISHED) == FINISHED_STATES


def test_doctor_names_both_ways_to_the_canonical_body_views(tmp_path) -> None:
    """The item said "get it: InteractVLM site" and, on the next line, "fix: register at the MANO site": either
    gives the views (data.zip holds them, SMPL-H regenerates them), so both lines must name both."""
    from ivlm_core.doctor import check_model_files

    (views,) = [s for s in check_model_files(tmp_path) if "canonical body views" in s.name]
    assert not views.present
    for text in (views.source, views.hint):
        assert "https://interactvlm.is.tue.mpg.de" in text and "https://mano.is.tue.mpg.de" in text, text
    assert "data.zip" in views.hint and "SMPL+H" in views.hint


def _service_without_worker(tmp_path, monkeypatch):
    """A real JobService whose supervisor loop runs inline and whose steps the test supplies (no worker process)."""
    from server.jobs import JobService
    from server.worker import ModelSpec

    service = JobService(ServerSettings(data_dir=tmp_path), ModelSpec(demo=True, models_root=None, device="cpu"))
    monkeypatch.setattr(service, "_start_worker", lambda: None)
    return service


def test_the_supervisor_fails_the_job_an_unexpected_error_hit_and_goes_on(tmp_path, monkeypatch) -> None:
    """An exception in the supervisor thread used to end it silently: jobs stayed running or queued for good."""
    service = _service_without_worker(tmp_path, monkeypatch)
    job = service._enqueue(_record(), {"x": np.zeros(2)}, None)
    steps = []

    def step() -> None:
        steps.append(len(steps))
        if len(steps) == 1:
            service._handling = job.job_id
            raise RuntimeError("boom")
        if len(steps) == 3:
            service._stopping.set()

    monkeypatch.setattr(service, "_step", step)
    service._supervise()
    assert len(steps) == 3  # it went on after the error
    status = service.status(job.job_id)
    assert status.state == "failed" and status.error.code == "INTERNAL" and "boom" in status.error.message
    assert service.state != "error" and service.runner_error is None


def test_a_supervisor_that_cannot_go_on_says_error_and_fails_what_waits(tmp_path, monkeypatch) -> None:
    from server.errors import ServerError
    from server.jobs import MAX_STEP_FAILURES

    service = _service_without_worker(tmp_path, monkeypatch)
    waiting = service._enqueue(_record(), {"x": np.zeros(2)}, None)
    calls = []

    def step() -> None:
        calls.append(1)
        raise OSError("the same failure every time")

    monkeypatch.setattr(service, "_step", step)
    service._supervise()
    assert len(calls) == MAX_STEP_FAILURES
    assert service.state == "error" and "repeated errors" in service.runner_error.message
    assert service.status(waiting.job_id).state == "failed"
    with pytest.raises(ServerError) as info:
        service._check_capacity()
    assert info.value.code == "INTERNAL" and "cannot run jobs" in info.value.message


def test_refit_state_keeps_each_placed_pose_for_the_refit_to_start_from() -> None:
    """The estimate's placement (the object put in view, the pose the user sees) is kept per object index; an
    object that was not placed has none, and a fit job then runs the dense search for it."""
    from ivlm_core.fit.camera import CameraIntrinsics
    from ivlm_core.fit.place_object import ObjectPlacement
    from ivlm_core.pipeline import array_keys
    from ivlm_core.pipeline.reconstruct import ObjectOutcome, ReconstructResult
    from server.results import refit_state

    pose = np.eye(4)
    pose[:3, 3] = [0.1, -0.2, 2.5]
    outcomes = [
        ObjectOutcome("chair", ObjectPlacement("placed", "in view", camera_from_object=pose), None, None),
        ObjectOutcome("mug", ObjectPlacement("skipped", "no body"), None, None),
    ]
    result = ReconstructResult(False, CameraIntrinsics(500.0, (100, 120), "client"), None, outcomes, [], {})
    state = refit_state(result)
    assert np.array_equal(state[array_keys.key(array_keys.OBJECT_POSE, 0)], pose)  # stored, not computed: exact
    assert array_keys.key(array_keys.OBJECT_POSE, 1) not in state
