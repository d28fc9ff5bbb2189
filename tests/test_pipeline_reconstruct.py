"""The whole pipeline on generated DEMO assets: one call, the CLI, fit-only, cancellation and each bad input."""

import json

import numpy as np
import pytest

from ivlm_core.cli import main as cli_main
from ivlm_core.demo.scenes import make_scene
from ivlm_core.frames import transform_points
from ivlm_core.mesh import TriangleMesh
from ivlm_core.pipeline.reconstruct import CancelledError, ContactPipeline, ObjectInput, RunOptions


@pytest.fixture(scope="module")
def pipeline(synthetic_body_files, tiny_models, tiny_perception):
    return ContactPipeline.demo_pipeline()


@pytest.fixture(scope="module")
def scene(synthetic_body_files):
    return make_scene("hold_mug", 0)


@pytest.fixture(scope="module")
def run_with_bad_object(pipeline, scene):
    """One run: the scene's mug, plus a degenerate mesh that must be skipped while the mug is still handled."""
    flat = TriangleMesh(np.zeros((3, 3)), np.array([[0, 1, 2]]), "flat")
    stages = []
    body = transform_points(scene.cv_camera_from_world, scene.body_vertices)
    result = pipeline.run(
        scene.image,
        [ObjectInput(scene.label, scene.object_mesh), ObjectInput("plate", flat)],
        RunOptions(focal_px=float(scene.intrinsics[0, 0]), body_vertices=body),
        progress=lambda stage, fraction, message: stages.append((stage, fraction)),
    )
    return result, stages


def test_one_call_gives_body_contacts_and_placement(run_with_bad_object, scene):
    result, stages = run_with_bad_object
    assert result.demo and any("DEMO" in n for n in result.notes)
    assert [s for s, _ in stages] == ["perceive", "body", "contact", "fit", "done"]
    assert [f for _, f in stages] == sorted(f for _, f in stages)
    assert result.body is not None and result.body.source == "client" and result.body.vertices.shape == (10475, 3)
    mug = result.objects[0]
    assert mug.label == scene.label
    assert mug.body_contact is not None and mug.body_contact.shape == (10475,)
    assert mug.object_contact is not None and mug.object_contact.shape == (len(scene.object_mesh.vertices),)
    assert mug.placement.placed
    assert mug.placement.camera_from_object.shape == (4, 4)
    assert set(result.timings_s) == {"perceive", "body", "contact", "fit"}
    assert result.camera.source == "client" and "CV_CAMERA" in result.frame


def test_degenerate_mesh_is_skipped_with_its_reason(run_with_bad_object):
    result, _ = run_with_bad_object
    plate = result.objects[1]
    assert plate.label == "plate" and plate.placement.status == "skipped"
    assert "plate" in plate.placement.reason and plate.object_contact is None


def test_several_people_are_reported(run_with_bad_object):
    result, _ = run_with_bad_object
    if result.people_count > 1:  # the random demo detector finds many overlapping "people"
        assert any("people detected" in n for n in result.notes)


def test_no_person_found_returns_no_body_and_skips_placement(pipeline, scene):
    pipeline.perceiver.box_threshold = 1.01  # nothing can pass: no person, no object
    try:
        result = pipeline.run(scene.image, [ObjectInput(scene.label, scene.object_mesh)])
    finally:
        pipeline.perceiver.box_threshold = None
    assert result.body is None
    assert any("no person found" in n for n in result.notes)
    mug = result.objects[0]
    assert mug.placement.status == "skipped" and "no body" in mug.placement.reason
    assert mug.body_contact is not None  # contact is still predicted and returned


def test_label_not_in_photo_places_without_silhouette_and_says_so(pipeline, scene, run_with_bad_object):
    result, _ = run_with_bad_object
    mug = result.objects[0]
    body = result.body
    outcome = pipeline.refit(
        body,
        result.camera,
        [ObjectInput(scene.label, scene.object_mesh, mug.object_contact, mug.body_contact)],
        object_masks={},
    )[0]
    assert outcome.placement.placed and "not found in the photo" in outcome.placement.reason


def test_refit_with_all_zero_contacts_is_skipped(pipeline, scene, run_with_bad_object):
    result, _ = run_with_bad_object
    zeros = ObjectInput(scene.label, scene.object_mesh, np.zeros(len(scene.object_mesh.vertices)), np.zeros(10475))
    outcome = pipeline.refit(result.body, result.camera, [zeros])[0]
    assert outcome.placement.status == "skipped" and "contact above" in outcome.placement.reason
    missing = ObjectInput(scene.label, scene.object_mesh)
    assert "needs both" in pipeline.refit(result.body, result.camera, [missing])[0].placement.reason


def test_cancel_between_stages(pipeline, scene):
    calls = []

    def cancel() -> bool:
        calls.append(1)
        return len(calls) > 1  # let perceive start, stop before the body stage

    with pytest.raises(CancelledError, match="before the body stage") as info:
        pipeline.run(scene.image, [ObjectInput(scene.label, scene.object_mesh)], cancel=cancel)
    assert info.value.code == "CANCELLED"


def test_bad_photo_and_empty_label_are_bad_input(pipeline, scene):
    from ivlm_core.errors import BadInputError

    with pytest.raises(BadInputError, match="RGB uint8"):
        pipeline.run(np.zeros((8, 8), np.uint8), [ObjectInput(scene.label, scene.object_mesh)])
    with pytest.raises(BadInputError, match="empty label"):
        pipeline.run(scene.image, [ObjectInput(" ", scene.object_mesh)])
    with pytest.raises(BadInputError, match="no objects"):
        pipeline.run(scene.image, [])


def test_cli_on_a_folder_of_images(tmp_path, scene, synthetic_body_files, tiny_models, tiny_perception):
    import trimesh
    from PIL import Image

    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(scene.image).save(photos / "one.png")
    mesh_path = tmp_path / "mug.obj"
    trimesh.Trimesh(scene.object_mesh.vertices, scene.object_mesh.faces, process=False).export(mesh_path)
    out = tmp_path / "out"
    code = cli_main(
        ["reconstruct", "--images", str(photos), "--object", f"{mesh_path}:{scene.label}", "--demo", "--out", str(out)]
    )
    assert code == 0
    saved = json.loads((out / "one" / "result.json").read_text())
    assert saved["demo"] is True and saved["objects"][0]["label"] == scene.label
    assert saved["camera"]["focal_source"] == "default"
    arrays = np.load(out / "one" / "arrays.npz")
    assert f"body_contact__{scene.label}" in arrays.files
    assert cli_main(["reconstruct", "--images", str(photos), "--object", "nolabel", "--demo"]) == 2
