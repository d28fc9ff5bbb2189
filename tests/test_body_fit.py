"""The body from keypoints: SMPL-X kinematics against smplx, whole-body keypoints on the generated body and scenes,
hands closed from the photo, a first estimate as a start, and each kind of bad input with its outcome."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from smplx.joint_names import JOINT_NAMES

from ivlm_core import paths
from ivlm_core.body import load_body_model
from ivlm_core.errors import BadInputError
from ivlm_core.fit.body_fit import BodyFitOptions, BodyInit, body_from_client, fit_body
from ivlm_core.fit.body_kinematics import BodyKinematics, PoseParams, smplx_source
from ivlm_core.fit.hand_frames import HandFrames
from ivlm_core.fit.keypoint_input import prepare_keypoints
from ivlm_core.frames import transform_points
from ivlm_core.perceive.coco import COCO_KEYPOINTS, COCO_WHOLEBODY_KEYPOINTS, WHOLEBODY_PARTS, mirror_index

# Fewer starts than the default: these tests check behaviour, bench_body.py measures accuracy and speed.
FAST = BodyFitOptions(
    yaw_starts_deg=(0.0, 60.0, -60.0), postures=("standing", "sitting"), keep_starts=2, keep_variants=2
)
TIPS = [
    f"{side}_{finger}4"
    for side in ("left", "right")
    for finger in ("thumb", "forefinger", "middle_finger", "ring_finger", "pinky_finger")
]


@pytest.fixture(scope="module")
def body(synthetic_body_files):
    return load_body_model("smplx", folder=paths.body_models_dir(synthetic_body_files.root), num_betas=10)


@pytest.fixture(scope="module")
def mug(body):
    from ivlm_core.demo.scenes import make_scene

    return make_scene("hold_mug", 0, body=body)


def _true_keypoints(scene) -> np.ndarray:
    """The scene's COCO-WholeBody keypoints, all with confidence 1 (hidden ones too), the jaw contour unused."""
    kp = scene.keypoints.copy()
    kp[:, 2] = np.where(np.any(kp[:, :2] != 0, axis=1), 1.0, 0.0)
    return kp


def _fit_true(body, scene, options: BodyFitOptions):
    """The fit of a scene's true keypoints, with its person mask and its object as occluder."""
    return fit_body(
        body,
        _true_keypoints(scene),
        scene.intrinsics,
        scene.image.shape[:2],
        scene.person_mask,
        options,
        occluder_mask=scene.object_mask,
    )


def _tip_error(fit, scene) -> np.ndarray:
    """Per fingertip, the distance (m) between fitted and true fingertip positions relative to their wrist."""
    names = list(COCO_WHOLEBODY_KEYPOINTS)
    tips = [names.index(n) for n in TIPS]
    wrists = [names.index("left_hand_root")] * 5 + [names.index("right_hand_root")] * 5
    fitted = fit.joints[[JOINT_NAMES.index(smplx_source(n)) for n in TIPS]] - fit.joints[[20] * 5 + [21] * 5]
    true = scene.keypoints_camera[tips] - scene.keypoints_camera[wrists]
    return np.linalg.norm(fitted - true, axis=1)


