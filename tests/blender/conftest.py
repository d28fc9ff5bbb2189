"""Fixtures of the add-on tests that run against the stand-in server (fake_server.py): the add-on installed the
legacy way and enabled once per module (`addon`), and a stand-in server with the preferences reset (`server`).
test_addon.py, against the real server, has its own `addon` and `server`.

Imports of bpy and of the helpers that need it happen inside the fixtures: this file is loaded by any pytest run
that reaches tests/blender, including one without Blender, where the test modules skip themselves.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def addon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    """The add-on's modules (operators, build, gather, ...) once enabled, and its preferences."""
    bpy = pytest.importorskip("bpy")
    sys.path.insert(0, str(ROOT))
    import legacy_addon

    import build_addon

    tmp = tmp_path_factory.mktemp("behaviour")
    extension_zip = build_addon.build(ROOT / "blender_addon", tmp / "dist")
    with legacy_addon.enabled_legacy_addon(extension_zip, tmp) as module:
        modules = {name: sys.modules[f"{module}.blender.{name}"] for name in ("operators", "build", "gather", "export")}
        prefs = bpy.context.preferences.addons[module].preferences
        yield SimpleNamespace(**modules, prefs=prefs, module=module)


@pytest.fixture()
def server(addon: SimpleNamespace) -> Iterator[object]:
    """A stand-in server (fake_server.FakeServer) the preferences point at, with the other preferences at their
    defaults."""
    import fake_server

    with fake_server.running() as httpd:
        addon.prefs.server_url = httpd.url
        addon.prefs.token = ""
        addon.prefs.object_mode = "DUPLICATE"
        addon.prefs.set_scene_camera = True
        addon.prefs.rig_body = True
        addon.prefs.body_threshold = addon.prefs.object_threshold = 0.5
        yield httpd
    addon.operators.cancel_all()
