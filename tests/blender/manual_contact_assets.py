"""Writes what the manual-contact test in real Blender needs; run by the main environment's Python (the Blender
environment has no torch): `.venv/bin/python tests/blender/manual_contact_assets.py OUT [SCENE_KIND]`.

OUT/models: a user's models folder with the SMPL-X body file (the generated one, in the real release format) and
the three perception folders (tiny, random weights, in the hub's `save_pretrained` format), and no InteractVLM
files. OUT/scene: the generated demo photo as `ivlm assets` writes it (tagged, so a server whose perception has
random weights recognises it and fits the scene's true keypoints), and truth.json: the object mesh, its true
contacts, the body's true contacts and vertices, and the object's true pose, all in the photo's camera frame.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np

from ivlm_core import paths
from ivlm_core.demo.body_model import ensure_synthetic_body_models
from ivlm_core.demo.scenes import make_scene, save_scene
from ivlm_core.demo.tiny_perception import ensure_tiny_perception
from ivlm_core.frames import transform_points


def write(out: Path, kind: str = "sit_chair") -> dict:
    """The models folder and the scene under `out`; returns (and writes) truth.json's content."""
    models = out / "models"
    body = ensure_synthetic_body_models()
    shutil.copytree(paths.body_models_dir(body.root) / "smplx", paths.body_models_dir(models) / "smplx")
    for name, folder in ensure_tiny_perception().items():
        shutil.copytree(folder, paths.perception_dir(name, models))
    scene = make_scene(kind, 0)
    folder = save_scene(scene, out / "scene")
    camera_from_object = scene.cv_camera_from_world @ scene.world_from_object
    truth = {
        "models": str(models),
        "photo": str(folder / f"{scene.name}.png"),
        "label": scene.label,
        "object_vertices": scene.object_mesh.vertices.tolist(),
        "object_faces": scene.object_mesh.faces.tolist(),
        "object_contact": np.flatnonzero(scene.object_contact > 0.5).tolist(),
        "body_contact": np.flatnonzero(scene.body_contact > 0.5).tolist(),
        "camera_from_object": camera_from_object.tolist(),
        "body_vertices_camera": transform_points(scene.cv_camera_from_world, scene.body_vertices).tolist(),
    }
    (out / "truth.json").write_text(json.dumps(truth))
    return truth


if __name__ == "__main__":
    write(Path(sys.argv[1]), *sys.argv[2:])
