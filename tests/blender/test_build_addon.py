"""build_addon.py packs an extension with Blender's own tool, and the zip installs in real Blender; build_addon.sh,
the README's one command, builds the add-on's zips from the repository (making .venv-blender when needed).

A generated minimal extension exercises the builder on its own; the add-on itself is built by the other Blender
tests and by build_addon.sh here.
"""

import subprocess
import sys
import textwrap
import tomllib
import zipfile
from pathlib import Path

import pytest

bpy = pytest.importorskip("bpy")
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
import build_addon

MANIFEST = """\
schema_version = "1.0.0"
id = "ivlm_build_probe"
version = "0.0.1"
name = "IVLM build probe"
tagline = "Checks that build_addon.py makes an installable zip"
maintainer = "InteractVLM for Blender team"
type = "add-on"
blender_version_min = "4.2.0"
license = ["SPDX:GPL-3.0-or-later"]
"""

INIT = """\
import bpy

class IVLM_OT_build_probe(bpy.types.Operator):
    bl_idname = "ivlm.build_probe"
    bl_label = "Build probe"

    def execute(self, context):
        return {"FINISHED"}

def register():
    bpy.utils.register_class(IVLM_OT_build_probe)

def unregister():
    bpy.utils.unregister_class(IVLM_OT_build_probe)
"""


def _probe_source(tmp_path: Path) -> Path:
    src = tmp_path / "probe"
    src.mkdir()
    (src / "blender_manifest.toml").write_text(MANIFEST)
    (src / "__init__.py").write_text(textwrap.dedent(INIT))
    return src


def test_build_validates_packs_and_installs(tmp_path):
    zip_path = build_addon.build(_probe_source(tmp_path), tmp_path / "dist")
    assert zip_path.name == "ivlm_build_probe-0.0.1.zip"
    with zipfile.ZipFile(zip_path) as zf:
        assert {"blender_manifest.toml", "__init__.py"} <= set(zf.namelist())
    bpy.ops.extensions.package_install_files(filepath=str(zip_path), repo="user_default", enable_on_install=True)
    assert hasattr(bpy.ops.ivlm, "build_probe")
    assert bpy.ops.ivlm.build_probe() == {"FINISHED"}


def test_missing_manifest_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(build_addon.BuildError, match="blender_manifest.toml is missing"):
        build_addon.build(tmp_path / "empty", tmp_path / "dist")


def test_invalid_manifest_reports_the_tool_message(tmp_path):
    src = _probe_source(tmp_path)
    (src / "blender_manifest.toml").write_text(
        MANIFEST.replace('tagline = "Checks', 'tagline = "Checks.').replace('zip"', 'zip."')
    )
    with pytest.raises(build_addon.BuildError, match="refused"):
        build_addon.build(src, tmp_path / "dist", validate_only=True)


def test_build_addon_sh_builds_the_addon_zips(tmp_path):
    """The command the README gives (step 2). .venv-blender exists here (this test runs in it), so the script's
    set-up step finds it current and goes straight to the build."""
    manifest = tomllib.loads((ROOT / "blender_addon" / "blender_manifest.toml").read_text())
    command = [str(ROOT / "build_addon.sh"), "--output", str(tmp_path)]
    run = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    stem = f"{manifest['id']}-{manifest['version']}"
    assert sorted(p.name for p in tmp_path.glob("*.zip")) == [f"{stem}-legacy.zip", f"{stem}.zip"]
    with zipfile.ZipFile(tmp_path / f"{stem}.zip") as packed:
        assert {"blender_manifest.toml", "__init__.py", "core/messages.py", "blender/operators.py"} <= set(
            packed.namelist()
        )
    assert f"built {tmp_path / (stem + '.zip')} (extension)" in run.stdout
