"""build_addon.py packs an extension with Blender's own tool, and the zip installs in real Blender.

The real add-on arrives with its own issue; here a generated minimal extension exercises the builder,
so the build path is known to work before the add-on needs it.
"""

import sys
import textwrap
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