def test_kinematics_match_smplx(body, synthetic_body_files) -> None:
    """Vertices, joints and every whole-body keypoint posed here equal smplx's (full hand poses, flat-hand mean)."""
    reference = load_body_model(
        "smplx",
        folder=paths.body_models_dir(synthetic_body_files.root),
        num_betas=10,
        use_pca=False,
        flat_hand_mean=True,
        batch_size=3,
    )
    g = torch.Generator().manual_seed(0)
    p = PoseParams(
        *(
            scale * torch.randn(3, n, generator=g)
            for n, scale in ((3, 1.0), (63, 0.3), (45, 0.3), (45, 0.3), (10, 1.0), (3, 1.0))
        )
    )
    out = reference.model(
        global_orient=p.global_orient,
        body_pose=p.body_pose,
        left_hand_pose=p.left_hand_pose,
        right_hand_pose=p.right_hand_pose,
        betas=p.betas,
        transl=p.transl,
    )
    kinematics = BodyKinematics(body)
    vertices, joints = kinematics.vertices(p)
    assert torch.allclose(vertices, out.vertices, atol=1e-5) and torch.allclose(joints, out.joints[:, :55], atol=1e-5)
    layout = kinematics.keypoint_layout()
    keypoints = layout.keypoints(*kinematics.forward(p, kinematics.points(layout.vertex_ids)))
    sources = [JOINT_NAMES.index(smplx_source(n)) for n, ok in zip(layout.names, layout.available) if ok]
    assert torch.allclose(keypoints[:, layout.available], out.joints[:, sources], atol=1e-5)
    # Only the jaw contour (face-0 .. face-16, moved by smplx with the head's yaw) has no fixed SMPL-X point.
    assert [n for n, ok in zip(layout.names, layout.available) if not ok] == [f"face-{i}" for i in range(17)]


def test_wholebody_names_map_to_smplx_points() -> None:
    assert smplx_source("left_big_toe") == "left_big_toe" and smplx_source("right_heel") == "right_heel"
    assert smplx_source("left_hand_root") == "left_wrist" and smplx_source("right_thumb1") == "right_thumb1"
    assert smplx_source("left_forefinger4") == "left_index" and smplx_source("right_pinky_finger2") == "right_pinky2"
    assert smplx_source("face-17") == "right_eye_brow1" and smplx_source("face-67") == JOINT_NAMES[126]
    mirror = mirror_index(COCO_WHOLEBODY_KEYPOINTS)
    assert all(mirror[mirror[i]] == i for i in range(133))
    assert COCO_WHOLEBODY_KEYPOINTS[mirror[COCO_WHOLEBODY_KEYPOINTS.index("face-36")]] == "face-45"  # eye corners


def test_scene_carries_hands_and_true_whole_body_keypoints(body, mug) -> None:
    truth = body_from_client(body, params=mug.body_params)
    assert np.abs(truth.vertices - mug.body_vertices).max() < 1e-5  # hand poses included
    # The keypoints are the body's own keypoint points, projected; the torso is seen, the contour unused.
    camera = transform_points(mug.cv_camera_from_world, truth.joints)
    names = list(COCO_WHOLEBODY_KEYPOINTS)
    for name in ("left_shoulder", "right_big_toe", "right_forefinger4", "face-30"):
        point = camera[JOINT_NAMES.index(smplx_source(name))]
        uv = mug.intrinsics[:2, :2] @ (point[:2] / point[2]) + mug.intrinsics[:2, 2]
        assert np.allclose(mug.keypoints[names.index(name), :2], uv, atol=1e-3)
    assert mug.keypoints[
        [names.index(n) for n in ("left_shoulder", "right_shoulder", "left_hip", "right_hip")], 2
    ].all()
    assert mug.keypoints[23:40, 2].sum() == 0  # the jaw contour
    # The gripping hand is closed: its fingers flex well past the relaxed hand's.
    frames = HandFrames(BodyKinematics(body))
    flex = frames.from_axis_angle(torch.tensor(mug.body_params["right_hand_pose"], dtype=torch.float32), "right")[:, 0]
    assert float(flex.reshape(5, 3).sum(1).mean()) > 0.6


