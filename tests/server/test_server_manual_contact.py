"""The manual-contact workflow through the real server: no InteractVLM release (or none wanted), so Estimate fits
the body and puts the object in view with no contacts, and a fit job from painted contacts places it. Every
answer names the parts that are stand-ins or absent, and none names a path of the server's disk."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from ivlm_core import paths
from ivlm_core.pipeline import parts
from server.client import array_value, estimate_request, fit_request

pytestmark = pytest.mark.slow


@pytest.fixture
def body_and_perception_folder(tmp_path, synthetic_body_files, tiny_perception) -> Path:
    """The user's models folder with the (generated, real-format) SMPL-X body and perception models only."""
    root = tmp_path / "ivlm-models"
    shutil.copytree(paths.body_models_dir(synthetic_body_files.root), paths.body_models_dir(root))
    for name, folder in tiny_perception.items():
        shutil.copytree(folder, paths.perception_dir(name, root))
    return root


def _sources(answer: dict) -> dict[str, str]:
    return {part["part"]: part["source"] for part in answer["parts"]}


def _no_server_paths(text: str, *folders: Path) -> None:
    for folder in (*folders, Path.home()):
        assert str(folder) not in text, f"an answer names the server's folder {folder}"


def test_without_a_contact_model_estimate_puts_the_object_in_view_and_a_painted_fit_places_it(
    start_server, body_and_perception_folder, demo_scene
) -> None:
    server = start_server("--models", str(body_and_perception_folder))
    client = server.client()
    health = client.health()
    assert health["status"] == "ok" and "NOT LOADED" in "".join(server.log)
    # Loaded from the folder, and still flagged: what is there is the project's generated stand-ins.
    assert _sources(health) == {
        parts.BODY_MODEL: parts.STAND_IN,
        parts.PERCEPTION: parts.STAND_IN,
        parts.HUMAN_CONTACT: parts.ABSENT,
        parts.OBJECT_CONTACT: parts.ABSENT,
        parts.CANONICAL_VIEWS: parts.ABSENT,
    }
    absent = next(part for part in health["parts"] if part["part"] == parts.HUMAN_CONTACT)
    assert absent["meaning"] == parts.CONTACT_NOT_PREDICTED
    assert health["demo"] is True and "synthetic SMPL-X body" in health["demo_reason"]
    assert not any("interactvlm" in name for name in health["models_loaded"])

    request = estimate_request(demo_scene.png, [(demo_scene.label, demo_scene.vertices, demo_scene.faces)])
    job = client.submit(request)
    assert client.wait_finished(job["job_id"])["state"] == "done"
    result = client.result(job["job_id"])
    _no_server_paths(json.dumps([health, result]), body_and_perception_folder, server.data_dir)
    assert result["body"] is not None  # the body stage ran without any contact model
    (obj,) = result["objects"]
    assert obj["object_contact"] is None and obj["body_contact"] is None
    assert obj["status"] == "placed" and "no contact was predicted" in obj["reason"] and "Refit" in obj["reason"]
    assert parts.CONTACT_NOT_PREDICTED in result["notes"]
    assert result["models"]["human_contact"].startswith("absent") and _sources(result) == _sources(health)
    assert "contact" in result["timings_s"] and result["timings_s"]["contact"] < 1.0  # nothing ran there
    in_view = np.array(obj["camera_from_object"])
    centre = (demo_scene.vertices @ in_view[:3, :3].T + in_view[:3, 3]).mean(0)
    assert centre[2] > 0  # in front of the camera

    vertices = demo_scene.vertices
    object_contact = (vertices[:, 1] > np.quantile(vertices[:, 1], 0.8)).astype(np.float32)  # a painted cap
    body = array_value(result["body"]["vertices"])
    body_contact = (body[:, 1] > np.quantile(body[:, 1], 0.97)).astype(np.float32)  # ...and the feet (y down)
    fit = client.submit_fit(fit_request(job["job_id"], {demo_scene.label: (object_contact, body_contact)}))
    refit = client.wait(fit["job_id"])
    (placed,) = refit["objects"]
    assert placed["status"] == "placed", placed["reason"]
    assert "placed from the contacts you painted or marked" in refit["notes"]
    assert _sources(refit) == _sources(health)
    transform = np.array(placed["camera_from_object"])
    touching = (vertices @ transform[:3, :3].T + transform[:3, 3])[object_contact > 0.5]
    gap = np.linalg.norm(touching[:, None] - body[body_contact > 0.5][None], axis=2).min()
    assert gap < 0.05, f"the painted cap ends {gap:.3f} m from the painted feet"
    _no_server_paths(json.dumps(refit), body_and_perception_folder, server.data_dir)


def test_no_contact_model_option_and_request_option_skip_the_contact_models(start_server, server, demo_scene) -> None:
    """`--no-contact-model` loads none (DEMO stand-ins elsewhere); `predict_contact: false` skips them per job."""
    manual = start_server("--no-contact-model")
    sources = _sources(manual.client().health())
    assert sources[parts.HUMAN_CONTACT] == sources[parts.OBJECT_CONTACT] == parts.ABSENT
    assert sources[parts.BODY_MODEL] == parts.STAND_IN
    manual.stop()
    client = server.client()  # the shared DEMO server, whose contact models are loaded stand-ins
    assert _sources(client.health())[parts.HUMAN_CONTACT] == parts.STAND_IN
    mesh = (demo_scene.label, demo_scene.vertices, demo_scene.faces)
    job = client.submit(estimate_request(demo_scene.png, [mesh], stages=[], predict_contact=False))
    result = client.wait(job["job_id"])
    (obj,) = result["objects"]
    assert obj["object_contact"] is None and obj["body_contact"] is None
    assert any("contact prediction was not requested" in note for note in result["notes"])
