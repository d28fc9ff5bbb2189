"""`ivlm`: the pipeline from the command line.

    ivlm demo [--out DIR] [--scene sit_chair|hold_mug|foot_on_ball] [--seed N]
        Render -> Localize -> Lift on generated demo assets (what ./run.sh runs until the server exists).
    ivlm assets [--out DIR] [--scenes N]
        Writes the demo assets: synthetic body models, object meshes, synthetic photos with ground truth.
    ivlm render-object MESH [--out DIR] [--size 1024]
        InteractVLM's 4 object views of a mesh (what SAM sees), flat overlays and pixel maps.
    ivlm canonical-views
        The canonical body's 4 views and pixel maps: InteractVLM's shipped files, or regenerated.
    ivlm convert-release RELEASE_DIR OUT_DIR [--dtype bfloat16]
        One-time conversion of an InteractVLM release (.bin pickles) to safetensors in our layout.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ivlm_core.errors import IVLMError


def _cmd_demo(args: argparse.Namespace) -> None:
    from ivlm_core.demo.contact_demo import run_contact_demo

    summary = run_contact_demo(Path(args.out), args.scene, args.seed, args.device)
    print(json.dumps({k: summary[k] for k in ("scene", "demo_model", "f1_vs_ground_truth")}, indent=2))
    print(f"DEMO outputs written to {Path(args.out).resolve()} (see summary.json and renders/).")


def _cmd_assets(args: argparse.Namespace) -> None:
    import trimesh

    from ivlm_core.demo.body_model import ensure_synthetic_body_models
    from ivlm_core.demo.objects import DEMO_OBJECTS
    from ivlm_core.demo.scenes import SCENE_KINDS, make_scene, save_scene

    out = Path(args.out)
    models = ensure_synthetic_body_models(out / "models")
    print(f"synthetic body models (DEMO): {models.root}")
    objects = out / "objects"
    objects.mkdir(parents=True, exist_ok=True)
    for key, build in DEMO_OBJECTS.items():
        obj = build()
        trimesh.Trimesh(obj.mesh.vertices, obj.mesh.faces, process=False).export(objects / f"{obj.name}.obj")
        print(f"object {obj.name}: {obj.mesh.num_vertices} vertices, {obj.mesh.num_faces} faces")
    for i in range(args.scenes):
        kind = SCENE_KINDS[i % len(SCENE_KINDS)]
        folder = save_scene(make_scene(kind, i // len(SCENE_KINDS)), out / "scenes")
        print(f"scene {folder.name}")


def _cmd_render_object(args: argparse.Namespace) -> None:
    from PIL import Image

    from ivlm_core.lift.pixel_maps import PixelMaps
    from ivlm_core.mesh import load_mesh
    from ivlm_core.render.canonical import render_object_views

    mesh = load_mesh(args.mesh)
    views = render_object_views(mesh, args.size, args.device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, sam, overlay in zip(views.view_set.names, views.sam_images, views.overlay_images):
        Image.fromarray(sam).save(out / f"obj_render_color_{name}.png")
        Image.fromarray(overlay).save(out / f"obj_render_grey_{name}.png")
    PixelMaps.from_fragments(views.fragments, views.faces, views.num_vertices, views.view_set.names).save(out)
    print(f"{mesh.name}: {mesh.num_vertices} vertices; 4 views written to {out.resolve()}")


def _cmd_canonical_views(args: argparse.Namespace) -> None:
    from ivlm_core.lift.canonical_body import load_canonical_body_views

    views = load_canonical_body_views(device=args.device)
    flag = " (DEMO: synthetic body)" if views.is_demo else ""
    print(f"canonical body views: {views.origin}{flag}, folder {views.folder}")


def _cmd_convert_release(args: argparse.Namespace) -> None:
    import torch

    from ivlm_core.localize.checkpoint import convert_release

    out = convert_release(Path(args.release), Path(args.out), dtype=getattr(torch, args.dtype))
    print(f"converted {args.release} -> {out} ({args.dtype}); load it like the release folder.")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ivlm", description="InteractVLM for Blender: pipeline commands.")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="Render -> Localize -> Lift on generated demo assets")
    demo.add_argument("--out", default="demo_output", help="output folder (default: demo_output)")
    demo.add_argument("--scene", default="sit_chair", choices=("sit_chair", "hold_mug", "foot_on_ball"))
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    demo.set_defaults(func=_cmd_demo)

    assets = sub.add_parser("assets", help="write the generated demo assets to a folder")
    assets.add_argument("--out", default="demo_assets")
    assets.add_argument("--scenes", type=int, default=3, help="number of synthetic photos")
    assets.set_defaults(func=_cmd_assets)

    render = sub.add_parser("render-object", help="InteractVLM's 4 object views and pixel maps of a mesh file")
    render.add_argument("mesh", help="OBJ, PLY, STL, OFF or GLB file")
    render.add_argument("--out", default="object_views")
    render.add_argument("--size", type=int, default=1024)
    render.add_argument("--device", default="cpu")
    render.set_defaults(func=_cmd_render_object)

    canonical = sub.add_parser("canonical-views", help="locate or regenerate the canonical body views")
    canonical.add_argument("--device", default="cpu")
    canonical.set_defaults(func=_cmd_canonical_views)

    convert = sub.add_parser("convert-release", help="convert an InteractVLM release to safetensors for fast starts")
    convert.add_argument("release", help="the unzipped release folder (config.json, pytorch_model-*.bin, tokenizer)")
    convert.add_argument("out", help="output folder")
    convert.add_argument("--dtype", default="bfloat16", choices=("bfloat16", "float16", "float32"))
    convert.set_defaults(func=_cmd_convert_release)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except IVLMError as exc:
        print(f"error [{exc.code}]: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
