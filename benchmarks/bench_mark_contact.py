"""How long one Mark Contact click takes on a body-sized mesh (about 10,500 vertices, as SMPL-X's 10,475), against
what the Paint button already does (enter Weight Paint on the mesh and leave it again), side by side in one process.

    .venv-blender/bin/python benchmarks/bench_mark_contact.py [--clicks 20] [--radius 0.05]

Starting a session (pressing Mark) builds the mesh's face graph and saves its weights for Esc; it is reported apart. The click runs the
same `mark_along_ray` the modal operator calls, on rays from the camera side at spread points of the mesh.
Prints the figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import bpy
from mathutils import Vector

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
ADDON = "blender_addon"


def _body_sized_mesh() -> bpy.types.Object:
    """A UV sphere of 10,370 vertices (128 segments, 82 rings), 0.3 m radius, 2 m in front of the origin (+Y)."""
    bpy.ops.wm.read_homefile(use_empty=True)
    bpy.ops.mesh.primitive_uv_sphere_add(segments=128, ring_count=82, radius=0.3, location=(0.0, 2.0, 0.0))
    obj = bpy.context.active_object
    obj.vertex_groups.new(name="contact_chair")
    return obj


def _paint_toggle(obj: bpy.types.Object) -> float:
    start = time.perf_counter()
    bpy.ops.object.mode_set(mode="WEIGHT_PAINT")
    bpy.ops.object.mode_set(mode="OBJECT")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clicks", type=int, default=20)
    parser.add_argument("--radius", type=float, default=0.05)
    args = parser.parse_args()
    import addon_utils

    addon_utils.enable(ADDON, default_set=True)
    from blender_addon.blender import mark

    obj = _body_sized_mesh()
    targets = [mark.MarkTarget(obj, "contact_chair")]
    origin = Vector((0.0, 0.0, 0.0))
    aims = [Vector((0.1 * (i % 5 - 2) / 2, 1.8, 0.1 * (i // 5 % 5 - 2) / 2)) for i in range(args.clicks)]

    start = time.perf_counter()
    mark.MarkSession.start(targets)
    first = time.perf_counter() - start
    clicks, toggles = [], []
    for aim in aims:  # interleaved, so both see the same machine load
        start = time.perf_counter()
        outcome = mark.mark_along_ray(bpy.context, targets, origin, aim, args.radius)
        clicks.append(time.perf_counter() - start)
        assert outcome is not None and outcome.changed > 0
        toggles.append(_paint_toggle(obj))
    addon_utils.disable(ADDON, default_set=True)

    click_ms, toggle_ms = 1000 * statistics.median(clicks), 1000 * statistics.median(toggles)
    print(f"mesh: {len(obj.data.vertices)} vertices, {len(obj.data.polygons)} faces; radius {args.radius} m")
    print(f"pressing Mark (face graph built, weights saved for Esc): {1000 * first:.1f} ms")
    print(f"a click: median {click_ms:.1f} ms, max {1000 * max(clicks):.1f} ms over {len(clicks)} clicks")
    print(f"Paint's Weight Paint enter + leave: median {toggle_ms:.1f} ms")
    print(f"ratio click / paint toggle: {click_ms / toggle_ms:.2f}")


if __name__ == "__main__":
    main()
