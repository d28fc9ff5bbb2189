"""The GPU check (benchmarks/gpu_check.sh) rehearsed on the CPU with tiny sizes: every step's code path runs, so a
run on a GPU cannot fail on a typo. No GPU figure comes from this; the GPU run prints them. The rehearsal runs
without the packages a lent GPU machine lacks and is not sent (benchmarks/device_packages.txt, "unused")."""

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _device_packages() -> dict[str, str]:
    """benchmarks/device_packages.txt as {package: role}."""
    lines = (ROOT / "benchmarks" / "device_packages.txt").read_text().splitlines()
    return dict(line.split() for line in lines if line.strip() and not line.startswith("#"))


def test_device_packages_name_every_dependency_and_pin_what_is_carried() -> None:
    packages = _device_packages()
    assert set(packages.values()) == {"carried", "image", "unused"}
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {re.split(r"[<>=!~\[ ;]", dependency, maxsplit=1)[0].lower() for dependency in project["dependencies"]}
    assert names - set(packages) == set(), "a dependency the GPU machine may lack: add it to device_packages.txt"
    lock = (ROOT / "requirements" / "ci-lock.txt").read_text().lower()
    for name, role in packages.items():
        if role == "carried":
            assert re.search(rf"^{re.escape(name)}==", lock, re.MULTILINE), f"{name} is carried but not pinned"


@pytest.mark.slow  # eleven steps, most a fresh Python process with torch
def test_gpu_check_rehearsal_runs_every_step(tmp_path, tiny_models, tiny_perception, synthetic_body_files) -> None:
    # As on a lent GPU machine: the packages it lacks and is not sent cannot be imported.
    blocker = tmp_path / "site"
    blocker.mkdir()
    unused = sorted(name for name, role in _device_packages().items() if role == "unused")
    (blocker / "sitecustomize.py").write_text(f"import sys\nsys.modules.update(dict.fromkeys({unused!r}))\n")
    out = tmp_path / "figures"
    env = {
        **os.environ,
        "PYTHON": sys.executable,
        "IVLM_GPU_CHECK_OUT": str(out),
        "PYTHONPATH": os.pathsep.join([str(blocker), *filter(None, [os.environ.get("PYTHONPATH")])]),
    }
    done = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--rehearse"],
        capture_output=True,
        text=True,
        env=env,
        timeout=1800,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    for step in range(10):
        assert f"== {step} " in done.stdout, output[-4000:]
    assert "embreex is not installed: the Embree columns are left out" in done.stdout
    assert "!! " not in done.stdout, output[-4000:]
    assert "KV cache is" in done.stdout and "static" in done.stdout
    assert "simulated 24 GB card: the plan chose joint-int8" in done.stdout
    assert "simulated 16 GB card: the plan chose joint-nf4" in done.stdout
    assert done.stdout.count("job COMPLETED") == 2 and "GB/s" in done.stdout
    # The whole NF4 job is rehearsed once, by the 16 GB card (step 4's NF4 run is the same job; GPU runs only).
    figures = json.loads((out / "card_16gb.json").read_text())
    assert figures["contacts"] == {"body": True, "object": True} and figures["configuration"] == "joint-nf4"
    assert not (out / "whole_nf4.json").exists()
    for name in ("render", "localize_bf16", "localize_nf4", "localize_static", "whole_bf16", "card_24gb", "assets"):
        assert (out / f"{name}.json").is_file(), name


def _run_with_failing_benchmarks(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    """The GPU check with a stand-in interpreter: inline scripts (the device probe, the copy speed) succeed, every
    benchmark script and pytest fail. Seconds, not minutes."""
    return subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--rehearse"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHON": _fake_python(tmp_path), "IVLM_GPU_CHECK_OUT": str(tmp_path / "figures"), **env},
        timeout=60,
    )


def _fake_python(folder: Path) -> str:
    """A stand-in interpreter: inline scripts and `-m pip` succeed, imports probed with -c fail, anything else
    (benchmark scripts, `-m pytest`) exits 3."""
    fake = folder / "python"
    fake.write_text(
        "#!/usr/bin/env bash\n"
        'case "$1" in -) cat >/dev/null; exit 0;; -c) exit 1;; -m) [ "$2" = pip ] && exit 0; exit 3;; *) exit 3;; esac\n'
    )
    fake.chmod(0o755)
    return str(fake)


def test_gpu_check_goes_on_after_a_failed_step_and_says_which_failed(tmp_path) -> None:
    """One GPU session may be all there is: a step that fails must not cost the figures of the steps after it."""
    done = _run_with_failing_benchmarks(tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "== 10 " in done.stdout
    assert "!! step 4 whole pipeline per job, joint release bf16 and NF4 failed" in done.stdout
    assert done.stdout.rstrip().endswith("!! failed steps: 1 2 3 4 5 7 8 9 10")


def test_gpu_check_runs_only_the_steps_asked_for(tmp_path) -> None:
    """To finish a run that a time limit stopped: the steps named run (and the device probe), the others do not."""
    done = _run_with_failing_benchmarks(tmp_path, IVLM_GPU_CHECK_STEPS="4,8")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "== 0 device  (" in done.stdout and "== 10 Localize, static cache" in done.stdout
    for left_out in (1, 2, 3, 5, 6, 7, 9, 10):
        assert re.search(rf"^== {left_out} .*: left out \(IVLM_GPU_CHECK_STEPS\)$", done.stdout, re.MULTILINE)
    assert done.stdout.rstrip().endswith("!! failed steps: 4 8")


def test_device_run_returns_the_log_the_figures_and_the_gpu_reading_even_when_steps_fail(tmp_path) -> None:
    """benchmarks/device_run.sh, as on a lent GPU machine (here with the stand-in interpreter and no GPU): what
    comes back under $OUT is there although every benchmark failed; without carried wheels it stops and says what
    to do."""
    repo = tmp_path / "repo"
    (repo / "benchmarks").mkdir(parents=True)
    for script in ("device_run.sh", "gpu_check.sh"):
        (repo / "benchmarks" / script).write_text((ROOT / "benchmarks" / script).read_text())
    env = {**os.environ, "PYTHON": _fake_python(tmp_path), "OUT": str(tmp_path / "out")}
    env |= {"IVLM_GPU_CHECK_OUT": str(tmp_path / "figures"), "IVLM_DEVICE_SITE": str(tmp_path / "site")}
    command = ["bash", str(repo / "benchmarks" / "device_run.sh"), "--rehearse"]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 1 and "no wheels in .whl/" in done.stderr, done.stdout + done.stderr
    (repo / ".whl").mkdir()
    (repo / ".whl" / "stand_in-1.0-py3-none-any.whl").write_bytes(b"")
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 1, done.stdout + done.stderr  # the benchmarks failed, so the run says so
    log = (tmp_path / "out" / "gpu_check.log").read_text()
    assert "== 10 " in log and log.rstrip().endswith("!! failed steps: 1 2 3 4 5 7 8 9 10")
    assert (tmp_path / "out" / "nvidia_smi.csv").is_file() and (tmp_path / "out" / "gpu_check_json.tgz").is_file()
