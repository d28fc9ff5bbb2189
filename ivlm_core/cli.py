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
ivlm reconstruct (IMAGE | --images DIR | --demo-scene KIND) --object MESH:LABEL [...] [--out DIR]
                 [--no-contact-model]
    Perceive -> Render -> Localize -> Lift -> Fit: body, placed objects and contacts, written per image.
ivlm serve [--host 127.0.0.1] [--port 8765] [--models DIR] [--data-dir DIR] [--demo | --no-demo]
           [--no-contact-model] [...]
    The local inference server the Blender add-on talks to (what ./run.sh starts).
ivlm doctor [--models DIR]
    Which model files are present and missing, where to get each and where to put it.
ivlm plan [--gpu-memory-gb GB] [--device cuda|cpu] [--models DIR | --nominal] [--json]
    Every model configuration with the memory it needs, which fit the budget, and the one chosen.
ivlm fetch-public-models [--models DIR]
    Downloads the public (non-licensed) models from the Hugging Face hub; needs internet.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ivlm_core.errors import IVLMError

if TYPE_CHECKING:
    from ivlm_core.pipeline.reconstruct import ContactPipeline


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
    for build in DEMO_OBJECTS.values():
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


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


def _parse_object(spec: str):
    from ivlm_core.mesh import load_mesh
    from ivlm_core.pipeline.reconstruct import ObjectInput

    path, sep, label = spec.rpartition(":")
    if not sep or not path or not label.strip():
        from ivlm_core.errors import BadInputError

        raise BadInputError(f"--object {spec!r} is not MESH:LABEL", "Write e.g. --object chair.obj:chair")
    return ObjectInput(label.strip(), load_mesh(Path(path)))


