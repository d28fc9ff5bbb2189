"""From result received to geometry in the scene: the add-on's build step in real Blender (bpy), for one body and
a 50k-vertex object (also with the body rigged), against a naive build (`from_pydata`, one `VertexGroup.add` per vertex) in the same run.

    .venv-blender/bin/python benchmarks/bench_addon_build.py [--repeats 5]

A real DEMO server (started with the main .venv) answers one Estimate Contact job for the 50k-vertex sphere; the
timed part is decoding that result and building body, groups, attributes, placed object and camera. Prints the
figures; asserts nothing. Target: <= 100 ms.
"""

from __future__ import annotations

import argparse
import array
import statistics
import sys
import tempfile
import time
from pathlib import Path

import bpy

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from server.process import launch

ADDON = "blender_addon"


def _scene(folder: Path) -> tuple[bpy.types.Object, bpy.types.Image]:
    bpy.ops.wm.read_homefile(use_empty=True)
    image = bpy.data.images.new("photo", 320, 240)
    image.filepath_raw = str(folder / "photo.png")
    image.file_format = "PNG"
    image.save()
    bpy.ops.mesh.primitive_uv_sphere_add(radius=0.11, segments=250, ring_count=200)
    ball = bpy.context.active_object
    ball.name = "sports_ball"
    return ball, bpy.data.images.load(str(folder / "photo.png"))


def _naive_body(result: dict, codec, frames) -> None:
    """The straightforward way, body only: from_pydata with Python lists, one VertexGroup.add per vertex."""
    vertices, _ = codec.decode(result["body"]["vertices"])
    faces, _ = codec.decode(result["body"]["faces"])
    world = frames.cv_points_to_world(vertices)
    mesh = bpy.data.meshes.new("naive body")
    mesh.from_pydata(
        [world[i : i + 3] for i in range(0, len(world), 3)], [], [faces[i : i + 3] for i in range(0, len(faces), 3)]
    )
    body = bpy.data.objects.new("naive body", mesh)
    bpy.context.scene.collection.objects.link(body)
    group = body.vertex_groups.new(name="contact")
    for i, w in enumerate(codec.decode(result["objects"][0]["body_contact"])[0]):
        if w > 0.5:
            group.add([i], w, "REPLACE")


def _our_body(result: dict, codec, frames, build) -> None:
    """Ours, the same body-only work: foreach_set mesh, batched group (plus its prediction attribute)."""
    vertices, _ = codec.decode(result["body"]["vertices"])
    faces, _ = codec.decode(result["body"]["faces"])
    mesh = build.mesh_from_arrays("body", array.array("f", frames.cv_points_to_world(vertices)), faces)
    body = bpy.data.objects.new("body", mesh)
    bpy.context.scene.collection.objects.link(body)
    build.set_contact(body, "contact", codec.decode(result["objects"][0]["body_contact"])[0], 0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    import addon_utils

    addon_utils.enable(ADDON, default_set=True)
    from blender_addon.blender import build, gather
    from blender_addon.core import codec, frames
    from blender_addon.core.client import ServerClient
    from blender_addon.core.jobs import JobRunner
    from blender_addon.core.protocol import API_SCHEMA_VERSION

    with tempfile.TemporaryDirectory() as tmp, tempfile.TemporaryDirectory() as no_models:
        folder = Path(tmp)
        ball, image = _scene(folder)
        server = launch(
            folder / "data", ["--demo"], {"IVLM_MODELS_DIR": no_models}, python=str(ROOT / ".venv/bin/python")
        )
        try:
            import base64

            source = gather.capture_object(ball, bpy.context.evaluated_depsgraph_get(), True)
            photo = (folder / "photo.png").read_bytes()
            body = {
                "schema_version": API_SCHEMA_VERSION,
                "image": base64.b64encode(photo).decode(),
                "objects": [source.request_entry()],
                "options": {"stages": ["body"]},
            }
            runner = JobRunner(ServerClient(server.url, read_timeout=120), body)
            assert runner.run_blocking(timeout_s=600) == "done", runner.message
            result = runner.result
        finally:
            server.stop()
        print(
            f"object: {len(ball.data.vertices):,} vertices; body: 10,475 vertices; "
            f"object contact {'present' if result['objects'][0]['object_contact'] else 'absent'}"
        )
        choice = gather.PhotoChoice(image.session_uid, image.name, str(folder / "photo.png"), "photo.png")
        submitted = gather.Submitted(choice, photo, ".png", [source])
        everything, rigged, ours, naive = [], [], [], []
        for _ in range(args.repeats):
            for rig_body, times in ((False, everything), (True, rigged)):
                start = time.perf_counter()
                build.build_result(bpy.context, result, submitted, build.BuildOptions(rig_body=rig_body))
                times.append(time.perf_counter() - start)
            start = time.perf_counter()
            _our_body(result, codec, frames, build)
            ours.append(time.perf_counter() - start)
            start = time.perf_counter()
            _naive_body(result, codec, frames)
            naive.append(time.perf_counter() - start)
    me, mr, mo, mn = (1000 * statistics.median(t) for t in (everything, rigged, ours, naive))
    print(
        f"result -> scene, everything (body, 50k object, groups, attributes, colours, camera): median {me:.1f} ms"
        f" over {args.repeats} (target <= 100 ms)"
    )
    print(f"the same with the body rigged (55-bone armature, skinning groups, modifier): median {mr:.1f} ms")
    print(
        f"body mesh + body contact group: ours {mo:.1f} ms, naive (from_pydata, per-vertex add) {mn:.1f} ms: "
        f"{mn / mo:.1f}x"
    )


if __name__ == "__main__":
    main()
