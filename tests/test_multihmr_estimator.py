"""Multi-HMR on a photo: the input it sees (upstream's resize and padding), our intrinsics carried into it, its
people back in the photo's frames, and the conversion of a person into smplx parameters for the fit."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from ivlm_core import paths
from ivlm_core.body import load_body_model
from ivlm_core.fit.body_fit import body_from_client
from ivlm_core.fit.body_init import transform_params
from ivlm_core.perceive.multihmr.estimator import (
    MultiHMREstimator,
    PersonEstimate,
    body_init_from_estimate,
    match_person,
    prepare_input,
)


@pytest.fixture(scope="module")
def body(synthetic_body_files):
    return load_body_model("smplx", folder=paths.body_models_dir(synthetic_body_files.root), num_betas=10)


@pytest.fixture(scope="module")
def scene(body):
    from ivlm_core.demo.scenes import make_scene

    return make_scene("hold_mug", 0, body=body)


@pytest.fixture(scope="module")
def estimator(tmp_path_factory):
    from ivlm_core.demo.tiny_multihmr import ensure_tiny_multihmr

    return MultiHMREstimator.from_models_dir(ensure_tiny_multihmr(tmp_path_factory.mktemp("models")).parent.parent)


@pytest.mark.parametrize("shape", [(90, 150), (150, 90), (112, 112), (41, 200)])
def test_input_is_the_photo_scaled_and_centred(shape):
    """A grey photo with a white block: the input holds the photo where the transform puts it, black padding
    around it (upstream's ImageOps.contain + ImageOps.pad), and the block where the transform maps it."""
    height, width = shape
    photo = np.full((height, width, 3), 128, np.uint8)
    photo[height // 3 : height // 3 + 12, width // 2 : width // 2 + 12] = 255
    pixels, transform = prepare_input(photo, 112)
    assert pixels.shape == (3, 112, 112) and pixels.dtype == np.float32
    rows, cols = np.nonzero(pixels[0] > -1.5)  # grey is about 0.07 after normalising, black padding about -2.1
    x0, y0 = transform.offset_x, transform.offset_y
    assert (cols.min(), rows.min()) == (x0, y0)
    assert (cols.max() + 1 - x0, rows.max() + 1 - y0) == (
        round(transform.scale_x * width),
        round(transform.scale_y * height),
    )
    assert 112 in (cols.max() + 1 - x0, rows.max() + 1 - y0)
    rows, cols = np.nonzero(pixels[0] > 1.5)  # white is about 2.2
    block = np.array([(width // 2 + 6) * transform.scale_x + x0, (height // 3 + 6) * transform.scale_y + y0])
    assert np.abs(np.array([cols.mean() + 0.5, rows.mean() + 0.5]) - block).max() < 0.75


def test_intrinsics_describe_the_same_camera_in_the_input():
    photo = np.zeros((90, 150, 3), np.uint8)
    _, transform = prepare_input(photo, 112)
    k = np.array([[180.0, 0.0, 74.5], [0.0, 180.0, 44.5], [0.0, 0.0, 1.0]])
    k_input = transform.intrinsics(k)
    point = np.array([0.3, -0.2, 2.5])
    uv = (k @ point)[:2] / point[2]  # photo pixels, centres at integers
    xy = (k_input @ point)[:2] / point[2]  # input pixels, pixel k spans [k, k + 1]
    assert np.allclose(
        xy,
        [
            (uv[0] + 0.5) * transform.scale_x + transform.offset_x,
            (uv[1] + 0.5) * transform.scale_y + transform.offset_y,
        ],
    )
    assert np.allclose(transform.to_photo(xy), uv)


def test_people_come_back_in_the_photos_frames(estimator, scene):
    people = estimator(scene.image, scene.intrinsics)
    assert estimator.demo and "DEMO" in estimator.name and len(people) >= 1
    assert [p.score for p in people] == sorted((p.score for p in people), reverse=True)
    for person in people:
        projected = (scene.intrinsics @ person.center_cam)[:2] / person.center_cam[2]
        assert np.abs(projected - person.center_px).max() < 1e-3  # 3D centre and its pixel agree in our camera
        assert person.rotations.shape == (53, 3, 3) and np.allclose(np.linalg.det(person.rotations), 1.0, atol=1e-5)
        assert person.betas.shape == (10,) and person.center_joint == 15 and person.center_cam[2] > 0


def _estimate_of(body, params: dict[str, np.ndarray], score: float) -> PersonEstimate:
    """What Multi-HMR would report for this body: rotations and the head joint in the camera frame."""
    rotations = np.tile(np.eye(3), (53, 1, 1))
    rotations[0] = Rotation.from_rotvec(params["global_orient"]).as_matrix()
    rotations[1:22] = Rotation.from_rotvec(params["body_pose"].reshape(21, 3)).as_matrix()
    head = body_from_client(body, params=params).joints[15]
    return PersonEstimate(score, np.zeros(2), head, 15, rotations, params["betas"], np.zeros(10))


def test_body_init_reproduces_multihmr_placement(body, estimator, scene):
    """Upstream places a person by rotating about the centre joint c: v = R (v_local - c) + centre. The smplx
    parameters we derive give the same vertices."""
    person = estimator(scene.image, scene.intrinsics)[0]
    init = body_init_from_estimate(person, body, "test")
    ours = body_from_client(body, params=init.params()).vertices
    with torch.no_grad():
        local = body.model(
            betas=torch.tensor(init.betas[None], dtype=torch.float32),
            body_pose=torch.tensor(init.body_pose[None], dtype=torch.float32),
        )
    v_local, c = local.vertices[0].numpy().astype(np.float64), local.joints[0, 15].numpy().astype(np.float64)
    upstream = (v_local - c) @ person.rotations[0].T + person.center_cam
    assert np.abs(ours - upstream).max() < 1e-4
    assert init.source == "test" and init.score == person.score and init.left_hand_pose.shape == (45,)


def test_match_person_picks_the_one_in_the_box(body, scene):
    truth = transform_params(body, scene.body_params, scene.cv_camera_from_world)
    beside = {**truth, "transl": truth["transl"] + np.array([1.2, 0.0, 0.4])}
    estimates = [_estimate_of(body, beside, 0.9), _estimate_of(body, truth, 0.7)]
    rows, cols = np.nonzero(scene.person_mask)
    box = np.array([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1], np.float32)
    init, reason = match_person(estimates, box, body, scene.intrinsics, "Multi-HMR (test)")
    assert init is not None and init.score == 0.7 and "score 0.70" in reason
    vertices = body_from_client(body, params=init.params()).vertices
    four = {name: truth[name] for name in init.params()}  # (the scene's hand poses are not in these estimates)
    assert np.abs(vertices - body_from_client(body, params=four).vertices).max() < 1e-4  # the estimate, unchanged
    elsewhere = np.array([0.0, 0.0, 30.0, 30.0], np.float32)
    init, reason = match_person(estimates, elsewhere, body, scene.intrinsics, "Multi-HMR (test)")
    assert init is None and "none of the 2 people" in reason
    assert match_person([], box, body, scene.intrinsics, "x") == (None, "Multi-HMR found no person in the photo")


def test_the_optional_checkpoint_loads_or_says_why_not(tmp_path, estimator):
    """Missing: the pipeline fits from keypoints and says so. Another model family in its place: the same, and the
    note names what was found. Present: loaded (the tiny one is flagged DEMO)."""
    none, note = MultiHMREstimator.optional(tmp_path)
    assert none is None and note.startswith("no Multi-HMR checkpoint (optional)") and "keypoints alone" in note
    wrong = paths.multihmr_checkpoint(tmp_path)
    wrong.parent.mkdir(parents=True)
    torch.save({"pytorch-lightning_version": "2.2.0", "state_dict": {"smpl_head.w": torch.zeros(1)}}, wrong)
    none, note = MultiHMREstimator.optional(tmp_path)
    assert none is None and "PyTorch Lightning checkpoint" in note and "keypoints alone" in note
    loaded, note = MultiHMREstimator.optional(estimator.report.path.parent.parent)
    assert loaded is not None and loaded.demo and note == ""


def test_doctor_lists_the_optional_checkpoint(tmp_path, estimator):
    from ivlm_core.doctor import check_model_files, check_optional_model_files, format_report

    def multihmr(root) -> list:  # the optional items also list whole-body ViTPose and VPoser
        return [s for s in check_optional_model_files(root) if s.name.startswith("Multi-HMR")]

    (absent,) = multihmr(tmp_path)
    assert not absent.present and absent.path == str(paths.multihmr_checkpoint(tmp_path))
    report = format_report(check_model_files(tmp_path), tmp_path, [absent])
    assert "[absent] Multi-HMR" in report and "naverlabs.com" in report and "non-commercial" in report
    assert len(check_model_files(tmp_path)) == 9  # an optional file never counts as missing (no DEMO mode for it)
    wrong = paths.multihmr_checkpoint(tmp_path)
    wrong.parent.mkdir(parents=True)
    torch.save({"model_state_dict": {"mlp_pose.0.weight": torch.zeros(1)}, "args": None}, wrong)
    (problem,) = multihmr(tmp_path)
    assert not problem.present and "Anny body model" in problem.problem
    assert "[PROBLEM] Multi-HMR" in format_report([], tmp_path, [problem])
    (present,) = multihmr(estimator.report.path.parent.parent)
    assert present.present and "[ok] Multi-HMR" in format_report([], tmp_path, [present])