def _cmd_reconstruct(args: argparse.Namespace) -> None:
    import numpy as np
    from PIL import Image, ImageOps

    from ivlm_core.allocator import keep_freed_memory
    from ivlm_core.errors import BadInputError
    from ivlm_core.frames import transform_points
    from ivlm_core.pipeline.outputs import save_result
    from ivlm_core.pipeline.reconstruct import ObjectInput, RunOptions

    jobs: list[tuple[str, np.ndarray, Image.Image | None, RunOptions, list]] = []
    objects = [_parse_object(spec) for spec in args.object]
    base = RunOptions(focal_px=args.focal, person_box=tuple(args.person_box) if args.person_box else None)
    if args.demo_scene:
        import io

        from ivlm_core.demo.scene_truth import tagged_png
        from ivlm_core.demo.scenes import make_scene

        scene = make_scene(args.demo_scene, args.seed)
        tagged = Image.open(io.BytesIO(tagged_png(scene)))  # as `ivlm assets` saves it: the demo recognises it
        options = base
        if args.scene_body:  # the tiny demo perception cannot fit a body; the scene's own body stands in
            options = RunOptions(
                focal_px=float(scene.intrinsics[0, 0]),
                body_vertices=transform_points(scene.cv_camera_from_world, scene.body_vertices),
            )
        jobs.append(
            (scene.name, scene.image, tagged, options, objects or [ObjectInput(scene.label, scene.object_mesh)])
        )
    else:
        files = (
            [Path(args.image)]
            if args.image
            else sorted(p for p in Path(args.images).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        )
        if not files:
            raise BadInputError(f"no images found in {args.images}", f"Put {', '.join(IMAGE_SUFFIXES)} files there.")
        if not objects:
            raise BadInputError("no --object given", "Add --object MESH:LABEL for each object in the photo.")
        for path in files:
            try:
                pil = Image.open(path)
                pil.load()
            except (OSError, ValueError) as exc:
                raise BadInputError(f"cannot read image {path}: {exc}", "Use a PNG or JPEG file.") from exc
            upright = ImageOps.exif_transpose(pil)  # as the server does: the photo as phones and viewers show it
            jobs.append((path.stem, np.asarray(upright.convert("RGB")), pil, base, objects))

    pipeline = _reconstruct_pipeline(args)
    keep_freed_memory()  # as the server's worker: the images and stages reuse the memory freed
    for name, image, photo, options, objs in jobs:
        print(f"{name}:")
        result = pipeline.run(
            image, objs, options, pil_image=photo, progress=lambda stage, f, msg: print(f"  [{f:4.0%}] {stage}: {msg}")
        )
        out = save_result(
            result,
            Path(args.out) / name,
            {o.label: o.mesh for o in objs},
            np.asarray(pipeline.body.model.faces),
            pipeline.models_used(),
            pipeline.part_sources(),
        )
        for note in result.notes:
            print(f"  note: {note}")
        for o in result.objects:
            print(f"  {o.label}: {o.placement.status} ({o.placement.reason})")
        print(f"  wrote {out}" + ("  [DEMO]" if result.demo else ""))


def _reconstruct_pipeline(args: argparse.Namespace) -> ContactPipeline:
    """The pipeline `reconstruct` runs: the user's models (or the DEMO stand-ins with --demo / --demo-scene), with
    no contact model at all under --no-contact-model (body fit and placement in view only: contacts are painted)."""
    from ivlm_core.pipeline import parts
    from ivlm_core.pipeline.reconstruct import ContactPipeline

    demo = bool(args.demo or args.demo_scene)
    root = None if demo or not args.models else Path(args.models)
    if not args.no_contact_model:
        return (
            ContactPipeline.demo_pipeline(args.device)
            if demo
            else ContactPipeline.from_models_dir(root, device=args.device)
        )
    present = parts.STAND_IN if demo else parts.YOURS
    sources: dict[str, str] = {part: parts.ABSENT if part in parts.CONTACT_PARTS else present for part in parts.PARTS}
    return ContactPipeline.from_parts(root, sources, device=args.device)


def _cmd_serve(args: argparse.Namespace) -> None:
    from server.main import serve
    from server.settings import MIB, ServerSettings, default_data_dir

    settings = ServerSettings(
        host=args.host,
        port=args.port,
        models_dir=Path(args.models) if args.models else None,
        data_dir=Path(args.data_dir) if args.data_dir else default_data_dir(),
        device=args.device,
        demo=args.demo,
        queue_capacity=args.queue_capacity,
        max_request_bytes=int(args.max_request_mb * MIB),
        max_image_pixels=args.max_image_pixels,
        job_ttl_s=args.job_ttl_hours * 3600.0,
        gpu_memory_gb=args.gpu_memory_gb,
        convert_on_start=args.convert_on_start,
        contact_model=not args.no_contact_model,
    )
    if args.token:
        settings.token = args.token
    serve(settings)


def _cmd_doctor(args: argparse.Namespace) -> None:
    from ivlm_core import paths
    from ivlm_core.doctor import check_model_files, check_optional_model_files, format_report

    root = Path(args.models) if args.models else paths.models_dir()
    statuses = check_model_files(root)
    optional = check_optional_model_files(root)
    if args.json:
        items = {"items": [s.to_dict() for s in statuses], "optional_items": [s.to_dict() for s in optional]}
        print(json.dumps({"models_dir": str(root), **items}, indent=2))
    else:
        print(format_report(statuses, root, optional))


def _cmd_plan(args: argparse.Namespace) -> None:
    from ivlm_core import paths
    from ivlm_core.pipeline import plan as memory_plan

    root = Path(args.models) if args.models else paths.models_dir()
    nominal = args.nominal or not any(
        paths.interactvlm_release_dir(r, root).is_dir() for c in memory_plan.CONFIGURATIONS for r in c.releases
    )
    plans = memory_plan.plan_all(args.device, root=None if nominal else root, nominal=nominal)
    budget: int | None  # bytes; None: no limit
    if args.gpu_memory_gb is not None:
        budget, source = int(args.gpu_memory_gb * memory_plan.GB), f"--gpu-memory-gb {args.gpu_memory_gb:g}"
    elif args.device.startswith("cuda"):
        import torch

        if torch.cuda.is_available():
            budget, source = memory_plan.detect_budget(args.device, None, demo=False)
        else:
            budget, source = None, "no CUDA GPU here and no --gpu-memory-gb: no limit"
    else:
        budget, source = memory_plan.detect_budget("cpu", None, demo=False)
    if nominal:
        source += "; release shapes (no release folders read)"
    try:
        choice = memory_plan.choose(plans, budget, source, require_available=not nominal)
    except IVLMError as exc:
        choice = None
        failure = exc
    if args.json:
        print(memory_plan.plan_json(plans, choice))
    else:
        print(memory_plan.format_plans(plans, budget, source, choice.plan if choice else None))
        print()
        print(
            f"Chosen: {choice.plan.configuration.name}: {choice.reason}"
            if choice
            else f"error [{failure.code}]: {failure.message}"
        )


def _cmd_fetch_public_models(args: argparse.Namespace) -> None:
    from ivlm_core import paths
    from ivlm_core.doctor import NOT_ON_HUB, fetch_public_models

    root = Path(args.models) if args.models else paths.models_dir()
    for folder in fetch_public_models(root):
        print(f"  wrote {folder}")
    for name, where in NOT_ON_HUB.items():
        print(f"  not on the hub, get it by hand: {root / name}/ <- {where}")


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

    rec = sub.add_parser("reconstruct", help="photo + object meshes -> body, placed objects and contacts")
    source = rec.add_mutually_exclusive_group(required=True)
    source.add_argument("image", nargs="?", help="a photo")
    source.add_argument("--images", help="a folder of photos (each gets its own output folder)")
    source.add_argument(
        "--demo-scene", choices=("sit_chair", "hold_mug", "foot_on_ball"), help="a generated DEMO scene"
    )
    rec.add_argument("--object", action="append", default=[], metavar="MESH:LABEL", help="object mesh file and label")
    rec.add_argument("--out", default="reconstruct_output")
    rec.add_argument("--focal", type=float, help="focal length in pixels (default: EXIF, else a 55 degree view)")
    rec.add_argument(
        "--person-box",
        type=float,
        nargs=4,
        metavar=("X0", "Y0", "X1", "Y1"),
        help="with several people: the person to use, by box in pixels (default: the one using the object)",
    )
    rec.add_argument("--models", help="models folder (default: $IVLM_MODELS_DIR or ~/ivlm-models)")
    rec.add_argument("--demo", action="store_true", help="use the generated DEMO models instead of real ones")
    rec.add_argument(
        "--no-contact-model",
        action="store_true",
        help="load no contact model (no language model, no InteractVLM files needed): the body is fitted and each "
        "object put upright where its mask is, with no contacts (paint them, then refit)",
    )
    rec.add_argument("--seed", type=int, default=0, help="seed of the demo scene")
    rec.add_argument(
        "--scene-body", action="store_true", help="demo scene: supply its true body instead of fitting one"
    )
    rec.add_argument("--device", default="cpu")
    rec.set_defaults(func=_cmd_reconstruct)

    srv = sub.add_parser("serve", help="run the local inference server for the Blender add-on")
    srv.add_argument("--host", default="127.0.0.1", help="address to bind (anything but loopback needs a token)")
    srv.add_argument("--port", type=int, default=8765, help="port (0 picks a free one; the banner says which)")
    srv.add_argument("--models", help="models folder (default: $IVLM_MODELS_DIR or ~/ivlm-models)")
    srv.add_argument("--data-dir", help="where jobs are kept (default: $IVLM_DATA_DIR or ~/.local/share/ivlm/server)")
    srv.add_argument("--token", help="bearer token clients must send (default: $IVLM_SERVER_TOKEN)")
    srv.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    mode = srv.add_mutually_exclusive_group()
    mode.add_argument("--demo", dest="demo", action="store_true", default=None, help="always use generated DEMO models")
    mode.add_argument(
        "--no-demo", dest="demo", action="store_false", help="refuse to start with any generated stand-in part"
    )
    srv.add_argument(
        "--no-contact-model",
        action="store_true",
        help="load no contact model (no language model): Estimate fits the body and puts the objects in view, "
        "with no contacts; paint or mark them in Blender and press Refit",
    )
    srv.add_argument("--queue-capacity", type=int, default=16, help="jobs that may wait; more get SERVER_BUSY")
    srv.add_argument("--max-request-mb", type=float, default=256.0)
    srv.add_argument("--max-image-pixels", type=int, default=50_000_000)
    srv.add_argument("--job-ttl-hours", type=float, default=168.0, help="finished jobs older than this are deleted")
    srv.add_argument(
        "--gpu-memory-gb",
        type=float,
        default=None,
        help="plan the model configuration for this much memory (default: the free GPU memory; on the CPU "
        "the available host memory, or no limit for DEMO models); `ivlm plan` shows the choices",
    )
    srv.add_argument(
        "--convert-on-start",
        action="store_true",
        help="convert .bin releases to safetensors once, before loading (logs progress; faster later starts)",
    )
    srv.set_defaults(func=_cmd_serve)

    doc = sub.add_parser("doctor", help="which model files are present or missing, and where to get them")
    doc.add_argument("--models", help="models folder (default: $IVLM_MODELS_DIR or ~/ivlm-models)")
    doc.add_argument("--json", action="store_true", help="machine-readable output")
    doc.set_defaults(func=_cmd_doctor)

    pln = sub.add_parser("plan", help="the memory each model configuration needs, and which fit a GPU")
    pln.add_argument("--gpu-memory-gb", type=float, default=None, help="the budget (default: free GPU memory)")
    pln.add_argument("--device", default="cuda", help="plan for cuda (bf16, default) or cpu (float32)")
    pln.add_argument("--models", help="models folder (default: $IVLM_MODELS_DIR or ~/ivlm-models)")
    pln.add_argument("--nominal", action="store_true", help="plan for the real release shapes without reading folders")
    pln.add_argument("--json", action="store_true", help="machine-readable output")
    pln.set_defaults(func=_cmd_plan)

    fetch = sub.add_parser("fetch-public-models", help="download the public models from the Hugging Face hub")
    fetch.add_argument("--models", help="models folder (default: $IVLM_MODELS_DIR or ~/ivlm-models)")
    fetch.set_defaults(func=_cmd_fetch_public_models)
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
