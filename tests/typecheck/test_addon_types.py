"""The Blender add-on type-checks against fake-bpy-module's Blender 5.0 stubs (mypy; config in pyproject.toml).

Runs in .venv-typecheck, apart from the real bpy in .venv-blender (see requirements/typecheck.in). The second
test plants type errors in a copy of the add-on and expects mypy to report them, so a config that quietly checks
nothing (files moved, errors ignored wholesale, bpy resolved to Any) fails as well.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mypy")
ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "pyproject.toml"


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One mypy cache for both runs (the stubs are parsed once), kept out of the work tree."""
    return tmp_path_factory.mktemp("mypy-cache")


def _mypy(cache_dir: Path, *paths: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "mypy", "--config-file", str(CONFIG), "--cache-dir", str(cache_dir)]
    return subprocess.run([*command, *map(str, paths)], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_the_addon_type_checks(cache_dir: Path) -> None:
    run = _mypy(cache_dir)  # the files named in the config: blender_addon/
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Success: no issues found" in run.stdout


PLANTED = """

def _planted_plain_error() -> int:
    return "not an int"


def _planted_bpy_errors(context: bpy.types.Context, scene: bpy.types.Scene) -> None:
    scene.frame_current = "one"
    context.scene.frame_current = 1
"""


def test_a_planted_type_error_is_reported(cache_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "blender_addon"
    shutil.copytree(ROOT / "blender_addon", copy, ignore=shutil.ignore_patterns("__pycache__"))
    operators = copy / "blender" / "operators.py"
    operators.write_text(operators.read_text() + PLANTED)
    run = _mypy(cache_dir, copy)
    assert run.returncode == 1, run.stdout + run.stderr
    errors = [line for line in run.stdout.splitlines() if ": error:" in line]
    assert len(errors) == 3, run.stdout
    assert any("operators.py" in e and "[return-value]" in e for e in errors), run.stdout
    # only the stubs know frame_current is an int and context.scene may be None: bpy is really checked
    assert any("operators.py" in e and "[union-attr]" in e for e in errors), run.stdout
    assert any("operators.py" in e and "[assignment]" in e for e in errors), run.stdout
