"""The body fit started from a first estimate (`BodyInit`): parameters moved between frames, the start used,
and the keypoint and silhouette terms refining it on a generated sitting scene (the keypoint-only fit's worst)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ivlm_core import paths
from ivlm_core.body import load_body_model
from ivlm_core.errors import BadInputError
from ivlm_core.fit.body_fit import COCO_TO_SMPLX, body_from_client, fit_body
from ivlm_core.fit.body_init import BodyInit, rest_pelvis, transform_params
from ivlm_core.fit.image_terms import project
from ivlm_core.frames import transform_points


@pytest.fixture(scope="module")
def single(synthetic_body_files):
    return load_body_model("smplx", folder=paths.body_models_dir(synthetic_body_files.root), num_betas=10)


@pytest.fixture(scope="module")
def sitting(single):
    from ivlm_core.demo.scenes import make_scene

    return make_scene("sit_chair", 0, body=single)


def _centred_error(vertices: np.ndarray, truth: np.ndarray) -> float:
    return float(np.linalg.norm((vertices - vertices.mean(0)) - (truth - truth.mean(0)), axis=1).mean())


def test_rest_pelvis_is_the_unposed_root_joint(single):
    betas = np.linspace(-1.0, 1.0, 10)
    with torch.no_grad():
        root = single.model(betas=torch.tensor(betas[None], dtype=torch.float32)).joints[0, 0].numpy()
    assert np.allclose(rest_pelvis(single, betas), root, atol=1e-5)


def test_transform_params_moves_the_same_body(single, sitting):
    moved = transform_params(single, sitting.body_params, sitting.cv_camera_from_world)
    in_camera = body_from_client(single, params=moved).vertices
    expected = transform_points(sitting.cv_camera_from_world, sitting.body_vertices)
    assert np.abs(in_camera - expected).max() < 1e-4


def test_body_init_checks_sizes():
    good = {
        "betas": np.zeros(10),
        "global_orient": np.zeros(3),
        "body_pose": np.zeros(63),
        "transl": np.zeros(3),
        "source": "x",
    }
    assert BodyInit(**good).params()["body_pose"].shape == (63,)
    with pytest.raises(BadInputError, match="'body_pose' has 62 values"):
        BodyInit(**{**good, "body_pose": np.zeros(62)})
    with pytest.raises(BadInputError, match="'transl'"):
        BodyInit(**{**good, "transl": np.array([0.0, np.nan, 1.0])})
    with pytest.raises(BadInputError, match="'left_hand_pose' has 3 values"):
        BodyInit(**good, left_hand_pose=np.zeros(3))


def test_fit_refines_a_first_estimate_of_a_sitting_body(single, sitting):
    """A start 11 cm off (8 degrees of noise on every joint, wrong shape, 15 cm in depth) is refined by the
    true keypoints and the silhouette: closer than the start, and the result says where it started."""
    truth = transform_params(single, sitting.body_params, sitting.cv_camera_from_world)
    truth_vertices = body_from_client(single, params=truth).vertices
    uv, _ = project(
        torch.tensor(body_from_client(single, params=truth).joints[COCO_TO_SMPLX.numpy()]),
        torch.tensor(sitting.intrinsics),
    )
    keypoints = np.concatenate([uv.numpy(), np.ones((17, 1))], 1)
    rng = np.random.default_rng(1)
    init = BodyInit(
        betas=truth["betas"] + rng.normal(0.0, 0.3, 10),
        global_orient=truth["global_orient"],
        body_pose=truth["body_pose"] + rng.normal(0.0, np.radians(8.0), 63),
        transl=truth["transl"] + np.array([0.03, -0.02, 0.15]),
        source="test estimate",
    )
    start_error = _centred_error(body_from_client(single, params=init.params()).vertices, truth_vertices)
    fit = fit_body(single, keypoints, sitting.intrinsics, sitting.image.shape[:2], sitting.person_mask, init=init)
    error = _centred_error(fit.vertices, truth_vertices)
    assert fit.start == "test estimate" and fit.source == "fitted"
    assert fit.losses["keypoint_rms_px"] < 3.0
    assert error < 0.7 * start_error and error < 0.06, (start_error, error)
    depth_error = abs(fit.vertices[:, 2].mean() - truth_vertices[:, 2].mean())
    # The keypoints halved the 15 cm depth offset of the start at least; what is left is the start's shape noise (a
    # larger or smaller body fits the same keypoints farther or nearer).
    assert depth_error < 0.075, depth_error
