"""The Render -> Localize -> Lift demo on generated assets: what `./run.sh` shows until the server exists.

It makes a synthetic scene, renders the canonical body and the scene's object from InteractVLM's 4 views,
runs Localize with the project's tiny DEMO releases (random weights in the real release format, so the
masks are noise and say nothing about the photo), and lifts the masks to per-vertex contact on SMPL-H,
SMPL-X and the object. A second pass feeds the scene's ground-truth contacts, rendered into each view, in
place of the model's masks: comparing what Lift returns with the ground truth checks Render and Lift end
to end. Everything written is flagged DEMO.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import trimesh
from PIL import Image

from ivlm_core import paths
from ivlm_core.demo.body_model import ensure_synthetic_body_models
from ivlm_core.demo.scenes import make_scene, save_scene
from ivlm_core.demo.tiny_release import ensure_tiny_models
from ivlm_core.fileio import atomic_path, save_npz_atomic
from ivlm_core.lift.canonical_body import load_canonical_body_views
from ivlm_core.lift.operator import LiftOperator
from ivlm_core.lift.pixel_maps import PixelMaps
from ivlm_core.lift.smplx_conversion import load_mapping, smpl_to_smplx, smplx_to_smpl
from ivlm_core.localize.localizer import Localizer
from ivlm_core.pipeline.contact import estimate_human_contact, estimate_object_contact
from ivlm_core.render.canonical import render_object_views

MASK_COLOR = np.array([255, 38, 26], dtype=np.float32)  # InteractVLM's overlay red (1.0, 0.15, 0.10)
CONTACT_THRESHOLD = 0.5
GT_LOGIT = 8.0
HUMAN_DEMO_RELEASE = "interactvlm-3d-hcontact-damon-fix"
OBJECT_DEMO_RELEASE = (
    "interactvlm-3d-oafford-lemon-piad"  # stand-in mask logits: +8 inside the ground-truth contact, -8 outside
)


def ground_truth_logits(maps: PixelMaps, contact: np.ndarray) -> torch.Tensor:
    """Renders per-vertex contact into each view (barycentric interpolation) as confident mask logits."""
    valid = maps.valid()
    ids = np.where(valid[..., None], maps.vertex_ids, 0)
    value = (maps.bary * contact[ids]).sum(-1) * valid
    return torch.from_numpy(np.where(value > 0.5, GT_LOGIT, -GT_LOGIT).astype(np.float32))


def overlay_grid(images: np.ndarray, logits: torch.Tensor) -> np.ndarray:
    """A 2x2 grid of the views with positive-logit pixels blended 50% in red."""
    mask = (logits > 0).numpy()[..., None]
    blended = np.where(mask, 0.5 * images + 0.5 * MASK_COLOR, images).astype(np.uint8)
    return np.concatenate([np.concatenate(blended[:2], 1), np.concatenate(blended[2:], 1)], 0)


def f1_score(predicted: np.ndarray, truth: np.ndarray, where: np.ndarray | None = None) -> float:
    where = np.ones_like(truth, bool) if where is None else where
    p, t = predicted[where], truth[where]
    denominator = p.sum() + t.sum()
    return float(2 * np.sum(p & t) / denominator) if denominator else 1.0


def _or_empty(values: np.ndarray | None) -> np.ndarray:
    return np.zeros(0, np.float32) if values is None else values


def _save_png(path: Path, image: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        Image.fromarray(image).save(tmp, format="PNG")


def _save_colored_mesh(path: Path, vertices: np.ndarray, faces: np.ndarray, contact: np.ndarray) -> None:
    """PLY with contact as colour: red where contact >= 0.5, grey elsewhere (InteractVLM's colouring)."""
    colors = np.where(contact[:, None] >= CONTACT_THRESHOLD, [255, 26, 26, 255], [204, 204, 204, 255]).astype(np.uint8)
    with atomic_path(path) as tmp:
        trimesh.Trimesh(vertices, faces, vertex_colors=colors, process=False).export(tmp, file_type="ply")


def run_contact_demo(
    out_dir: Path,
    kind: str = "sit_chair",
    seed: int = 0,
    device: str = "cpu",
    progress: Callable[[str], None] = print,
) -> dict:
    """Runs the demo and writes its outputs to out_dir; returns the summary (also in summary.json)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}

    def stage(name: str, start: float) -> None:
        timings[name] = round(time.perf_counter() - start, 3)
        progress(f"  {name}: {timings[name]:.2f} s")

    progress(
        "DEMO: generated assets only (synthetic body, objects, photo, tiny random-weight models); no licensed files."
    )
    start = time.perf_counter()
    models = ensure_synthetic_body_models()
    stage("demo body models", start)

    start = time.perf_counter()
    scene = make_scene(kind, seed)
    scene_dir = save_scene(scene, out_dir / "scene")
    stage("synthetic scene", start)

    start = time.perf_counter()
    body_views = load_canonical_body_views(
        paths.interactvlm_data_dir(models.root), paths.body_models_dir(models.root), device=device
    )
    stage(f"render: canonical body views ({body_views.origin})", start)

    start = time.perf_counter()
    object_views = render_object_views(scene.object_mesh, device=device)
    object_maps = PixelMaps.from_fragments(
        object_views.fragments, object_views.faces, object_views.num_vertices, object_views.view_set.names
    )
    stage("render: object views", start)

    mapping = load_mapping(models.smpl_to_smplx.parent)

    start = time.perf_counter()
    tiny = ensure_tiny_models()
    human_model = Localizer.from_folders(
        tiny.releases[HUMAN_DEMO_RELEASE], tiny.clip, device=device, dtype=torch.float32
    )
    object_model = Localizer.from_folders(
        tiny.releases[OBJECT_DEMO_RELEASE], tiny.clip, device=device, dtype=torch.float32
    )
    stage("load tiny demo releases", start)
    start = time.perf_counter()
    human = estimate_human_contact(human_model, scene.image, scene.label, body_views, mapping)
    obj = estimate_object_contact(object_model, scene.image, scene.label, scene.object_mesh, device=device)
    stage("localize + lift with the demo models", start)
    truth_smplh = smplx_to_smpl(scene.body_contact, mapping) > 0.5
    truth_object = scene.object_contact > 0.5
    body_logits = ground_truth_logits(body_views.maps, truth_smplh.astype(np.float32))
    object_logits = ground_truth_logits(object_maps, truth_object.astype(np.float32))

    start = time.perf_counter()
    body_lift = body_views.lift_operator(device)
    contact_smplh = body_lift.human(body_logits).cpu().numpy()
    contact_smplx = smpl_to_smplx(contact_smplh, mapping)
    object_lift = LiftOperator(object_maps, device)
    contact_object = object_lift.object(object_logits).cpu().numpy()
    stage("lift: body and object", start)

    renders = out_dir / "renders"
    renders.mkdir(exist_ok=True)
    for name, views, result in (
        ("human", body_views.overlay_images, human.localize),
        ("object", object_views.overlay_images, obj.localize),
    ):
        if result.logits is not None:
            _save_png(renders / f"{name}_views_demo_model_masks.png", overlay_grid(views, result.logits.cpu()))
    _save_png(renders / "human_views_ground_truth_masks.png", overlay_grid(body_views.overlay_images, body_logits))
    _save_png(renders / "object_views_ground_truth_masks.png", overlay_grid(object_views.overlay_images, object_logits))
    for name, image in zip(body_views.maps.view_names, body_views.sam_images):
        _save_png(renders / f"human_{name}.png", image)
    for name, image in zip(object_maps.view_names, object_views.sam_images):
        _save_png(renders / f"object_{name}.png", image)
    save_npz_atomic(
        out_dir / "contacts.npz",
        {
            "demo_model_smplh": _or_empty(human.smplh),
            "demo_model_smplx": _or_empty(human.smplx),
            "demo_model_object": _or_empty(obj.vertices),
            "ground_truth_masks_smplh": contact_smplh,
            "ground_truth_masks_smplx": contact_smplx,
            "ground_truth_masks_object": contact_object,
        },
    )
    _save_colored_mesh(out_dir / "body_smplx_contact.ply", scene.body_vertices, scene.body_faces, contact_smplx)
    _save_colored_mesh(
        out_dir / "object_contact.ply", scene.object_vertices_world(), scene.object_mesh.faces, contact_object
    )

    visible_smplh = body_lift.visible().cpu().numpy()
    summary = {
        "demo": True,
        "note": "DEMO on generated assets. The demo models have random weights: their answers are scripted "
        "and their masks are noise. The F1 scores come from a second pass whose per-view masks are the "
        "scene's ground-truth contacts rendered into each view, so they check Render and Lift only.",
        "scene": scene.name,
        "scene_folder": str(scene_dir),
        "label": scene.label,
        "canonical_body_views": body_views.origin,
        "synthetic_body": body_views.synthetic_version,
        "demo_model": {
            "human_release": HUMAN_DEMO_RELEASE,
            "human_answer": human.localize.text,
            "human_body_parts": human.localize.body_parts,
            "object_release": OBJECT_DEMO_RELEASE,
            "object_answer": obj.localize.text,
            "object_affordance": obj.localize.affordance,
            "contact_vertices": {
                "smplx": None if human.smplx is None else int((human.smplx >= CONTACT_THRESHOLD).sum()),
                "object": None if obj.vertices is None else int((obj.vertices >= CONTACT_THRESHOLD).sum()),
            },
        },
        "ground_truth_masks_check": "per-view masks rendered from the ground-truth contacts, lifted back",
        "ground_truth_masks_contact_vertices": {
            "smplh": int((contact_smplh >= CONTACT_THRESHOLD).sum()),
            "smplx": int((contact_smplx >= CONTACT_THRESHOLD).sum()),
            "object": int((contact_object >= CONTACT_THRESHOLD).sum()),
        },
        "f1_vs_ground_truth": {
            "smplh_visible_vertices": f1_score(contact_smplh >= CONTACT_THRESHOLD, truth_smplh, visible_smplh),
            "smplx": f1_score(contact_smplx >= CONTACT_THRESHOLD, scene.body_contact > 0.5),
            "object_visible_vertices": f1_score(
                contact_object >= CONTACT_THRESHOLD, truth_object, object_lift.visible().cpu().numpy()
            ),
        },
        "seconds": timings,
    }
    with atomic_path(out_dir / "summary.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=2))
    return summary
