"""The GPU check (benchmarks/gpu_check.sh) rehearsed on the CPU with tiny sizes: every step's code path runs, so a
run on a GPU cannot fail on a typo. No GPU figure comes from this; the GPU run prints them."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow  # seven steps, each a fresh Python process with torch


def test_gpu_check_rehearsal_runs_every_step(tmp_path, tiny_models, tiny_perception, synthetic_body_files) -> None:
    env = {**os.environ, "PYTHON": sys.executable, "IVLM_GPU_CHECK_OUT": str(tmp_path)}
    done = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--rehearse"],
        capture_output=True,
        text=True,
        env=env,
        timeout=1800,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    for step in range(8):
        assert f"== {step} " in done.stdout, output[-4000:]
    assert "KV cache is" in done.stdout and "static" in done.stdout
    assert "simulated 24 GB card: the plan chose joint-int8" in done.stdout
    assert "simulated 16 GB card: the plan chose joint-nf4" in done.stdout
    assert done.stdout.count("job COMPLETED") == 2 and "GB/s" in done.stdout
    # The whole NF4 job is rehearsed once, by the 16 GB card (step 5's NF4 run is the same job; GPU runs only).
    figures = json.loads((tmp_path / "card_16gb.json").read_text())
    assert figures["contacts"] == {"body": True, "object": True} and figures["configuration"] == "joint-nf4"
    assert not (tmp_path / "whole_nf4.json").exists()
    for name in ("render", "localize_bf16", "localize_nf4", "localize_static", "whole_bf16", "card_24gb"):
        assert (tmp_path / f"{name}.json").is_file(), name