def test_whole_body_fit_closes_the_hand_around_the_mug(body, mug) -> None:
    fit = _fit_true(body, mug, FAST)
    assert fit.keypoint_format == "coco_wholebody" and fit.prior == "joint limits" and fit.source == "fitted"
    assert set(fit.params) >= {"left_hand_pose", "right_hand_pose"} and fit.losses["keypoint_rms_px"] < 1.0
    errors = _tip_error(fit, mug)
    assert errors.mean() <= 0.015, errors
    # Closed: the right hand's fingers flex like the true grip's, well past the relaxed hand the fit starts from.
    # (Flexion, not fingertip reach: the generated body's fingers are short, a grip brings the tips ~1 cm nearer.)
    kinematics = BodyKinematics(body)
    frames = HandFrames(kinematics)

    def flexion(hand_pose) -> float:
        hand = torch.as_tensor(np.asarray(hand_pose), dtype=torch.float32).reshape(-1)
        return float(frames.from_axis_angle(hand, "right")[:, 0].mean())

    fitted, true = flexion(fit.params["right_hand_pose"]), flexion(mug.body_params["right_hand_pose"])
    relaxed = flexion(kinematics.relaxed_hands[1])
    assert abs(fitted - true) < 0.25 * (true - relaxed), (fitted, true, relaxed)


def test_final_stage_with_a_weaker_shape_prior_brings_the_body_closer(body, mug) -> None:
    """The last stage refits the chosen basin with a tenth of the search's shape prior (SMPLify-style annealing),
    so the keypoints set the bone lengths the strong prior pulls towards the mean shape (the mug scene's true shape
    is 1.3 sigma from the mean): its mean-centred vertex error is at least 1.5 mm lower than the same fit's with
    that stage's prior as strong as the search's (2.3 -> 2.0 cm when written; no stage: no difference)."""
    truth = transform_points(mug.cv_camera_from_world, mug.body_vertices)

    def vertex_error(options: BodyFitOptions) -> float:
        fit = _fit_true(body, mug, options)
        return float(np.linalg.norm((fit.vertices - fit.vertices.mean(0)) - (truth - truth.mean(0)), axis=1).mean())

    assert FAST.final_w_shape <= 0.1 * FAST.w_shape
    annealed, strong = vertex_error(FAST), vertex_error(dataclasses.replace(FAST, final_w_shape=FAST.w_shape))
    assert annealed < strong - 0.0015, (annealed, strong)


def test_coco17_keypoints_still_fit(body, mug) -> None:
    keypoints = _true_keypoints(mug)[:17]
    fit = fit_body(body, keypoints, mug.intrinsics, mug.image.shape[:2], mug.person_mask, FAST)
    assert fit.keypoint_format == "coco17" and fit.losses["body_keypoint_rms_px"] < 3.0
    relaxed = body_from_client(body, params={k: v for k, v in fit.params.items() if "hand" not in k})
    assert np.allclose(relaxed.vertices, fit.vertices, atol=1e-5)  # no hand keypoints: hands stay relaxed


def test_fit_starts_from_a_first_estimate(body, mug) -> None:
    """The true body given as a BodyInit (what a learned regressor hands over) is the start, kept and refined."""
    from ivlm_core.fit.body_init import transform_params

    params = transform_params(body, mug.body_params, mug.cv_camera_from_world)
    init = BodyInit(
        **{k: params[k] for k in ("betas", "global_orient", "body_pose", "transl")},
        left_hand_pose=params["left_hand_pose"],
        right_hand_pose=params["right_hand_pose"],
        source="truth",
    )
    fit = fit_body(body, _true_keypoints(mug), mug.intrinsics, mug.image.shape[:2], options=FAST, init=init)
    assert fit.start == "truth" and fit.best_start.startswith("truth")
    truth = transform_points(mug.cv_camera_from_world, mug.body_vertices)
    assert np.linalg.norm(fit.vertices - truth, axis=1).mean() < 0.01
    with pytest.raises(BadInputError, match="'body_pose' has 10 values"):
        BodyInit(params["betas"], np.zeros(3), np.zeros(10), np.zeros(3), source="bad")
    # With a first estimate a hidden torso is no reason to refuse: the estimate places the body.
    hidden = _true_keypoints(mug)
    hidden[[COCO_KEYPOINTS.index(n) for n in ("left_shoulder", "right_shoulder", "left_hip", "right_hip")], 2] = 0
    assert prepare_keypoints(hidden, mug.image.shape[:2], 0.3, torso_required=False).weight[5] == 0


# --- bad input: each has a clear outcome and a reason ------------------------------------------------------


