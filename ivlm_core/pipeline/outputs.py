"""Writing a pipeline result to a folder: result.json (everything small), arrays.npz, and meshes to look at.

The JSON is the one description of a result's fields (the server answers with the same dictionary).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import trimesh

from ivlm_core.fileio import atomic_path, save_npz_atomic
from ivlm_core.frames import transform_points
from ivlm_core.mesh import TriangleMesh
from ivlm_core.perceive.people import PeopleChoice
from ivlm_core.pipeline import array_keys
from ivlm_core.pipeline.parts import PartSource
from ivlm_core.pipeline.reconstruct import ReconstructResult

RESULT_SCHEMA = "ivlm-result-1"


def safe_name(label: str) -> str:
    """A label as a file-name part (and its arrays' key in arrays.npz): letters, digits, '-' and '_'."""
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in label)[:64] or "object"


def result_to_dict(result: ReconstructResult) -> dict:
    """The result as plain JSON types (no per-vertex arrays: those go to arrays.npz)."""
    body = result.body
    return {
        "schema": RESULT_SCHEMA,
        "demo": result.demo,
        "frame": result.frame,
        "camera": {
            "focal_px": result.camera.focal_px,
            "focal_source": result.camera.source,
            "image_size_hw": list(result.camera.image_size),
            "intrinsics": result.camera.matrix.tolist(),
        },
        "body": None
        if body is None
        else {
            "source": body.source,
            "start": body.start,
            "params": {k: np.asarray(v).tolist() for k, v in body.params.items()},
            "losses": body.losses,
            "timings_s": body.timings_s,
            "best_start": body.best_start,
            "prior": body.prior,
            "keypoint_format": body.keypoint_format,
            "flags": list(body.flags),
        },
        "people_count": result.people_count,
        "people": people_to_dict(result.people),
        "objects": [
            {
                "label": o.label,
                "status": o.placement.status,
                "reason": o.placement.reason,
                "camera_from_object": None
                if o.placement.camera_from_object is None
                else o.placement.camera_from_object.tolist(),
                "scale": o.placement.scale,
                "losses": o.placement.losses,
                "timings_s": o.placement.timings_s,
                "detection_box_xyxy": o.detection_box,
                "detection_score": o.detection_score,
                "answers": o.answers,
                "notes": o.notes,
                "has_object_contact": o.object_contact is not None,
                "has_body_contact": o.body_contact is not None,
            }
            for o in result.objects
        ],
        "notes": result.notes,
        "timings_s": result.timings_s,
        "scene_truth": None if result.scene_truth is None else result.scene_truth.to_dict(),
    }


def people_to_dict(people: PeopleChoice | None) -> dict | None:
    """Every detected person's box and score, which one the run used (index, or None for the client's own box)
    and why; the overlap with the objects where it was measured."""
    if people is None:
        return None
    return {
        "boxes_xyxy": [[float(v) for v in c.box] for c in people.candidates],
        "scores": [float(c.score) for c in people.candidates],
        "object_overlap": [c.object_overlap for c in people.candidates],
        "chosen": people.chosen,
        "chosen_box_xyxy": None if people.box is None else [float(v) for v in people.box],
        "reason": people.reason,
    }


def save_result(
    result: ReconstructResult,
    out_dir: Path,
    meshes: dict[str, TriangleMesh],
    body_faces: np.ndarray,
    models: dict[str, str],
    part_sources: list[PartSource],
) -> Path:
    """Writes result.json, arrays.npz and PLY meshes (body, placed objects) into out_dir. `models` and
    `part_sources` (ContactPipeline.models_used / part_sources) go into result.json as its provenance, as in the
    server's results."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {}
    if result.body is not None:
        arrays["body_vertices"] = result.body.vertices.astype(np.float32)
        arrays["body_joints"] = result.body.joints.astype(np.float32)
        with atomic_path(out_dir / "body.ply") as tmp:
            trimesh.Trimesh(result.body.vertices, body_faces, process=False).export(tmp, file_type="ply")
    for o in result.objects:
        name = safe_name(o.label)
        if o.object_contact is not None:
            arrays[array_keys.key(array_keys.OBJECT_CONTACT, name)] = o.object_contact.astype(np.float32)
        if o.body_contact is not None:
            arrays[array_keys.key(array_keys.BODY_CONTACT, name)] = o.body_contact.astype(np.float32)
        if o.placement.camera_from_object is not None and o.label in meshes:
            mesh = meshes[o.label]
            placed = transform_points(o.placement.camera_from_object, mesh.vertices)
            with atomic_path(out_dir / f"object_{name}.ply") as tmp:
                trimesh.Trimesh(placed, mesh.faces, process=False).export(tmp, file_type="ply")
    save_npz_atomic(out_dir / "arrays.npz", arrays)
    with atomic_path(out_dir / "result.json") as tmp:
        provenance = {"models": models, "parts": [source.to_dict() for source in part_sources]}
        tmp.write_text(json.dumps({**result_to_dict(result), **provenance}, indent=2))
    return out_dir / "result.json"
