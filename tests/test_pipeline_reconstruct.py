"""The whole pipeline on generated DEMO assets: one call, the CLI, fit-only, cancellation and each bad input."""

import json
from dataclasses import replace

import numpy as np
import pytest
from perception_fakes import BestPersonPlusCopies

from ivlm_core.cli import main as cli_main
from ivlm_core.demo.scenes import make_scene
from ivlm_core.fit.place_object import PlacementOptions
from ivlm_core.frames import transform_points
from ivlm_core.mesh import TriangleMesh
from ivlm_core.pipeline import array_keys, parts
from ivlm_core.pipeline.outputs import safe_name
from ivlm_core.pipeline.reconstruct import CancelledError, ContactPipeline, ObjectInput, RunOptions

# These tests check the pipeline's plumbing, not placement quality (test_fit checks that the default options
# recover a placement): a small placement budget costs about 2 s of CPU per object instead of 16.
QUICK = RunOptions(
    placement=PlacementOptions(
        dense_starts=False,
        max_contact_points=200,
        max_object_points=500,
        max_mask_pixels=200,
        coarse_steps=0,
        keep_hypotheses=2,
        steps=10,
        refine_hypotheses=1,
        refine_steps=5,
    )
)


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
    detector = pipeline.perceiver.detector
    pipeline.perceiver.detector = BestPersonPlusCopies(detector, extra=2)  # exactly 3 people, the best one chosen
    try:
        result = pipeline.run(
            scene.image,
            [ObjectInput(scene.label, scene.object_mesh), ObjectInput("plate", flat)],
            replace(QUICK, focal_px=float(scene.intrinsics[0, 0]), body_vertices=body),
            progress=lambda stage, fraction, message: stages.append((stage, fraction)),
        )
    finally:
        pipeline.perceiver.detector = detector
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
    assert result.people_count == 3
    noted = [note for note in result.notes if "people detected" in note]
    assert len(noted) == 1 and noted[0].startswith("person: 3 people detected") and "chose person 1 of 3" in noted[0]


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
        options=QUICK,
    )[0]
    assert outcome.placement.placed and "not found in the photo" in outcome.placement.reason


def test_refit_with_all_zero_contacts_is_skipped(pipeline, scene, run_with_bad_object):
    result, _ = run_with_bad_object
    zeros = ObjectInput(scene.label, scene.object_mesh, np.zeros(len(scene.object_mesh.vertices)), np.zeros(10475))
    outcome = pipeline.refit(result.body, result.camera, [zeros])[0]
    assert outcome.placement.status == "skipped" and "contact above" in outcome.placement.reason
    missing = ObjectInput(scene.label, scene.object_mesh)
    assert "needs both" in pipeline.refit(result.body, result.camera, [missing])[0].placement.reason


def test_object_in_centimetres_keeps_contacts_but_is_not_placed_and_inside_out_is_rewound(
    pipeline, scene, run_with_bad_object
):
    result, _ = run_with_bad_object
    mug = result.objects[0]
    mesh = scene.object_mesh
    in_cm = ObjectInput(
        scene.label, TriangleMesh(mesh.vertices * 100, mesh.faces), mug.object_contact, mug.body_contact
    )
    inside_out = ObjectInput(
        scene.label, TriangleMesh(mesh.vertices, mesh.faces[:, ::-1].copy()), mug.object_contact, mug.body_contact
    )
    masks = {scene.label: scene.object_mask}
    cm, flipped = pipeline.refit(result.body, result.camera, [in_cm, inside_out], object_masks=masks)
    assert cm.placement.status == "skipped" and "apply the object's scale" in cm.placement.reason
    assert cm.object_contact is not None  # what the user sent is kept, nothing lost
    assert flipped.placement.placed and any("inside out" in n for n in flipped.notes)


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
    # Provenance as in the server's results: which models (stand-ins said so) and where each part came from.
    assert saved["models"]["human_contact"].startswith("DEMO generated stand-in for")
    assert saved["models"]["configuration"] and saved["models"]["language_model_precision"]
    assert {p["part"]: p["source"] for p in saved["parts"]} == dict.fromkeys(parts.PARTS, parts.STAND_IN)
    arrays = np.load(out / "one" / "arrays.npz")
    assert array_keys.key(array_keys.BODY_CONTACT, safe_name(scene.label)) in arrays.files
    assert cli_main(["reconstruct", "--images", str(photos), "--object", "nolabel", "--demo"]) == 2