def test_hidden_torso_is_refused_with_the_reason(body, mug) -> None:
    keypoints = _true_keypoints(mug)
    keypoints[[COCO_KEYPOINTS.index(n) for n in ("left_shoulder", "left_hip", "right_hip")], 2] = 0.0
    with pytest.raises(BadInputError, match="torso is hidden") as info:
        fit_body(body, keypoints, mug.intrinsics, mug.image.shape[:2])
    assert "left hip" in info.value.message and "shoulders and hips are visible" in info.value.hint
    with pytest.raises(BadInputError, match="expected \\(17, 3\\) or \\(133, 3\\)"):
        fit_body(body, np.zeros((25, 3)), mug.intrinsics, mug.image.shape[:2])


def test_tiny_person_is_fitted_from_body_keypoints_or_refused(mug) -> None:
    keypoints = _true_keypoints(mug)
    centre = keypoints[:17, :2].mean(0)
    for scale, outcome in ((0.15, "small"), (0.05, "refused")):
        small = keypoints.copy()
        small[:, :2] = centre + (keypoints[:, :2] - centre) * scale
        if outcome == "refused":
            with pytest.raises(BadInputError, match="too small to fit a body"):
                prepare_keypoints(small, mug.image.shape[:2], 0.3)
            continue
        prepared = prepare_keypoints(small, mug.image.shape[:2], 0.3)
        assert "small_person" in prepared.flags and prepared.person_px < 100
        assert prepared.weight[list(WHOLEBODY_PARTS["right_hand"])].sum() == 0  # hands dropped ...
        assert prepared.weight[list(WHOLEBODY_PARTS["feet"])].all()  # ... feet kept
        assert any("too small to use" in note for note in prepared.notes)


def test_person_cut_by_the_border_says_what_was_not_seen(body, mug) -> None:
    """The photo cropped above the knees: the legs are outside it, the fit says so and does not pretend."""
    names = list(COCO_WHOLEBODY_KEYPOINTS)
    height = int(mug.keypoints[[names.index("left_knee"), names.index("right_knee")], 1].min() - 10)
    keypoints = _true_keypoints(mug)
    prepared = prepare_keypoints(keypoints, (height, mug.image.shape[1]), 0.3, mug.person_mask[:height])
    assert prepared.cut_sides == ["bottom"] and {"left leg", "right leg", "left foot", "right foot"} <= set(
        prepared.unseen
    )
    fit = fit_body(body, keypoints, mug.intrinsics, (height, mug.image.shape[1]), mug.person_mask[:height], FAST)
    assert {"cut_by_border", "parts_unseen"} <= set(fit.flags)
    assert any("cut by the image's bottom edge" in note and "left leg" in note for note in fit.notes)


def test_keypoints_whose_sides_contradict_the_photo_are_fitted_mirrored_and_reported(body, mug) -> None:
    """Keypoints mirrored with the photo but not relabelled (the face is seen, yet left and right say the body faces
    away): retried with the sides swapped, which fits a body facing the camera, and the result says so."""
    keypoints = _true_keypoints(mug)
    width = mug.image.shape[1]
    flipped = keypoints.copy()
    flipped[:, 0] = np.where(keypoints[:, 2] > 0, width - 1 - keypoints[:, 0], 0.0)
    fit = fit_body(body, flipped, mug.intrinsics, mug.image.shape[:2], options=FAST)
    assert "mirrored_keypoints" in fit.flags and any("mirrored" in note for note in fit.notes)
    # A mirrored photo whose keypoints were found on it (flipped and relabelled) is simply a body: no flag.
    relabelled = flipped[mirror_index(COCO_WHOLEBODY_KEYPOINTS)]
    plain = fit_body(body, relabelled, mug.intrinsics, mug.image.shape[:2], options=FAST)
    assert "mirrored_keypoints" not in plain.flags and plain.losses["keypoint_rms_px"] < 2.0
    assert np.linalg.norm(plain.vertices - fit.vertices, axis=1).mean() < 0.03
