"""The server plans its model configuration for a memory budget (`--gpu-memory-gb`) and says what it chose and why
in its banner, in health and in every result; a budget too small for everything refuses to start.

On the CPU the plan counts what the CPU path loads (float32 where not quantised; see ivlm_core/pipeline/plan.py),
and DEMO mode plans for the real release shapes, then loads the tiny stand-ins in the chosen configuration.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from ivlm_core.pipeline.plan import JOINT_RELEASE
from server.client import estimate_request

pytestmark = pytest.mark.slow


def test_a_24_gb_budget_runs_the_joint_release_in_int8_and_says_so_everywhere(start_server, demo_scene) -> None:
    server = start_server("--gpu-memory-gb", "24")
    client = server.client()
    health = client.health()
    assert health["status"] == "ok", health
    chosen = health["configuration"]
    assert chosen["configuration"] == "joint-int8" and chosen["llm_precision"] == "int8" and chosen["sam_batch"] == 1
    assert chosen["budget_gb"] == 24.0 and chosen["budget_source"] == "--gpu-memory-gb 24"
    assert chosen["need_gb"] <= 24.0 and "most accurate configuration that fits" in chosen["reason"]
    assert any(f"{JOINT_RELEASE} (int8)" in name for name in health["models_loaded"])
    assert "configuration: joint-int8" in "".join(server.log)
    request = estimate_request(demo_scene.png, [(demo_scene.label, demo_scene.vertices, demo_scene.faces)], stages=[])
    job = client.submit(request)
    assert client.wait_finished(job["job_id"])["state"] == "done"
    result = client.result(job["job_id"])
    models = result["models"]
    assert models["configuration"] == "joint-int8" and models["language_model_precision"] == "int8"
    assert JOINT_RELEASE in models["human_contact"] and JOINT_RELEASE in models["object_contact"]
    assert result["objects"][0]["object_contact"] is not None  # the joint release answered the object question


def test_a_budget_too_small_for_every_configuration_refuses_to_start(tmp_path) -> None:
    command = [
        sys.executable,
        "-m",
        "ivlm_core.cli",
        "serve",
        "--demo",
        "--port",
        "0",
        "--gpu-memory-gb",
        "4",
        "--data-dir",
        str(tmp_path / "data"),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    assert "GPU_MEMORY_TOO_SMALL" in done.stderr and "no configuration fits 4.0 GB" in done.stderr
    assert "the smallest, joint-nf4" in done.stderr and "needs" in done.stderr and "ivlm plan" in done.stderr
    assert "Traceback" not in done.stderr
