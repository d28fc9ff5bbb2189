"""Per-part model sources (pipeline/parts.py, doctor.planned_sources), the doctor's grouping by what the files
unlock, and putting an object in view without contact (fit/place_in_view.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from ivlm_core import paths
from ivlm_core.doctor import check_model_files, format_report, planned_sources
from ivlm_core.fit.camera import CameraIntrinsics
from ivlm_core.fit.place_in_view import place_in_view
from ivlm_core.frames import transform_points
from ivlm_core.mesh import TriangleMesh
from ivlm_core.pipeline import parts
from ivlm_core.pipeline.parts import PartSource, part_notes, stand_in_summary


def _box_mesh(size=(0.4, 0.8, 0.2)) -> TriangleMesh:
    """An axis-aligned box (metres) off the origin, so the placement must use its own centre."""
    corners = np.array([[x, y, z] for x in (0, 1) for y in (0, 1) for z in (0, 1)], np.float64) * size + 3.0
    faces = np.array(
        [[0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1], [2, 3, 7], [2, 7, 6], [0, 2, 6]]
        + [[0, 6, 4], [1, 5, 7], [1, 7, 3]],
        np.int64,
    )
    return TriangleMesh(corners, faces)


def _body_and_perception_folder(root: Path, synthetic_body_files, tiny_perception) -> Path:
    """A models folder with the SMPL-X body and the perception models only: no InteractVLM files."""
    shutil.copytree(paths.body_models_dir(synthetic_body_files.root), paths.body_models_dir(root))
    for name, folder in tiny_perception.items():
        shutil.copytree(folder, paths.perception_dir(name, root))
    return root


def test_only_contact_parts_may_be_absent_and_each_source_says_what_it_means() -> None:
    with pytest.raises(ValueError):
        PartSource(parts.BODY_MODEL, parts.ABSENT)
    with pytest.raises(ValueError):
        PartSource("language_model", parts.YOURS)
    sources = [
        PartSource(parts.BODY_MODEL, parts.YOURS),
        PartSource(parts.PERCEPTION, parts.STAND_IN),
        PartSource(parts.HUMAN_CONTACT, parts.ABSENT),
        PartSource(parts.OBJECT_CONTACT, parts.ABSENT),
        PartSource(parts.CANONICAL_VIEWS, parts.ABSENT),
    ]
    notes = part_notes(sources)
    assert notes == [sources[1].note(), parts.CONTACT_NOT_PREDICTED]  # absent contact said once
    assert notes[0].startswith("DEMO stand-in for the perception models")
    assert "Refit" in parts.CONTACT_NOT_PREDICTED
    assert sources[0].meaning == "" and sources[0].note() == ""
    assert stand_in_summary(sources) == f"generated stand-ins for: {parts.TITLES[parts.PERCEPTION]}"
    assert sources[2].to_dict()["source"] == "absent"


def test_planned_sources_use_what_is_present(tmp_path, synthetic_body_files, tiny_perception) -> None:
    empty = tmp_path / "empty"
    everything_generated = dict.fromkeys(parts.PARTS, parts.STAND_IN)
    assert planned_sources(check_model_files(empty), empty) == everything_generated  # the first-start DEMO
    root = _body_and_perception_folder(tmp_path / "models", synthetic_body_files, tiny_perception)
    statuses = check_model_files(root)
    assert planned_sources(statuses, root) == {
        parts.BODY_MODEL: parts.YOURS,
        parts.PERCEPTION: parts.YOURS,
        parts.HUMAN_CONTACT: parts.ABSENT,
        parts.OBJECT_CONTACT: parts.ABSENT,
        parts.CANONICAL_VIEWS: parts.ABSENT,
    }
    shutil.rmtree(paths.perception_dir("sam", root))  # one perception model missing: that part is a stand-in
    partial = planned_sources(check_model_files(root), root)
    assert partial[parts.PERCEPTION] == parts.STAND_IN and partial[parts.BODY_MODEL] == parts.YOURS
    no_contact = planned_sources(check_model_files(empty), empty, demo=True, contact_model=False)
    assert no_contact[parts.HUMAN_CONTACT] == no_contact[parts.CANONICAL_VIEWS] == parts.ABSENT
    assert no_contact[parts.BODY_MODEL] == parts.STAND_IN


def test_doctor_groups_what_is_missing_by_what_it_unlocks(tmp_path, synthetic_body_files, tiny_perception) -> None:
    root = _body_and_perception_folder(tmp_path / "models", synthetic_body_files, tiny_perception)
    report = format_report(check_model_files(root), root)
    assert "[ready]   body fit from your photo" in report
    contacts = report[report.index("[missing] predicted contacts") :]
    assert "missing: InteractVLM release" in contacts and "missing: CLIP ViT-L/14 vision tower" in contacts
    assert "missing: SMPL-X body model" not in contacts
    assert "paint them" in report and "no contact model" in report
    empty_report = format_report(check_model_files(tmp_path / "empty"), tmp_path / "empty")
    body_part = empty_report[empty_report.index("[missing] body fit from your photo") :]
    assert "missing: SMPL-X body model" in body_part.splitlines()[1]
    assert "generated stand-ins for: SMPL-X body model" in empty_report


def _project(camera: CameraIntrinsics, points: np.ndarray) -> np.ndarray:
    uvw = points @ camera.matrix.T
    return uvw[:, :2] / uvw[:, 2:]


def test_an_object_without_contact_goes_upright_where_its_mask_is() -> None:
    camera = CameraIntrinsics(500.0, (480, 640), "test")
    mesh = _box_mesh()
    mask = np.zeros((480, 640), bool)
    mask[100:300, 400:500] = True  # 100 x 200 px, like the 0.4 x 0.8 m box at 2 m (f = 500 px)
    placement = place_in_view(mesh, camera, mask, None, "no contact")
    assert placement.placed and placement.reason.startswith("no contact") and "Refit" in placement.reason
    moved = transform_points(placement.camera_from_object, mesh.vertices)
    uv = _project(camera, moved)
    assert np.allclose([uv[:, 0].min(), uv[:, 1].min()], [399.5, 99.5], atol=12.0)  # pixel edges
    assert np.allclose([uv[:, 0].max(), uv[:, 1].max()], [499.5, 299.5], atol=12.0)
    assert np.allclose(np.linalg.det(placement.camera_from_object[:3, :3]), 1.0)
    top = mesh.vertices[:, 1] > 3.5  # the mesh's +Y (up) side is up in the photo (smaller v)
    assert uv[top, 1].mean() < uv[~top, 1].mean()


def test_an_object_not_found_goes_in_front_of_the_body_or_ahead_of_the_camera() -> None:
    camera = CameraIntrinsics(500.0, (480, 640), "test")
    mesh = _box_mesh()
    body = np.random.default_rng(0).uniform([-0.3, -0.9, 2.8], [0.3, 0.9, 3.2], (500, 3))
    placement = place_in_view(mesh, camera, np.zeros((480, 640), bool), body, "no contact")
    moved = transform_points(placement.camera_from_object, mesh.vertices)
    assert moved[:, 2].max() <= body[:, 2].min() + 1e-6 and moved[:, 2].min() > 0
    assert abs(moved[:, 0].mean() - (body[:, 0].min() + body[:, 0].max()) / 2) < 1e-6
    assert "in front of the body" in placement.reason
    alone = place_in_view(mesh, camera, None, None, "no contact")
    centre = transform_points(alone.camera_from_object, mesh.vertices).mean(0)
    assert np.allclose(centre, [0.0, 0.0, 2.0], atol=1e-6)


@pytest.mark.slow  # regenerates the demo scene to recognise it (a few seconds)
def test_random_weight_perception_without_contact_model_fits_a_demo_scenes_truth_but_paints_no_contact(
    tmp_path, synthetic_body_files, tiny_perception
) -> None:
    """SMPL-X and perception in the folder (the generated ones: random weights), no contact model: a generated demo
    photo is recognised, as in the whole DEMO, so its true keypoints and masks stand in for the random perception's
    (without this the body was the standing stand-in); its true contacts are not used, since no contact model ran:
    the groups stay empty for the user to paint."""
    import io

    from PIL import Image

    from ivlm_core.demo.scene_truth import tagged_png
    from ivlm_core.demo.scenes import make_scene
    from ivlm_core.pipeline.reconstruct import ContactPipeline, ObjectInput, RunOptions

    root = _body_and_perception_folder(tmp_path / "models", synthetic_body_files, tiny_perception)
    pipeline = ContactPipeline.from_parts(root, planned_sources(check_model_files(root), root))
    assert pipeline.demo and not pipeline.predicts_contact
    scene = make_scene("sit_chair", 0, body=pipeline.body)
    photo = Image.open(io.BytesIO(tagged_png(scene)))
    fit_only = RunOptions(stages=frozenset({"fit"}))  # the body fit is tested elsewhere; recognition is the point
    result = pipeline.run(scene.image, [ObjectInput(scene.label, scene.object_mesh)], fit_only, pil_image=photo)
    assert result.scene_truth is not None, result.notes
    used = result.scene_truth.inputs
    assert {"keypoints", "person_mask", f"object_mask:{scene.label}"} <= set(used)
    assert not any(name.startswith(("body_contact", "object_contact")) for name in used), used
    assert "contact" not in result.scene_truth.stages_replaced
    (outcome,) = result.objects
    assert outcome.body_contact is None and outcome.object_contact is None
    assert parts.CONTACT_NOT_PREDICTED in result.notes


def test_cli_reconstruct_without_a_contact_model(tmp_path, synthetic_body_files, tiny_perception, capsys) -> None:
    """`ivlm reconstruct --no-contact-model` runs with the body and perception only (no InteractVLM files): the
    object is put in view with no contacts, and the result says to paint them; without the option the same folder
    is refused, naming the missing release."""
    import json

    import trimesh
    from PIL import Image

    from ivlm_core.cli import main as cli_main
    from ivlm_core.demo.scenes import make_scene

    root = _body_and_perception_folder(tmp_path / "models", synthetic_body_files, tiny_perception)
    scene = make_scene("hold_mug", 0)
    Image.fromarray(scene.image).save(tmp_path / "photo.png")  # untagged: a user's photo
    mesh = tmp_path / "mug.obj"
    trimesh.Trimesh(scene.object_mesh.vertices, scene.object_mesh.faces, process=False).export(mesh)
    command = ["reconstruct", str(tmp_path / "photo.png"), "--object", f"{mesh}:{scene.label}", "--models", str(root)]
    assert cli_main([*command, "--out", str(tmp_path / "refused")]) == 2
    assert "interactvlm" in capsys.readouterr().err.lower()

    assert cli_main([*command, "--no-contact-model", "--out", str(tmp_path / "out")]) == 0
    saved = json.loads((tmp_path / "out" / "photo" / "result.json").read_text())
    assert parts.CONTACT_NOT_PREDICTED in saved["notes"]
    (obj,) = saved["objects"]
    assert not obj["has_object_contact"] and not obj["has_body_contact"]
    assert obj["status"] == "placed" and "no contact was predicted" in obj["reason"]
    assert (tmp_path / "out" / "photo" / f"object_{scene.label}.ply").is_file()
