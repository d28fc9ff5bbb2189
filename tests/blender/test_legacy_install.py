"""The add-on installs, works and uninstalls as a legacy add-on (bl_info, a folder under scripts/addons).

Built with build_addon.py like the extension, installed with Blender's legacy installer into a temporary script
directory, enabled through addon_utils under its folder name, then disabled and removed: everything it registered
must be gone again. Any enabled copy of the extension is disabled meanwhile (same operator idnames).
"""

from __future__ import annotations

import socket
import sys
import zipfile
from pathlib import Path

import pytest

bpy = pytest.importorskip("bpy")
import addon_utils

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
import legacy_addon
from legacy_addon import MODULE

import build_addon

OPERATORS = ("check_server", "estimate_contact", "cancel", "paint_contact", "reset_contact", "refit", "export")


def _registered() -> dict[str, bool]:
    """What the add-on registers, as Blender sees it."""
    seen = {f"ivlm.{name}": hasattr(bpy.types, f"IVLM_OT_{name}") for name in OPERATORS}
    seen["panel"] = hasattr(bpy.types, "IVLM_PT_main")
    seen["WindowManager.ivlm"] = "ivlm" in bpy.types.WindowManager.bl_rna.properties
    seen["Scene.ivlm"] = "ivlm" in bpy.types.Scene.bl_rna.properties
    seen["Object.ivlm_label"] = "ivlm_label" in bpy.types.Object.bl_rna.properties
    return seen


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def extension_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_addon.build(ROOT / "blender_addon", tmp_path_factory.mktemp("dist"))


def test_the_extension_zip_itself_is_not_a_legacy_zip(extension_zip: Path, tmp_path: Path) -> None:
    """Why build_addon also writes a legacy zip: Blender's legacy installer refuses a zip with __init__.py at its top."""
    with zipfile.ZipFile(extension_zip) as zf:
        assert "__init__.py" in zf.namelist()
    with legacy_addon.script_directory(tmp_path) as target, pytest.raises(RuntimeError, match="packaged incorrectly"):
        bpy.ops.preferences.addon_install(filepath=str(extension_zip), target=target)
    assert not (tmp_path / "addons" / MODULE).exists()


def test_install_enable_use_disable_remove(extension_zip: Path, tmp_path: Path) -> None:
    bpy.ops.wm.read_homefile(use_empty=True)
    with legacy_addon.other_copies_disabled(), legacy_addon.script_directory(tmp_path / "scripts") as target:
        assert not any(_registered().values()), "another copy of the add-on is still registered"
        folder = legacy_addon.install(extension_zip.with_name(extension_zip.stem + "-legacy.zip"), target)
        assert (folder / "__init__.py").is_file() and (folder / "blender" / "operators.py").is_file()

        try:
            errors: list[Exception] = []
            module = addon_utils.enable(MODULE, default_set=True, handle_error=errors.append)
            assert not errors and module is not None, errors
            assert Path(module.__file__).resolve() == (folder / "__init__.py").resolve()  # the installed copy
            assert addon_utils.check(MODULE) == (True, True)
            info = addon_utils.module_bl_info(module)
            assert info["name"] == "InteractVLM Contact" and info["blender"] == (4, 2, 0)

            assert all(_registered().values()), _registered()
            assert bpy.ops.ivlm.estimate_contact.get_rna_type().identifier == "IVLM_OT_estimate_contact"
            prefs = bpy.context.preferences.addons[MODULE].preferences
            assert type(prefs).__name__ == "IVLM_AddonPreferences" and type(prefs).bl_idname == MODULE
            assert prefs.server_url == "http://127.0.0.1:8765" and prefs.connect_timeout == pytest.approx(0.5)

            # the operators find the preferences under the legacy module name: Check Server uses the URL set there
            prefs.server_url = f"http://127.0.0.1:{_closed_port()}"
            with pytest.raises(RuntimeError, match="not running"):
                bpy.ops.ivlm.check_server()
            assert "not running" in bpy.context.window_manager.ivlm.server_status
            assert not bpy.ops.ivlm.estimate_contact.poll()  # an empty scene: no photo, no object

            addon_utils.disable(MODULE, default_set=True, handle_error=errors.append)
            assert not errors, errors
            assert MODULE not in bpy.context.preferences.addons
            assert addon_utils.check(MODULE) == (False, False)
            leftovers = [name for name, present in _registered().items() if present]
            assert not leftovers, f"still registered after disabling: {leftovers}"

            legacy_addon.remove()
            assert not folder.exists()
            assert MODULE not in {m.__name__ for m in addon_utils.modules()}
        finally:  # a failure above must not leave this copy enabled, or installed, beside the extension
            if MODULE in bpy.context.preferences.addons:
                addon_utils.disable(MODULE, default_set=True)
            if folder.exists():
                legacy_addon.remove()
