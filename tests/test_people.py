"""Several people in the photo: the one using the object is chosen (and why), everyone's box is kept, and a
client can name another person by box. A generated two-person scene with perception stand-ins (detector,
segmenter and keypoints answering with the scene's ground truth), so the choice, not a detector, is tested."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ivlm_core import paths
from ivlm_core.body import load_body_model
from ivlm_core.errors import BadInputError
from ivlm_core.fit.body_fit import COCO_TO_SMPLX, BodyFitOptions, body_from_client
from ivlm_core.fit.body_init import transform_params
from ivlm_core.fit.image_terms import project
from ivlm_core.perceive.detect import Detection, box_iou
from ivlm_core.perceive.inputs import prompt_phrase
from ivlm_core.perceive.people import choose_person
from ivlm_core.perceive.perceiver import Perceiver
from ivlm_core.pipeline.outputs import result_to_dict
from ivlm_core.pipeline.reconstruct import ContactPipeline, ObjectInput, RunOptions

BYSTANDER_SCORE, USER_SCORE = 0.9, 0.6  # the bystander is the clearer detection: the choice must not go by score


# --- the rule, on hand-made masks ---------------------------------------------------------------------------


def _det(box: list[float], score: float) -> Detection:
    return Detection("person", np.array(box, np.float32), score, score, "person")


def _mask(box: list[int], shape: tuple[int, int] = (100, 100)) -> np.ndarray:
    mask = np.zeros(shape, bool)
    mask[box[1] : box[3], box[0] : box[2]] = True
    return mask


def test_the_rule_on_hand_made_masks():
    people = [_det([60, 0, 100, 100], 0.9), _det([0, 0, 50, 100], 0.5)]
    masks = np.stack([_mask([60, 0, 100, 100]), _mask([0, 0, 50, 100])])
    cup = {"cup": np.array([40.0, 40.0, 56.0, 56.0])}  # mostly over the second person
    choice = choose_person(people, masks, cup)
    assert choice.chosen == 1 and np.array_equal(choice.box, people[1].box)
    assert "chose person 2 of 2" in choice.reason and "'cup'" in choice.reason
    assert choice.candidates[1].object_overlap > choice.candidates[0].object_overlap
    far = {"ball": np.array([0.0, 0.0, 2.0, 2.0])}  # the second person's mask covers it fully; the first none
    assert choose_person(people, masks, far).chosen == 1
    tie = np.stack([_mask([0, 0, 100, 100]), _mask([0, 0, 100, 100])])
    assert choose_person(people, tie, cup).chosen == 0  # equal overlap: the higher detector score
    apart = np.stack([_mask([90, 0, 100, 10]), _mask([0, 90, 10, 100])])
    nearest = choose_person(
        [_det([90, 0, 100, 10], 0.9), _det([0, 90, 10, 100], 0.5)], apart, {"cup": np.array([20.0, 70.0, 30.0, 80.0])}
    )
    assert nearest.chosen == 1 and "none reaches 'cup'" in nearest.reason and "px away" in nearest.reason
    assert choose_person(people, masks, {}).chosen == 0  # no object: the detector's best
    assert choose_person([], None, cup).chosen is None
    crowd = [_det([10 * i, 0, 10 * i + 8, 100], 0.9 - 0.01 * i) for i in range(10)]
    crowd_masks = np.stack([_mask([10 * i, 0, 10 * i + 8, 100]) for i in range(8)])  # only the first 8 segmented
    choice = choose_person(crowd, crowd_masks, {"cup": np.array([40.0, 40.0, 48.0, 48.0])})
    assert choice.chosen == 4 and choice.reason.startswith("10 people detected (the 8 with the highest")
    assert len(choice.candidates) == 10 and choice.candidates[9].object_overlap is None


def test_the_client_names_a_person_by_box():
    people = [_det([60, 0, 100, 100], 0.9), _det([0, 0, 50, 100], 0.5)]
    named = choose_person(people, None, {}, client_box=np.array([2.0, 1.0, 49.0, 98.0]))
    assert named.chosen == 1 and "named by box" in named.reason
    own = choose_person(people, None, {}, client_box=np.array([20.0, 20.0, 30.0, 30.0]))
    assert own.chosen is None and np.allclose(own.box, [20, 20, 30, 30]) and "used as given" in own.reason
    assert len(own.candidates) == 2  # everyone is still listed


# --- the generated two-person scene ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def body(synthetic_body_files):
    return load_body_model("smplx", folder=paths.body_models_dir(synthetic_body_files.root), num_betas=10)


@pytest.fixture(scope="module")
def two(body):
    """Sitting on a chair, a bystander standing just behind it: their box overlaps the chair's, their mask
    hardly does."""
    from ivlm_core.demo.two_people import make_two_people_scene

    scene = make_two_people_scene("sit_chair", 0, body, side_m=0.35, behind_m=0.7)
    assert box_iou(scene.object_box(), scene.box(1)[None])[0] > 0.05  # the hard case: boxes overlap
    return scene


def _camera_params(body, two, index: int) -> dict[str, np.ndarray]:
    return transform_params(body, two.body_params[index], two.cv_camera_from_world)


class _Detector:
    demo, box_threshold, text_threshold = False, 0.35, 0.25

    def __init__(self, two) -> None:
        self.people = [(two.box(1), BYSTANDER_SCORE), (two.box(0), USER_SCORE)]
        self.chair = two.object_box()

    def __call__(self, image, labels, box_threshold=None, text_threshold=None):
        out = {}
        for label in labels:
            if prompt_phrase(label) == "person":
                out[label] = [Detection("person", box, score, score, "person") for box, score in self.people]
            else:
                out[label] = [Detection(label, self.chair, 0.8, 0.8, label)] if label == "chair" else []
        return out


class _Segmenter:
    demo = False

    def __init__(self, two) -> None:
        self.known = [(two.box(i), two.person_masks[i]) for i in range(2)] + [(two.object_box(), two.object_mask)]

    def segment(self, image, boxes):
        masks = []
        for box in boxes:
            overlaps = [float(box_iou(np.asarray(box), known[None])[0]) for known, _ in self.known]
            best = int(np.argmax(overlaps))
            masks.append(self.known[best][1] if overlaps[best] > 0.9 else _box_mask(box, image.shape[:2]))
        return np.stack(masks), np.ones(len(masks), np.float32)


def _box_mask(box: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    mask = np.zeros(shape, bool)
    mask[int(box[1]) : int(box[3]), int(box[0]) : int(box[2])] = True
    return mask


class _Keypoints:
    demo = False

    def __init__(self, body, two) -> None:
        self.people = []
        for index in range(2):
            joints = body_from_client(body, params=_camera_params(body, two, index)).joints[COCO_TO_SMPLX.numpy()]
            uv, _ = project(torch.tensor(joints), torch.tensor(two.intrinsics))
            self.people.append((two.box(index), np.concatenate([uv.numpy(), np.ones((17, 1))], 1).astype(np.float32)))

    def __call__(self, image, box):
        overlaps = [float(box_iou(np.asarray(box, np.float32), known[None])[0]) for known, _ in self.people]
        best = int(np.argmax(overlaps))
        return self.people[best][1] if overlaps[best] > 0.5 else np.zeros((17, 3), np.float32)


@pytest.fixture(scope="module")
def perceiver(body, two) -> Perceiver:
    return Perceiver(_Detector(two), _Segmenter(two), _Keypoints(body, two))


def test_the_person_on_the_chair_is_chosen_not_the_clearer_bystander(perceiver, two):
    perception = perceiver.perceive(two.image, ["chair"])
    people = perception.people
    assert perception.people_count == 2 and [c.score for c in people.candidates] == [BYSTANDER_SCORE, USER_SCORE]
    assert people.chosen == 1 and np.array_equal(perception.person.box, two.box(0))
    assert people.candidates[1].object_overlap > 0.2 > people.candidates[0].object_overlap
    assert "'chair'" in people.reason and any(
        n.startswith("person: 2 people detected; chose person 2") for n in perception.notes
    )
    assert np.array_equal(perception.person.mask, two.person_masks[0])
    assert np.array_equal(perception.objects["chair"].mask, two.object_mask)


def test_a_client_box_picks_the_other_person_or_is_used_as_given(perceiver, two):
    nudged = two.box(1) + np.array([3.0, -2.0, -4.0, 5.0], np.float32)
    perception = perceiver.perceive(two.image, ["chair"], person_box=nudged)
    assert perception.people.chosen == 0 and np.array_equal(perception.person.box, two.box(1))
    assert "named by box" in perception.people.reason
    own = np.array([400.0, 500.0, 470.0, 630.0])  # nobody there
    perception = perceiver.perceive(two.image, ["chair"], person_box=own)
    assert perception.people.chosen is None and np.allclose(perception.person.box, own)
    assert perception.person.score == 0.0 and "used as given" in perception.people.reason
    with pytest.raises(BadInputError, match="no area inside"):
        perceiver.perceive(two.image, ["chair"], person_box=[900.0, 10.0, 950.0, 40.0])


# --- through the pipeline -------------------------------------------------------------------------------------


class _GroundTruthHMR:
    """A Multi-HMR stand-in that 'finds' both people exactly (their true pose and head position)."""

    demo, name = False, "Multi-HMR stand-in (ground truth)"

    def __init__(self, body, two) -> None:
        from scipy.spatial.transform import Rotation

        from ivlm_core.perceive.multihmr.estimator import PersonEstimate

        self.people = []
        for index, score in ((1, 0.95), (0, 0.8)):
            params = _camera_params(body, two, index)
            rotations = np.tile(np.eye(3), (53, 1, 1))
            rotations[0] = Rotation.from_rotvec(params["global_orient"]).as_matrix()
            rotations[1:22] = Rotation.from_rotvec(params["body_pose"].reshape(21, 3)).as_matrix()
            head = body_from_client(body, params=params).joints[15]
            self.people.append(PersonEstimate(score, np.zeros(2), head, 15, rotations, params["betas"], np.zeros(10)))

    def __call__(self, image, intrinsics):
        return self.people


@pytest.fixture(scope="module")
def pipeline(body, two, perceiver, tiny_models, tiny_perception):
    pipeline = ContactPipeline.demo_pipeline()
    pipeline.perceiver = perceiver
    return pipeline


def _mean_distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b, axis=1).mean())


def test_pipeline_fits_the_chosen_person_and_reports_everyone(pipeline, body, two):
    """The body lands on the person on the chair; with a Multi-HMR estimate it starts from it (and says so);
    naming the bystander's box fits the bystander instead."""
    truth = [body_from_client(body, params=_camera_params(body, two, i)).vertices for i in range(2)]
    chair = ObjectInput("chair", two.scene.object_mesh)
    fast = BodyFitOptions(yaw_starts_deg=(0.0,), keep_starts=2, keep_variants=2)
    options = RunOptions(focal_px=float(two.intrinsics[0, 0]), body_fit=fast, stages=frozenset({"body"}))
    pipeline.body_estimator = _GroundTruthHMR(body, two)
    try:
        result = pipeline.run(two.image, [chair], options)
    finally:
        pipeline.body_estimator = None
    assert result.body.source == "fitted" and result.body.start == _GroundTruthHMR.name
    assert any(n.startswith(f"body: started from {_GroundTruthHMR.name}") for n in result.notes)
    assert _mean_distance(result.body.vertices, truth[0]) < 0.05 < _mean_distance(result.body.vertices, truth[1])
    people = result_to_dict(result)["people"]
    assert (
        people["chosen"] == 1 and len(people["boxes_xyxy"]) == 2 and people["scores"] == [BYSTANDER_SCORE, USER_SCORE]
    )
    assert people["boxes_xyxy"][0] == [float(v) for v in two.box(1)] and "'chair'" in people["reason"]

    named = RunOptions(focal_px=options.focal_px, body_fit=fast, stages=options.stages, person_box=tuple(two.box(1)))
    result = pipeline.run(two.image, [chair], named)
    assert result.people.chosen == 0 and result.body.start == "keypoints"
    assert _mean_distance(result.body.vertices, truth[1]) < _mean_distance(result.body.vertices, truth[0])
    assert result.body.losses["keypoint_rms_px"] < 10.0


