"""How long Estimate Contact's modal timer tick takes while the server is slow, against what one tick would take if
it waited on the network (a blocking status request to the same server), side by side in one process; and how
long a request to a stalled server takes to fail, against the read timeout it was given.

    .venv-blender/bin/python benchmarks/bench_addon_modal.py [--delay 0.3] [--ticks 40]

The server is the tests' stand-in (tests/blender/fake_server.py) with every answer delayed by --delay seconds.
Prints the figures; asserts nothing (the tests check the structure: no network call from modal()).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import bpy

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "blender"))
import fake_server

ADDON = "blender_addon"


def _scene(folder: Path) -> None:
    bpy.ops.wm.read_homefile(use_empty=True)
    image = bpy.data.images.new("photo", 64, 48)
    image.filepath_raw = str(folder / "photo.png")
    image.file_format = "PNG"
    image.save()
    photo = bpy.data.objects.new("photo", None)
    photo.empty_display_type = "IMAGE"
    photo.data = image
    bpy.context.scene.collection.objects.link(photo)
    bpy.ops.mesh.primitive_cube_add(size=0.3)


def _modal_ticks(operators, ticks: int) -> list[float]:
    """Seconds per modal() call over `ticks` timer events while a job runs (ticks 10 ms apart)."""
    timings: list[float] = []

    class IVLMBENCH_OT_ticks(operators._JobOperator):
        bl_idname = "ivlm_bench.ticks"
        bl_label = "Tick benchmark"
        kind = operators.IVLM_OT_estimate_contact.kind
        _prepare = operators.IVLM_OT_estimate_contact._prepare

        def execute(self, context: bpy.types.Context) -> set[str]:
            body, info = self._prepare(context)
            operators._start(context, self.kind, body, info)
            timer = SimpleNamespace(type="TIMER")
            for _ in range(ticks):
                start = time.perf_counter()
                self.modal(context, timer)
                timings.append(time.perf_counter() - start)
                time.sleep(0.01)
            operators._JOB["job"].cancel()
            operators._JOB["job"].join(30)
            self.modal(context, timer)
            return {"FINISHED"}

    bpy.utils.register_class(IVLMBENCH_OT_ticks)
    try:
        bpy.ops.ivlm_bench.ticks()
    finally:
        bpy.utils.unregister_class(IVLMBENCH_OT_ticks)
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delay", type=float, default=0.3, help="seconds added to every server answer")
    parser.add_argument("--ticks", type=int, default=40)
    args = parser.parse_args()
    import addon_utils

    addon_utils.enable(ADDON, default_set=True)
    from blender_addon.blender import operators
    from blender_addon.core.client import ServerClient
    from blender_addon.core.protocol import ServerError

    prefs = bpy.context.preferences.addons[ADDON].preferences
    with tempfile.TemporaryDirectory() as tmp, fake_server.running() as server:
        server.finish.clear()
        server.delay_s = args.delay
        prefs.server_url = server.url
        _scene(Path(tmp))
        ticks = _modal_ticks(operators, args.ticks)
        client = ServerClient(server.url, read_timeout=30.0)
        blocking = []
        for _ in range(5):
            start = time.perf_counter()
            client.status(server.job_id())
            blocking.append(time.perf_counter() - start)

        server.delay_s = 0.0
        server.gate.clear()  # stalled: nothing is answered until the gate opens again
        stalled = []
        for _ in range(3):
            start = time.perf_counter()
            try:
                ServerClient(server.url, read_timeout=0.3).status(server.job_id())
            except ServerError:
                pass
            stalled.append(time.perf_counter() - start)
        server.gate.set()
    addon_utils.disable(ADDON, default_set=True)
    tick_ms = [1000 * t for t in ticks]
    block_ms = 1000 * statistics.median(blocking)
    print(f"server answers delayed by {1000 * args.delay:.0f} ms; {len(ticks)} modal() calls while a job ran")
    print(f"modal() tick: median {statistics.median(tick_ms):.3f} ms, max {max(tick_ms):.3f} ms")
    print(
        f"one blocking status request (what a tick that waited would take): median {block_ms:.1f} ms "
        f"= {block_ms / statistics.median(tick_ms):.0f}x the median tick, {block_ms / max(tick_ms):.0f}x the max"
    )
    print(
        f"a request to a stalled server with read timeout 300 ms fails after: median "
        f"{1000 * statistics.median(stalled):.0f} ms (ratio to the timeout {statistics.median(stalled) / 0.3:.2f})"
    )


if __name__ == "__main__":
    main()
