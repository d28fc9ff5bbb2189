"""Installing the add-on the legacy way (a folder under `<scripts>/addons`, found through its bl_info), for tests.

Everything goes into a temporary script directory registered in the preferences, so no test writes into the
user's Blender folders, whether or not BLENDER_USER_RESOURCES points elsewhere (./test.sh sets it; a direct
`pytest tests/blender/...` does not).
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import addon_utils
import bpy

ROOT = Path(__file__).resolve().parents[2]
# A legacy add-on's module is its folder's name; the extension's id is the natural one to use.
MODULE = tomllib.loads((ROOT / "blender_addon" / "blender_manifest.toml").read_text())["id"]
SCRIPT_DIRECTORY = "ivlm-legacy-test"


def _raise(exc: Exception) -> None:
    raise exc


@contextlib.contextmanager
def script_directory(path: Path) -> Iterator[str]:
    """`path` as an extra script directory for the duration; yields its name (addon_install's `target`)."""
    directories = bpy.context.preferences.filepaths.script_directories
    entry = directories.new()
    entry.name = SCRIPT_DIRECTORY
    entry.directory = str(path)
    bpy.utils.refresh_script_paths()  # puts <path>/addons on sys.path, where addon_utils imports from
    try:
        yield entry.name
    finally:
        directories.remove(directories[SCRIPT_DIRECTORY])
        bpy.utils.refresh_script_paths()


@contextlib.contextmanager
def other_copies_disabled() -> Iterator[list[str]]:
    """Disables every enabled copy of this add-on (e.g. the extension test_addon.py installs) for the duration.

    Two enabled copies would register the same operator idnames and `WindowManager.ivlm`, and disabling one would
    take the other's properties with it. Yields the module names; they are enabled again afterwards.
    """
    names = [addon.module for addon in bpy.context.preferences.addons if addon.module.rsplit(".", 1)[-1] == MODULE]
    for name in names:
        addon_utils.disable(name, default_set=True, handle_error=_raise)
    try:
        yield names
    finally:
        for name in names:
            addon_utils.enable(name, default_set=True, handle_error=_raise)


def install(zip_path: Path, target: str) -> Path:
    """Installs with Blender's legacy installer into the script directory `target`; returns the add-on's folder."""
    assert bpy.ops.preferences.addon_install(filepath=str(zip_path), target=target) == {"FINISHED"}
    directory = bpy.context.preferences.filepaths.script_directories[target].directory
    return Path(directory) / "addons" / MODULE


def remove() -> None:
    """Removes the add-on with Blender's own operator, and forgets its modules.

    The operator redraws the area it runs in, and headless bpy has none in its context unless one is passed.
    Blender keeps a disabled add-on's modules imported; they are dropped so a later install imports afresh.
    """
    area = bpy.context.window.screen.areas[0]
    with bpy.context.temp_override(area=area):
        assert bpy.ops.preferences.addon_remove(module=MODULE) == {"FINISHED"}
    for name in [n for n in sys.modules if n == MODULE or n.startswith(MODULE + ".")]:
        del sys.modules[name]


@contextlib.contextmanager
def enabled_legacy_addon(extension_zip: Path, tmp_dir: Path) -> Iterator[str]:
    """The add-on installed the legacy way and enabled, alone, for the duration; yields its module name."""
    with other_copies_disabled(), script_directory(tmp_dir / "scripts") as target:
        folder = install(extension_zip.with_name(extension_zip.stem + "-legacy.zip"), target)
        try:
            addon_utils.enable(MODULE, default_set=True, handle_error=_raise)
            yield MODULE
        finally:
            addon_utils.disable(MODULE, default_set=True, handle_error=_raise)
            remove()
            shutil.rmtree(folder, ignore_errors=True)