def test_an_unmatched_or_missing_estimator_is_said(pipeline, body, two):
    fast = BodyFitOptions(yaw_starts_deg=(0.0,), keep_starts=1, keep_variants=1, iterations=2, refine_iterations=2)
    options = RunOptions(focal_px=float(two.intrinsics[0, 0]), body_fit=fast, stages=frozenset({"body"}))
    pipeline.body_estimator = _GroundTruthHMR(body, two)
    pipeline.body_estimator.people = pipeline.body_estimator.people[:1]  # only the bystander
    try:
        result = pipeline.run(two.image, [ObjectInput("chair", two.scene.object_mesh)], options)
    finally:
        pipeline.body_estimator = None
    assert result.body.start == "keypoints"
    assert any("matches the chosen person's box" in n and "keypoints alone" in n for n in result.notes)
    notes: list[str] = []
    pipeline.body_estimator_note = "no Multi-HMR checkpoint (optional): the body is fitted from keypoints alone"
    try:  # without an estimator, the reason it is missing goes into the notes
        assert pipeline._first_estimate(two.image, None, None, notes) is None
    finally:
        pipeline.body_estimator_note = ""
    assert notes == ["no Multi-HMR checkpoint (optional): the body is fitted from keypoints alone"]


def test_without_usable_keypoints_the_estimate_is_the_body_and_says_so(pipeline, body, two):
    """A client box around the sitter that no detection and no keypoint result matches: the keypoints are empty,
    the fit cannot run, and the learned estimate is returned as it is, labelled "estimated"."""
    x0, y0, x1, y1 = two.box(0)
    w, h = x1 - x0, y1 - y0
    inner = (x0 + 0.17 * w, y0 + 0.17 * h, x1 - 0.17 * w, y1 - 0.17 * h)  # overlap about 0.45 with the sitter's box
    options = RunOptions(focal_px=float(two.intrinsics[0, 0]), stages=frozenset({"body"}), person_box=inner)
    pipeline.body_estimator = _GroundTruthHMR(body, two)
    try:
        result = pipeline.run(two.image, [ObjectInput("chair", two.scene.object_mesh)], options)
    finally:
        pipeline.body_estimator = None
    assert result.people.chosen is None and result.body.source == "estimated"
    assert result.body.start == _GroundTruthHMR.name
    assert any(n.startswith("body not refined (only 0 keypoints are confident") for n in result.notes)
    truth = body_from_client(body, params=_camera_params(body, two, 0)).vertices
    assert np.abs(result.body.vertices - truth).max() < 1e-4


