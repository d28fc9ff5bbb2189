"""The server on a complete models folder: the real-model path (doctor finds every item, the real loaders read
release-format folders), DEMO flagging of generated stand-ins found there, and damaged or missing model files."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ivlm_core import paths
from ivlm_core.doctor import check_model_files
from ivlm_core.pipeline.reconstruct import HUMAN_RELEASE
from server.client import ApiError, estimate_request

pytestmark = pytest.mark.slow
NO_OPTIONAL_STAGES = {"stages": []}


def _submit(client, scene):
    request = estimate_request(scene.png, [(scene.label, scene.vertices, scene.faces)], **NO_OPTIONAL_STAGES)
    return client.submit(request)


def test_a_complete_folder_loads_through_the_real_loaders_and_stand_ins_stay_flagged(
    start_server, models_folder, demo_scene
) -> None:
    assert all(status.present for status in check_model_files(models_folder))
    server = start_server("--models", str(models_folder))
    client = server.client()
    health = client.health()
    assert health["status"] == "ok" and health["missing_model_files"] == [], health
    # Nothing is missing, so the real-model path loaded the folder; what it loaded is still the project's
    # generated stand-ins, and the server must say so everywhere a user looks.
    assert health["demo"] is True
    reason = health["demo_reason"]
    assert "generated DEMO stand-ins" in reason and "synthetic SMPL-X body" in reason, reason
    assert "random-weight human-contact release" in reason and "random-weight perception models" in reason
    assert all(name.startswith("DEMO") for name in health["models_loaded"])
    assert "DEMO MODE" in "".join(server.log)
    job = _submit(client, demo_scene)
    assert client.wait_finished(job["job_id"])["demo"] is True
    result = client.result(job["job_id"])
    assert result["demo"] is True and any(note.startswith("DEMO") for note in result["notes"])
    assert result["objects"][0]["object_contact"] is not None  # the object release ran


def test_a_damaged_model_file_refuses_jobs_with_its_code_and_health_keeps_answering(
    start_server, models_folder, demo_scene
) -> None:
    shard = paths.interactvlm_release_dir(HUMAN_RELEASE, models_folder) / "pytorch_model-00001-of-00002.bin"
    shard.write_bytes(shard.read_bytes()[:1000])  # a half-copied download: the file is there, its data is not
    assert all(status.present for status in check_model_files(models_folder))  # doctor's cheap checks pass
    server = start_server("--models", str(models_folder))
    client = server.client()
    health = client.health()
    assert health["status"] == "error"
    assert health["load_error"]["code"] == "MODEL_FILE_INVALID"
    assert shard.name in health["load_error"]["message"] and health["load_error"]["hint"]
    with pytest.raises(ApiError) as info:
        _submit(client, demo_scene)
    error = info.value
    assert (error.status, error.code) == (503, "MODEL_FILE_INVALID")
    assert shard.name in error.body["message"] and "restart the server" in error.body["hint"]
    assert client.health()["queue"]["length"] == 0  # nothing was queued, and the server still answers
    assert not any((server.data_dir / "jobs").iterdir())  # ...and nothing was written


def test_no_demo_refuses_to_start_without_the_model_files(tmp_path) -> None:
    command = [
        sys.executable,
        "-m",
        "ivlm_core.cli",
        "serve",
        "--no-demo",
        "--port",
        "0",
        "--models",
        str(tmp_path / "empty"),
        "--data-dir",
        str(tmp_path / "data"),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "--no-demo was given but model files are missing" in done.stderr and "ivlm doctor" in done.stderr
    assert "SMPL-X body model" in done.stderr