def test_cli_takes_a_person_box():
    from ivlm_core.cli import build_parser

    args = build_parser().parse_args(
        ["reconstruct", "photo.png", "--object", "m.obj:mug", "--person-box", "1", "2", "30", "40"]
    )
    assert args.person_box == [1.0, 2.0, 30.0, 40.0]
    assert build_parser().parse_args(["reconstruct", "photo.png"]).person_box is None


def test_the_generated_release_runs_in_the_pipeline(pipeline, two, tmp_path):
    """The real loader and estimator on the tiny release-format checkpoint, inside a run: its random people either
    match the chosen person (the fit starts from it) or not (keypoints alone); either way the result says which."""
    from ivlm_core.demo.tiny_multihmr import ensure_tiny_multihmr
    from ivlm_core.perceive.multihmr.estimator import MultiHMREstimator

    estimator = MultiHMREstimator.from_file(ensure_tiny_multihmr(tmp_path))
    fast = BodyFitOptions(yaw_starts_deg=(0.0,), keep_starts=1, keep_variants=1, iterations=2, refine_iterations=2)
    options = RunOptions(focal_px=float(two.intrinsics[0, 0]), body_fit=fast, stages=frozenset({"body"}))
    pipeline.body_estimator = estimator
    try:
        assert "random-weight Multi-HMR" in pipeline.demo_parts()
        result = pipeline.run(two.image, [ObjectInput("chair", two.scene.object_mesh)], options)
    finally:
        pipeline.body_estimator = None
    if result.body.start == estimator.name:
        assert any(n.startswith(f"body: started from {estimator.name}") for n in result.notes)
    else:
        assert result.body.start == "keypoints"
        assert any("Multi-HMR" in n and "keypoints alone" in n for n in result.notes)
